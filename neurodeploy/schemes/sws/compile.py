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
`schemes.sws.neurons.TSA.reference_code`).  The TSA neuron reproduces it exactly while it never falls
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

State bound (`SwsOptions.state_bound`, `--state-bound`): the integer unit D sets how finely
the weights Ŵ·C_i/C_o and the per-step bias b̃/S are represented (the bias error is multiplied
by S = 255), and the membrane, which must fit the target's signed state (24 bits on Loihi 2),
grows with D.  A ReLU-blocked neuron keeps its whole negative input, amplified by β^Ts, so
|m| reaches about β^Ts·|U|·D for a pre-activation of U code steps.
- "static": D from the worst case β^Ts·S·(Σ|W|·2^e + |b| + D) over all inputs (3 state bits
  reserved for β^Ts): no input can overflow, but wide layers get a coarse D (digits_qat conv2:
  D = 131, ~46% of its codes off onnxruntime's).
- "calibrated": the membrane's peak |m| over the calibration samples (the float pass of
  `_unit_peak`, linear in D, then the chosen D re-checked with the integer run), times
  `state_margin` (default 4: the digits test splits peak at most 1.2x their 256-sample
  calibration sets), must fit the state; one step's current Σ|W|·2^e + |b| keeps the static
  bound (synapses never wrap).  The peak is measured on a bounded sample: all calibration
  samples up to `PEAK_SYNAPSE_OPS` synaptic operations (samples x Tc x one sample's synapse
  calls), else that many evenly spaced ones, at least one (`peak_samples`; recorded as
  meta["sws"]["calibration_samples"]).  Guaranteed: no state of the sampled inputs exceeds
  state_max / margin.  The margin covers the rest of the calibration set as it covers test
  data (tests/test_sws.py measures a 16-of-256 sample: the whole calibration set peaks at most
  1.6x the sample on the digits ResNet).  Inputs far outside the calibration data CAN overflow: the
  state wraps (two's complement, as the Lava process model and the chip's registers do; the
  simulator models it bit for bit and counts it, `schemes.sws.kernel.state_overflows`), and the
  affected codes then differ from the quantised ANN.
- default (None): calibrated when calibration samples are given (`--calibration`; float models
  need them anyway), else static; a QDQ model compiled without `--calibration` stays static.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
import torch

from ...errors import NeurodeployError, TargetLimitError, UnsupportedError
from ...ir import float_graph as fg
from ...ir import neurons as nrn
from ...ir import synapses as syn
from . import neurons as tsa_ir
from ...ir.spiking import Layer, SpikingGraph
from ...passes import run_passes
from ...lowering.maxpool import refuse_max_pooling
from ...lowering.input_quant import input_quantiser
from ...lowering.pool_layer import lower_fitting_readout
from ...passes.qdq import is_qdq
from ...lowering.grid import quantise_on_grid
from ...lowering.quantize import quantise_layer
from ...lowering.threshold_balance import balance_thresholds
from . import kernel as sws_sim
from ...sim.core import FLOAT32_EXACT, exact_sum_kernels, input_codes
from ...ir.synapse_ops import abs_bound, apply_ops, output_shape
from ...target import Target
from .options import SwsOptions

DEFAULT_CODING_STEPS = 8
DEFAULT_SILENT_STEPS = 2


# The calibrated bound simulates every TSA layer over the calibration samples' digits, Tc synapse
# calls per sample: on a large network that is the whole compile (CIFAR ResNet-18: 4.4 G synaptic
# operations a sample).  It measures the peak on at most this many operations' worth of samples,
# evenly spaced over the calibration set (`peak_samples`; the digits models keep all 256,
# CIFAR ResNet-20 gets 13 of 64, ResNet-18 one); the margin covers the rest (module docstring).
PEAK_SYNAPSE_OPS = 1 << 32

# Fixed-point scale of the float membrane pass (`_unit_peak`): currents in code steps times
# 2^20 keep ~6 significant digits of the peak and stay far inside int64.
_PEAK_SCALE = 1 << 20


