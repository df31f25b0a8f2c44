"""`cuba`: a LIF SNN trained in neurodeploy (`nn.LIF`, `train.fit`) on Loihi 2's stock CUBA LIF.

The float SNN (front ends: `schemes.cuba.front.load_lif_model` for neurodeploy's LIF networks,
`frontends.nir` for NIR graphs, whose neuron ops carry their own decays and readout through
`cuba_decays` / `cuba_readout`) already spikes; this scheme
only maps it to the chip's formats: BatchNorm folded into the weights, each LIF layer a
`schemes.cuba.neurons.CubaLIF` with dv = round(4096 (1 - lambda)), du = 4095 (no current state:
u = a_in << 6 every step), threshold v_th_mant = D (17-bit) and real weights w (in units of
the threshold) as 8-bit mantissas w_mant = round(w D / 2^e) << e, the bias as
bias_mant = round(b D) with bias_exp = 6 (NetX's choice; bias_mant in a_in units).  The
input is quantised to codes (`input_bits`) sent as graded spikes at every step; the readout
is a LIF that never fires and integrates W s + b; the host reads its v after step depth and
after step R and reports the difference (the T steps that answer the input).  Every synapse delays by one step, as in
Lava, so the network runs R = T + depth steps (depth = synapse hops input -> readout).

Guarantee: none (exact = False).  The fixed-point SNN differs from the float SNN by weight,
bias and input rounding, Lava's round-toward-zero decay, and the pipeline: a hidden layer
starts with its bias alone while the delayed input is still on its way (its first steps
differ from the float SNN's; the readout window skips the fill but not its after-effects).  `reports.verify.compare_accuracy` reports float-SNN vs fixed-point-SNN accuracy and
agreement; `tests/test_cuba.py` checks bit-exactness against Lava.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import NeurodeployError, TargetLimitError, UnsupportedError
from . import neurons as cb
from ...ir import float_graph as fg
from ...ir import synapses as syn
from ...ir.spiking import Branch, Layer, SpikingGraph
from ...passes import run_passes
from ...lowering.maxpool import refuse_max_pooling
from ...lowering.input_quant import input_quantiser
from ...lowering.lower import lower
from ...lowering.quantize import round_half_away
from ...ir.synapse_ops import abs_bound
from ...target import Target
from .options import CubaOptions


def _lif_act():
    from .front import LIFAct
    return LIFAct


@dataclass
class CubaQuant:
    branches: list
    bias_mant: np.ndarray
    unit: int              # D: v_th_mant (hidden) or the readout's integer units per ANN unit
    weight_exp: int
    a_in_bound: int        # static max |a_in| of one step
    weight_rel_error: float
    bias_max_error: float  # in threshold (hidden) / ANN (readout) units per step


def _quantise(name: str, real_branches: list, bias_real: np.ndarray, src_shapes: dict, src_max: dict,
              target: Target, run_steps: int = 1, netx: bool = True) -> CubaQuant:
    """Pick (e, D) with the finest weight step 2^e / D (ties: the larger D, finer bias) such that
    |w_mant| <= 127, D <= 131071, |bias_mant| <= 4095 and run_steps * (max |a_in| + max |bias_mant|)
    <= 131071 (per step: u = a_in << 6 never wraps; over the run, for the readout: v never
    reaches its threshold).  With `netx`, a layer fed through a Dense synapse uses e = 1: NetX
    re-derives Dense weight exponents itself (`netx.utils.optimize_weight_bits`) and only keeps
    even weights in [-256, 254] (a_in units), i.e. exactly W_mant << 1 (loihi.md §D.4); a
    per-feature ChannelScale (the NIR front end's spike-count readout) is a diagonal Dense."""
    m_max = target.weight_mant_max
    w_max = max(float(np.max(np.abs(syn.weighted_op(b.ops).weight))) for b in real_branches)
    b_max = float(np.max(np.abs(bias_real))) if np.size(bias_real) else 0.0
    limit = cb.A_IN_MAX // run_steps
    best = None
    exps = range(max(0, target.weight_exp_min), target.weight_exp_max + 1)
    if netx and any(_netx_dense(op, src_shapes[b.source]) for b in real_branches for op in b.ops):
        exps = [1]
    for e in exps:
        d = cb.VTH_MAX if w_max == 0 else min(int(np.floor(m_max * (1 << e) / w_max)), cb.VTH_MAX)
        if b_max > 0:
            d = min(d, int(np.floor((cb.BIAS_MANT_MAX + 0.5) / b_max)))
        while d >= 1:
            got = _try(real_branches, bias_real, d, e, src_shapes, src_max)
            if got is not None and got[2] + int(np.max(np.abs(got[1]), initial=0)) <= limit:
                break
            d = d * 7 // 8 if d > 8 else d - 1
        if d < 1:
            continue
        key = ((1 << e) / d, -d)
        if best is None or key < best[0]:
            best = (key, e, d, got)
    if best is None:
        raise TargetLimitError(f"cannot represent this layer in Loihi's CUBA formats (weights up to {w_max:.3g}, "
                               f"bias up to {b_max:.3g} threshold units)", f"layer '{name}'",
                               "use fewer time steps, smaller weights/biases or fewer inputs")
    _, e, d, (branches, bias_mant, bound) = best
    num = den = 0.0
    for rb, qb in zip(real_branches, branches):
        w = syn.weighted_op(rb.ops).weight
        num += float(np.sum((w - syn.weighted_op(qb.ops).weight * float(1 << e) / d) ** 2))
        den += float(np.sum(w ** 2))
    b_err = float(np.max(np.abs(bias_real - bias_mant / d))) if np.size(bias_real) else 0.0
    return CubaQuant(branches, bias_mant, d, e, bound, float(np.sqrt(num / den)) if den else 0.0, b_err)


def _netx_dense(op, src_shape) -> bool:
    """A synapse NetX stores as a Dense layer: Dense, or a per-feature ChannelScale (a diagonal Dense)."""
    return isinstance(op, syn.Dense) or (isinstance(op, syn.ChannelScale) and len(src_shape) == 1)


def _try(real_branches, bias_real, d, e, src_shapes, src_max):
    branches, bound = [], 0.0
    for b in real_branches:
        ops = []
        for op in b.ops:
            if isinstance(op, syn.WEIGHTED):
                op = type(op)(**{**op.__dict__, "weight": round_half_away(op.weight * d / float(1 << e))})
            ops.append(op)
        branches.append(Branch(b.source, ops, e))
        bound = bound + abs_bound(ops, src_shapes[b.source], src_max[b.source]) * float(1 << e)
    bias_mant = round_half_away(bias_real * d)
    if np.any(np.abs(bias_mant) > cb.BIAS_MANT_MAX):
        return None
    return branches, bias_mant, int(np.max(bound))


def _depth(real_layers, input_name: str) -> int:
    hops = {input_name: 0}
    for rl in real_layers:
        hops[rl.name] = 1 + max(hops[b.source] for b in rl.branches)
    return hops[real_layers[-1].name]


def _readout(graph: fg.FloatGraph, unit: int, t: int, depth: int) -> cb.CubaReadout:
    """The readout neuron: the graph's output op says what it reads (`cuba_readout`, e.g. the NIR
    front end's leaky or spike-count readouts); by default the mean over the T steps of W s + b."""
    make = getattr(graph.op(graph.output), "cuba_readout", None)
    if make is not None:
        return make(unit, t, depth)
    return cb.CubaReadout(output_scale=1.0 / ((1 << cb.ACT_SHIFT) * unit * t), window_start=depth)


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    t = options.timesteps
    if t is None or t < 1:
        raise NeurodeployError("the cuba scheme needs the number of time steps the LIF network averages over",
                               "--timesteps", "pass the T the model was trained with (e.g. --timesteps 4)")
    LIFAct = _lif_act()
    lifs = [n for n in graph.topo_order() if isinstance(graph.op(n), LIFAct)]
    if not lifs:
        raise UnsupportedError("the model has no LIF layer", graph.source,
                               "the cuba scheme compiles LIF networks (schemes.cuba.front.load_lif_model)")
    graph = run_passes(graph, [*scheme.passes, input_quantiser(options.calibration, options.input_bits)])
    enc, real_layers = lower(graph)
    refuse_max_pooling(graph, real_layers, "max pooling has no stock Loihi synapse", "use average pooling")
    notes = []
    for rl in real_layers:
        if rl.quant is not None and not isinstance(rl.quant, LIFAct):
            raise UnsupportedError(f"{type(rl.quant).__name__} is not a LIF layer", f"layer '{rl.name}'",
                                   "the cuba scheme compiles networks of neurodeploy.nn.LIF neurons only")
        if rl.quant is not None and (rl.quant.reset != "zero" or not rl.quant.strict):
            notes.append(f"{rl.name}: trained with reset={rl.quant.reset!r}, strict={rl.quant.strict}; "
                         "Loihi's LIF resets to 0 and fires on v > v_th")
    depth = _depth(real_layers, enc.name)
    run_steps = t + depth
    layers = [enc.encoder(cb.CubaEncoder(code_max=int(enc.quant.levels), n_steps=run_steps, timesteps=t))]
    shapes, src_max = {enc.name: enc.shape}, {enc.name: float(enc.quant.levels)}
    report = {}
    for rl in real_layers:
        if rl.quant is None:
            # v(R) - v(depth) = 64 D (sum over the last T steps of W s + T b): the float mean times 64 D T
            q = _quantise(rl.name, rl.branches, rl.bias, shapes, src_max, target, run_steps, scheme.netx)
            neuron = _readout(graph, q.unit, t, depth)
            step = np.asarray(1.0 / q.unit)
        else:
            du, dv, u_steps, decay_notes = rl.quant.cuba_decays(rl.name)
            notes += decay_notes
            # u sums up to 1/(1 - alpha) steps of input: size a_in so that it never wraps
            q = _quantise(rl.name, rl.branches, rl.bias, shapes, src_max, target, u_steps, scheme.netx)
            neuron = cb.CubaLIF(du=du, dv=dv, v_th_mant=q.unit)
            step = np.asarray(1.0)
        shapes[rl.name], src_max[rl.name] = rl.shape, 1.0
        layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant.astype(np.int64), cb.NETX_BIAS_EXP,
                            neuron, step, rl.float_node))
        report[rl.name] = {"weight_exp": q.weight_exp, "unit": q.unit, "a_in_bound": q.a_in_bound,
                           "weight_rel_error": q.weight_rel_error, "bias_max_error": q.bias_max_error}
    net = SpikingGraph(scheme.name, target.name, layers, {"quantisation": report})
    net.meta.update({"timesteps": t, "latency_steps": run_steps, "throughput_steps": run_steps,
                     "time_steps_per_layer": {l.name: run_steps for l in layers[:-1]},
                     "depth": depth, "notes": notes})
    return net


def compile_lif(model, example_input, timesteps: int, calibration: np.ndarray | None = None, input_bits: int = 8,
                target: str = "loihi2", netx: bool = True) -> SpikingGraph:
    """Convenience: LIF torch model -> cuba SpikingGraph (front end + this scheme)."""
    from .front import load_lif_model
    from ...target import load_target
    graph = load_lif_model(model, example_input)
    cal = calibration if calibration is not None else np.asarray(example_input)
    from . import Cuba
    opts = CubaOptions(calibration=cal, timesteps=timesteps, input_bits=input_bits)
    return Cuba(netx).compile(graph, load_target(target), opts)
