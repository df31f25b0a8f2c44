"""`sws`: stepwise weighted spike coding with TSA neurons (Gu et al., arXiv 2408.17245 v1; digest §3).

Each activation value is sent as Tc ternary digits, MSB first; the receiving TSA neuron
amplifies its membrane by β every step (u <- β·u + z − S), so a digit arriving at input step
τ is worth β^(Tc−τ).  A layer computes round(W·A_in + b̃) in the integer domain and emits
it as its own Tc digits after a silent period of Ts steps; the readout reads its weighted
potential directly.  Latency T_inf = Tc + Ts·L (L hidden TSA layers), one frame per Tc + Ts.

The quantised ANN (decision, documented in the report): every activation — QCFS or ReLU,
and the input quantiser — becomes a quantiser with Q = S = Σ β^(Tc−τ) levels (2^Tc − 1 for
β = 2, i.e. the paper's 8-bit activations at Tc = 8): code = clip(floor(x·Q/λ + 1/2), 0, Q),
value code·λ/Q, with λ = the trained QCFS range (levels × step) or, for a ReLU, the
`percentile` of its calibration inputs (the same balancing as `rate`).  The layer's integer
pre-activation is U = Σ W_mant·codes << e + S·b (b the per-step bias of Eq. 19, rounded to
the target's bias format) and its code is clip(floor((2U + D)/2D), 0, Q) (round half up,
`ir.tsa.TSA.reference_code`).  The TSA neuron reproduces it exactly while it never falls
behind (guaranteed for Ts ≥ Tc − 1, in practice already for Ts ≥ 1); verify reports the
conversion mismatches.

Quantised (QDQ) models — QuantizeLinear/DequantizeLinear ONNX, e.g. PyTorch QAT exported with
`neurodeploy.nn.qat.export_qat_onnx` (paper Appendix A.1, Eqs. 15–19): the model's own 8-bit
quantisers are kept (levels 255 = S for Tc = 8, β = 2; step = the scale C; the zero point Z
in the code offset), nothing is re-calibrated, so every layer's code is the QDQ model's uint8
code: the integer layer is Q_o = round(Ŵ·C_i/C_o·Q_i + b̂/C_o + Z_o − Ŵ·Z_i·C_i/C_o) (W̃, b̃),
spread as b̃/S per coding step.  An input zero point's −Ŵ·Z_i·C_i term goes into the next
layer's bias (`passes.qdq.fold_zero_points`); the QDQ pair on the model output is dropped
(the readout reads its potential).  A QDQ model needs Tc = 8 with β = 2 (its codes have 255
levels); other Tc raise an error rather than silently re-quantising the trained model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..errors import NeurodeployError, TargetLimitError, UnsupportedError
from ..ir import float_graph as fg
from ..ir import neurons as nrn
from ..ir import synapses as syn
from ..ir import tsa as tsa_ir
from ..ir.spiking import Layer, SpikingGraph
from ..passes import run_passes
from ..passes.input_quant import insert_input_quantiser
from ..passes.lower import lower
from ..passes.qdq import is_qdq, quantise_on_grid
from ..passes.quantize import quantise_layer
from ..passes.threshold_balance import threshold_balance
from ..sim import sws as sws_sim
from ..sim.synapse_ops import abs_bound
from ..target import Target
from .base import CompileOptions, Scheme

DEFAULT_CODING_STEPS = 8
DEFAULT_SILENT_STEPS = 2


@dataclass
class SwsOptions(CompileOptions):
    """CompileOptions plus the `sws` knobs (until base.CompileOptions carries them)."""
    coding_steps: int | None = None     # Tc; None = timesteps or 8
    silent_steps: int | None = None     # Ts; None = 2
    beta: int = 2
    full_threshold: bool = False        # ablation only: threshold θ instead of θ/2


def sws_params(options: CompileOptions) -> tuple[int, int, int, bool]:
    tc = getattr(options, "coding_steps", None) or options.timesteps or DEFAULT_CODING_STEPS
    ts = getattr(options, "silent_steps", None)
    ts = DEFAULT_SILENT_STEPS if ts is None else ts
    beta = int(getattr(options, "beta", 2))
    return int(tc), int(ts), beta, bool(getattr(options, "full_threshold", False))


def tsa_state_bound(branches, bias, neuron: tsa_ir.TSA, shapes: dict) -> int:
    """Worst-case |m| of a TSA layer over the whole run:  β^Ts · S · (max_j (Σ|W_j|·2^e + |b_j|) + D).

    Before output step j the membrane holds the input accumulated so far, Σ β^(t−τ) z(τ) with
    |z| <= Σ|W|·2^e + |b| per step (digits are ternary), minus the emitted digits' β^Ts·D·β^(j−i);
    both sums of powers of β are at most S, and after the last input step the input part is
    amplified by at most β^Ts.
    """
    total = 0
    for b in branches:
        total = total + abs_bound(b.ops, shapes[b.source], 1.0) * float(1 << b.weight_exp)
    total = np.asarray(total, dtype=np.float64)
    bias = np.abs(np.asarray(bias, dtype=np.float64))
    per = total + (bias.reshape((-1,) + (1,) * (total.ndim - 1)) if total.ndim > 1 else bias)
    s = tsa_ir.digit_weight_sum(neuron.beta, neuron.coding_steps)
    return int(neuron.beta ** neuron.silent_steps * s * (float(np.max(per)) + neuron.theta_mant))


def _qdq_quantisers(graph: fg.FloatGraph, q_levels: int, tc: int, beta: int) -> dict:
    """The QDQ model's quantisers by node, after checking their level count is S (Tc = 8, β = 2).

    Re-quantising an 8-bit QAT model to another S would throw away what QAT trained for, and
    the verify report would compare against a model that is not the user's; so it is an error.
    """
    qdq = {n: graph.op(n) for n in graph.topo_order() if is_qdq(graph, n)}
    for name, op in qdq.items():
        if op.levels != q_levels:
            raise UnsupportedError(
                f"the model's quantiser has {op.levels} levels but sws with Tc={tc}, beta={beta} codes "
                f"{q_levels} levels", graph.where(name),
                "compile a uint8/int8 QDQ model with --coding-steps 8 (beta 2); for another Tc export the "
                "float model and let sws quantise it, or quantise to 8 bits without reduce_range")
    return qdq


class Sws(Scheme):
    name = "sws"
    passes = ["fold_linear_affine", "fold_bn", "fuse_quant_act", "drop_redundant_relu",
              "strip_output_quantiser", "fold_zero_points"]
    guarantee = ("every layer's decoded ternary digits equal the quantised ANN's rounded codes while no "
                 "TSA neuron falls behind (guaranteed for Ts >= Tc-1); mismatches are reported")
    exact = False

    def compile(self, graph: fg.FloatGraph, target: Target, options: CompileOptions) -> SpikingGraph:
        tc, ts, beta, full = sws_params(options)
        if tc < 1 or ts < 0:
            raise NeurodeployError(f"coding steps {tc} / silent steps {ts} out of range", "--coding-steps",
                                   "use Tc >= 1 and Ts >= 0")
        if beta not in (2, 3):
            raise NeurodeployError(f"beta {beta} is not supported", "--beta", "use 2 (a shift) or 3")
        q_levels = tsa_ir.digit_weight_sum(beta, tc)
        graph = run_passes(graph, self.passes)
        qdq = _qdq_quantisers(graph, q_levels, tc, beta)
        graph = insert_input_quantiser(graph, options.calibration, options.input_bits)
        graph = threshold_balance(graph, options.calibration, q_levels, options.percentile)
        for name, op in qdq.items():      # the model's own quantisers, not re-calibrated ones
            graph.set_op(name, op)
        enc, real_layers = lower(graph)
        # the TSA membrane holds up to beta^Ts times a layer's partial sums (plus one unit of
        # rounding headroom): reserve those bits of the state
        reserve = int(math.ceil(ts * math.log2(beta))) + 1
        tgt = dataclasses.replace(target, state_bits=target.state_bits - reserve)
        layers = [enc.encoder(tsa_ir.TSAEncoder(code_max=q_levels, beta=beta, coding_steps=tc))]
        shapes, code_max = {enc.name: enc.shape}, {enc.name: q_levels}
        report = {}
        for rl in real_layers:
            for b in rl.branches:
                if any(isinstance(op, syn.MaxPool) for op in b.ops):
                    raise UnsupportedError("max pooling of ternary digit trains is not supported (the paper "
                                           "gives no rule)", f"layer '{rl.name}'", "use average pooling")
            if rl.quant is None:
                q = quantise_layer(rl.name, rl.branches, rl.bias, None, shapes, code_max, tgt)
                neuron, step = nrn.Readout(output_scale=1.0 / q.unit), np.asarray(1.0 / q.unit)
            else:
                # lowering puts the quantiser's offset into the bias (code = floor(U)); the TSA
                # rounds by itself (floor(U + 1/2)), so remove 1/2 of it, and spread the bias over
                # the Tc input steps.  The rest of the offset is a QDQ zero point (Eq. 17's Z_o).
                bias_real = (rl.bias - 0.5) / q_levels
                # a QDQ layer's weights are the model's 8-bit integers times one step: keep them
                q = quantise_on_grid(rl.name, rl.branches, bias_real, q_levels, shapes, code_max, tgt) \
                    if rl.float_node in qdq else None
                if q is None:
                    q = quantise_layer(rl.name, rl.branches, bias_real, q_levels, shapes, code_max, tgt)
                neuron = tsa_ir.TSA(theta_mant=q.unit, code_max=q_levels, beta=beta, coding_steps=tc,
                                    silent_steps=ts, relu=True, full_threshold=full)
                step = np.asarray(rl.quant.out_step)
                code_max[rl.name] = q_levels
                bound = tsa_state_bound(q.branches, q.bias_mant.astype(np.int64) << q.bias_exp, neuron, shapes)
                if bound > target.state_max:
                    raise TargetLimitError(f"the TSA membrane can reach {bound} > the target's "
                                           f"{target.state_bits}-bit state", f"layer '{rl.name}'",
                                           "use fewer silent steps, fewer coding steps or --target cpu")
            shapes[rl.name] = rl.shape
            layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron, step, rl.float_node))
            report[rl.name] = {**q.report(), "state_bound": bound if rl.quant is not None else q.state_bound}
        net = SpikingGraph(self.name, target.name, layers, {"quantisation": report})
        sch = sws_sim.schedule(net)
        net.meta.update({
            "time_steps_per_layer": {l.name: (l.neuron.steps if isinstance(l.neuron, tsa_ir.TSA) else tc)
                                     for l in layers if not getattr(l, "is_readout", False)},
            "latency_steps": sch["latency_steps"], "throughput_steps": sch["throughput_steps"],
            "sws": {"beta": beta, "coding_steps": tc, "silent_steps": ts, "levels": q_levels,
                    "full_threshold": full, "offsets": sch["offsets"], "branch_delays": sch["branch_delays"],
                    "tsa_layers_on_longest_path": sch["tsa_layers_on_longest_path"]},
        })
        return net

    def guarantee_holds(self, graph: SpikingGraph, layer_mismatches: dict[str, int]) -> bool:
        return all(v == 0 for v in layer_mismatches.values())