def sws_params(options: SwsOptions) -> tuple[int, int, int, bool]:
    tc = getattr(options, "coding_steps", None)
    if tc is not None and options.timesteps is not None and tc != options.timesteps:
        raise NeurodeployError(f"--coding-steps {tc} and --timesteps {options.timesteps} disagree (for sws "
                               "--timesteps is another name of --coding-steps)", "--timesteps",
                               "give only --coding-steps")
    tc = DEFAULT_CODING_STEPS if tc is None and options.timesteps is None else (tc or options.timesteps)
    ts = getattr(options, "silent_steps", None)
    ts = DEFAULT_SILENT_STEPS if ts is None else ts
    beta = int(getattr(options, "beta", 2))
    return int(tc), int(ts), beta, bool(getattr(options, "full_threshold", False))


def state_bound_mode(options: SwsOptions) -> str:
    """"static" or "calibrated" (module docstring, "State bound"); None picks calibrated when
    calibration samples are given, else static.  (The option's choices and --state-margin's range
    are checked with the options: `SwsOptions`.)"""
    mode = getattr(options, "state_bound", None)
    has_cal = getattr(options, "calibration", None) is not None
    if mode is None:
        return "calibrated" if has_cal else "static"
    if mode == "calibrated" and not has_cal:
        raise NeurodeployError("the calibrated state bound needs calibration samples", "--state-bound calibrated",
                               "pass --calibration X.npy (inputs like the deployment data) or use --state-bound static")
    return mode


def _branch_currents(branches, digits: dict, weight_exp: bool) -> torch.Tensor:
    """Σ_branches (W · a_src(τ)) [<< e] for every input step: float64 (N, Tc, *shape).

    digits: source layer -> int8 digit planes (N, Tc, *src_shape).  weight_exp=True: the
    weights are integer mantissas and the result is exact: every partial sum of ternary digits
    times integer weights is an integer of magnitude at most Σ|W| (`abs_bound` on unit inputs),
    so the synapse call runs in float32 where that stays below 2^24 (all such integers are
    exact in float32, whatever the summation order; several times faster than float64's
    convolution), in float64 otherwise (below 2^53 for 8-bit weights).  weight_exp=False: real
    weights (`_unit_peak`'s estimate, which the integer run re-checks): float32, rounded like
    any float32 convolution (relative error ~1e-7, far below the 1% the estimate allows)."""
    total = None
    for b in branches:
        p = digits[b.source]
        n, tc = p.shape[:2]
        exact32 = weight_exp and float(np.max(abs_bound(b.ops, tuple(p.shape[2:]), 1.0))) < FLOAT32_EXACT
        dtype = torch.float32 if exact32 or not weight_exp else torch.float64
        ops = [type(op)(**{**op.__dict__, "weight": np.asarray(op.weight, dtype=np.float64)})
               if isinstance(op, syn.WEIGHTED) else op for op in b.ops]
        with exact_sum_kernels() if weight_exp else contextlib.nullcontext():     # exact sums: any kernel
            c = apply_ops(ops, p.reshape((n * tc,) + tuple(p.shape[2:])).to(dtype)).to(torch.float64)
        if weight_exp:
            c = c * float(1 << b.weight_exp)
        c = c.reshape((n, tc) + tuple(c.shape[1:]))
        total = c if total is None else total + c
    return total


def _per_step(bias, like: torch.Tensor) -> torch.Tensor:
    """A per-channel / per-feature bias shaped to add to currents (N, Tc, C, ...)."""
    b = torch.as_tensor(np.asarray(bias, dtype=np.float64))
    return b.reshape((1, 1, -1) + (1,) * (like.ndim - 3)) if b.ndim else b


def _unit_peak(real_branches, bias_real, neuron: tsa_ir.TSA, digits: dict) -> float:
    """Largest |m| / D of the TSA membrane over the calibration digits, with unrounded weights.

    With exact weights the integer membrane is D times the membrane of a TSA with θ = 1 fed
    the real currents (spike decisions compare m with D·β^Ts/2, so they do not depend on D):
    the peak is linear in D and this one pass gives it for every candidate D (rounding the
    weights moves it slightly; the chosen D is re-checked with the integer run).
    """
    z = _branch_currents(real_branches, digits, weight_exp=False)
    z = z + _per_step(bias_real, z)
    unit = dataclasses.replace(neuron, theta_mant=_PEAK_SCALE)
    peak: list = []
    sws_sim.tsa_run(torch.round(z * _PEAK_SCALE).to(torch.int64), unit, peak=peak)
    return peak[0] / _PEAK_SCALE


def _integer_run(branches, bias_mant, bias_exp, neuron: tsa_ir.TSA, digits: dict, state_bits: int | None):
    """The quantised layer on the calibration digits, as `schemes.sws.kernel` runs it: (digits, peak |m|)."""
    z = _branch_currents(branches, digits, weight_exp=True)
    z = z + _per_step(np.asarray(bias_mant, dtype=np.float64) * float(1 << bias_exp), z)
    peak: list = []
    out, _ = sws_sim.tsa_run(z.to(torch.int64), neuron, peak=peak, state_bits=state_bits)
    return out, int(peak[0])


class _CalibratedBound:
    """state_bound callable for `quantise_layer` / `quantise_on_grid` (see `lowering.quantize.quantise_at`):
    max(margin x the integer membrane peak over the calibration set, the static bound of one
    step's current Σ|W|·2^e + |b|, which a synapse must carry without wrapping).

    It keeps its last integer run: the candidate the quantiser accepts is the last one it
    checked, and `run` hands that run back instead of simulating the layer again."""

    def __init__(self, neuron: tsa_ir.TSA, digits: dict, shapes: dict, target: Target, margin: float,
                 unit_peak: float):
        self.neuron, self.digits, self.shapes, self.target = neuron, digits, shapes, target
        self.margin, self.unit_peak = margin, unit_peak
        self.last = None            # (branches, unit, digits, peak) of the last integer run

    def run(self, q):
        """(digits, peak |m|) of the quantised layer `q` on the calibration digits, with the state
        wrapped at the target's width as the chip does.  The accepted candidate's run from the
        check is that run: its peak x margin (margin >= 1) fits the state, and no value of a TSA
        run exceeds its peak |m| (the reset m - a·β^Ts·D only fires toward zero, past at most
        half a threshold), so nothing wrapped."""
        if self.last is not None and self.last[0] is q.branches and self.last[1] == q.unit \
                and self.last[3] <= self.target.state_max:
            return self.last[2], self.last[3]
        return _integer_run(q.branches, q.bias_mant, q.bias_exp, dataclasses.replace(self.neuron, theta_mant=q.unit),
                            self.digits, self.target.state_bits)

    def __call__(self, branches, bias_mant, bias_exp, unit, exp):
        neuron, digits, shapes, target, margin, unit_peak = (self.neuron, self.digits, self.shapes, self.target,
                                                            self.margin, self.unit_peak)
        # cheap pre-check: the peak is ~linear in D (1% slack: rounded weights can lower it a little)
        if unit * unit_peak * margin > target.state_max * 1.01:
            return float("inf")
        per_step = 0
        for b in branches:
            per_step = per_step + abs_bound(b.ops, shapes[b.source], 1.0) * float(1 << b.weight_exp)
        bias = np.abs(np.asarray(bias_mant, dtype=np.float64)) * float(1 << bias_exp)
        per_step = np.asarray(per_step, dtype=np.float64)
        cur = float(np.max(per_step + (bias.reshape((-1,) + (1,) * (per_step.ndim - 1)) if per_step.ndim > 1
                                       else bias)))
        out, peak = _integer_run(branches, bias_mant, bias_exp, dataclasses.replace(neuron, theta_mant=unit),
                                 digits, None)
        self.last = (branches, unit, out, peak)
        return max(cur, margin * peak)


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


def peak_samples(n: int, synapses_per_sample: float, tc: int) -> int:
    """How many of n calibration samples the calibrated bound simulates: all of them up to
    `PEAK_SYNAPSE_OPS` synaptic operations (samples x Tc x synapses), at least one."""
    per_sample = max(float(synapses_per_sample) * tc, 1.0)
    return int(max(1, min(n, PEAK_SYNAPSE_OPS // per_sample)))


def _synapses_per_sample(real_layers, shapes: dict) -> float:
    """Multiply-accumulates of one sample's synapse calls through the lowered layers: per weighted
    op, its outputs x the weights each output sums (from the shapes alone)."""
    total = 0.0
    for rl in real_layers:
        for b in rl.branches:
            shape = tuple(shapes[b.source])
            for op in b.ops:
                out = output_shape([op], shape)
                if isinstance(op, syn.WEIGHTED):
                    w = np.shape(op.weight)
                    total += float(np.prod(out)) * (float(np.prod(w[1:])) if len(w) > 1 else 1.0)
                shape = out
    return total


def _calibration_digits(enc_layer, calibration, beta: int, tc: int, samples: int | None = None) -> dict:
    """{input layer: its digit planes (N, Tc, *shape) int8} for the calibration samples, or for
    `samples` of them evenly spaced (every ceil(N / samples)-th, from the first)."""
    x = np.asarray(calibration)
    if x.ndim != len(enc_layer.input_shape) + 1 or tuple(x.shape[1:]) != tuple(enc_layer.input_shape) or len(x) < 1:
        raise NeurodeployError(f"calibration samples have shape {x.shape}, the model input is "
                               f"{tuple(enc_layer.input_shape)}", "--calibration", "pass samples shaped (N, *input shape)")
    if samples is not None and samples < len(x):
        x = x[::-(-len(x) // samples)]
    codes = input_codes(enc_layer, torch.as_tensor(x.astype(np.float64)))
    return {enc_layer.name: sws_sim.encode_digits(codes, beta, tc)}


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


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    tc, ts, beta, full = sws_params(options)
    if tc < 1 or ts < 0:
        raise NeurodeployError(f"coding steps {tc} / silent steps {ts} out of range", "--coding-steps",
                               "use Tc >= 1 and Ts >= 0")
    if beta not in (2, 3):
        raise NeurodeployError(f"beta {beta} is not supported", "--beta", "use 2 (a shift) or 3")
    q_levels = tsa_ir.digit_weight_sum(beta, tc)
    graph = run_passes(graph, scheme.passes)
    qdq = _qdq_quantisers(graph, q_levels, tc, beta)
    # the model's own (QDQ) quantisers keep their levels and steps: they are not re-calibrated
    graph = run_passes(graph, [input_quantiser(options.calibration, options.input_bits),
                               balance_thresholds(options.calibration, q_levels, options.percentile, keep=qdq)])
    mode, margin = state_bound_mode(options), float(getattr(options, "state_margin", 4.0))
    # static bound: the TSA membrane holds up to beta^Ts times a layer's partial sums (plus
    # one unit of rounding headroom): reserve those bits of the state.  The readout (no
    # silent period) is always sized this way.
    reserve = int(math.ceil(ts * math.log2(beta))) + 1
    tgt = dataclasses.replace(target, state_bits=target.state_bits - reserve)
    # the readout as the layer loop below quantises it (every source codes 0..q_levels)
    enc, real_layers, pool = lower_fitting_readout(graph, lambda rl, shapes: quantise_layer(
        rl.name, rl.branches, rl.bias, None, shapes, dict.fromkeys(shapes, q_levels), tgt),
        lambda layers: refuse_max_pooling(graph, layers, "max pooling of ternary digit trains is not supported "
                                          "(the paper gives no rule)", "use average pooling"))
    layers = [enc.encoder(tsa_ir.TSAEncoder(code_max=q_levels, beta=beta, coding_steps=tc))]
    shapes, code_max = {enc.name: enc.shape}, {enc.name: q_levels}
    cal = None
    if mode == "calibrated":
        n_peak = peak_samples(len(options.calibration) if np.ndim(options.calibration) else 1,
                              _synapses_per_sample(real_layers, {**shapes, **{rl.name: rl.shape for rl in real_layers}}),
                              tc)
        cal = _calibration_digits(layers[0], options.calibration, beta, tc, n_peak)
    report = {}
    for rl in real_layers:
        if rl.quant is None:
            q = quantise_layer(rl.name, rl.branches, rl.bias, None, shapes, code_max, tgt)
            neuron, step = nrn.Readout(output_scale=1.0 / q.unit), np.asarray(1.0 / q.unit)
        else:
            # lowering puts the quantiser's offset into the bias (code = floor(U)); the TSA
            # rounds by itself (floor(U + 1/2)), so remove 1/2 of it, and spread the bias over
            # the Tc input steps.  The rest of the offset is a QDQ zero point (Eq. 17's Z_o).
            bias_real = (rl.bias - 0.5) / q_levels
            proto = tsa_ir.TSA(theta_mant=1, code_max=q_levels, beta=beta, coding_steps=tc,
                               silent_steps=ts, relu=True, full_threshold=full)
            qt, kw = tgt, {}
            if cal is not None:
                unit_peak = _unit_peak(rl.branches, bias_real, proto, cal)
                qt = target                      # the measured peak includes the β^Ts amplification
                check = _CalibratedBound(proto, cal, shapes, target, margin, unit_peak)
                kw = {"state_bound": check,
                      "unit_cap": max(1, int(target.state_max / (margin * unit_peak))) if unit_peak > 0 else None}
            # a QDQ layer's weights are the model's 8-bit integers times one step: keep them
            q = quantise_on_grid(rl.name, rl.branches, bias_real, q_levels, shapes, code_max, qt, **kw) \
                if rl.float_node in qdq else None
            if q is None:
                q = quantise_layer(rl.name, rl.branches, bias_real, q_levels, shapes, code_max, qt,
                                   prefer_large_unit=True, **kw)
            neuron = dataclasses.replace(proto, theta_mant=q.unit)
            step = np.asarray(rl.quant.out_step)
            code_max[rl.name] = q_levels
            bound = tsa_state_bound(q.branches, q.bias_mant.astype(np.int64) << q.bias_exp, neuron, shapes)
            extra = {"state_bound": bound, "state_bound_mode": mode}
            if cal is None and bound > target.state_max:
                raise TargetLimitError(f"the TSA membrane can reach {bound} > the target's "
                                       f"{target.state_bits}-bit state", f"layer '{rl.name}'",
                                       "use fewer silent steps, fewer coding steps or --target cpu")
            if cal is not None:       # the next layers calibrate on this layer's own digits
                cal[rl.name], peak = check.run(q)
                extra["state_peak_calibration"] = peak
        shapes[rl.name] = rl.shape
        layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron, step, rl.float_node))
        report[rl.name] = {**q.report(), **(extra if rl.quant is not None else {})}
    net = SpikingGraph(scheme.name, target.name, layers, {"quantisation": report})
    sch = sws_sim.schedule(net)
    net.meta.update({
        "time_steps_per_layer": {l.name: (l.neuron.steps if isinstance(l.neuron, tsa_ir.TSA) else tc)
                                 for l in layers if not getattr(l, "is_readout", False)},
        "latency_steps": sch["latency_steps"], "throughput_steps": sch["throughput_steps"],
        "sws": {"beta": beta, "coding_steps": tc, "silent_steps": ts, "levels": q_levels,
                "full_threshold": full, "state_bound": mode,
                "state_margin": margin if mode == "calibrated" else None,
                "calibration_samples": int(len(cal[enc.name])) if mode == "calibrated" else None,
                "offsets": sch["offsets"], "branch_delays": sch["branch_delays"],
                "tsa_layers_on_longest_path": sch["tsa_layers_on_longest_path"]},
    })
    if pool is not None:
        net.meta["readout_pool_layer"] = pool
    return net
