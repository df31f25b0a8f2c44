"""`sdnn`: sigma-delta neural networks with graded spikes, Lava-DL's native way to run ANNs.

Every hidden activation becomes a ReLU `SigmaDelta` neuron (lava/proc/sdn, the arithmetic is
in `schemes/sdnn/neurons.py`) that sends the *changes* of its activation as graded payloads; the readout
is a `Sigma` accumulator.  QCFS activations are run as plain ReLUs (Lava's SigmaDelta has no
clip and no quantiser); ReLU models need --calibration.

Integer units (NetX fixes spike_exp = state_exp = 6):
  * layer l's payload LSB is worth s_l in the ANN's units (its `value_step`); its integer
    activation is act = W_int . p_src + (bias << 12) and its payload code floor(act / 64);
  * weights are 8-bit mantissas stored NetX/slayer style as even integers 2*m,
    |m| <= 127, so a weight w (ANN value of layer l per payload LSB of its source)
    becomes 2*round(32 * w * s_src / s_l);
  * s_l is as fine as the weights allow (the largest weight uses the whole mantissa) but
    no finer than lambda_l / (code_max / 8), where lambda_l is the activation's range
    (calibration percentile for ReLUs, the trained lambda for QCFS, widened to the percentile
    of |negative pre-activations|: sigma is a 24-bit register and Lava's Conv output wraps
    at 24 bits) and code_max = state_max >> 6: the 24-bit state keeps 8x headroom;
  * the bias is an integer in units of 2^12 act = 64 payload LSBs (the coarsest number of
    the scheme: at most 32 payload LSBs of rounding); lambda_l is at least the largest |bias|
    (an unclipped ReLU outputs it), and s no finer than max|b| / (64 * 32767): Lava's
    SigmaDelta bias is a signed 16-bit number;
  * the input codes are sent shifted left by `meta["sdnn_input_shift"]` (the first
    branches' weight_exp), so that the first layer reaches the fine step its range asks for
    (otherwise its codes stay small next to the 64-LSB bias unit: 28% on digits without it);
  * the readout's weights use its whole mantissa, coarsened if needed so that the
    calibrated output range fits its 24-bit sigma twice and its bias the state-wide field;
    Lava's Sigma has no bias, so the host adds the readout bias to sigma.

Exactness.  Our simulator reproduces Lava's fixed-point SigmaDelta / Sigma models bit for
bit (tests/test_sdnn.py runs the NetX file we export).  The reference is the integer ReLU
network code_l = floor(max(W_int . code_src + (bias << 12), 0) / 64) (`sim.reference`
with `SigmaDelta.v_th_mant` = 64).  With vth = 0 (the default: every change is sent) the
settled codes equal it whenever every transient partial activation of a neuron is a multiple
of 64; that holds for the first two hidden layers always (layer 1's early activity is its
bias << 12, layer 2's is a multiple of 64) and for every layer when no hidden bias is
positive.  Deeper layers of networks with positive biases can lose up to one payload LSB per
early spike to Lava's `s >> state_exp` (measured: at most 1 LSB on codes of ~10^4);
`exact_layers` says which layers are guaranteed; verify counts the others' mismatches.
vth > 0 adds a dead zone: changes below vth << 12 (vth * 64 payload LSBs) stay in the
residue (still bit-exact with Lava, no longer equal to the reference).  Not modelled by the
reference: Lava's 24-bit wrap of a convolution's per-step output (the simulator does it).
The network settles after depth + 1 steps (depth = synapse hops to the readout).
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from . import neurons as sd
from ...ir import synapses as syn
from ...ir.spiking import Branch, Layer, SpikingGraph
from ...passes import input_quantiser, run_passes
from ...lowering.maxpool import refuse_max_pooling
from ...lowering.input_quant import input_quantiser as input_quantiser_pass
from ...lowering.lower import lower
from ...lowering.quantize import round_half_away
from ...ir.float_eval import evaluate
from ...sim.core import depth
from ...target import Target

SPIKE_EXP = STATE_EXP = 6      # what NetX hard-codes (hdf5.py L170-189)
HEADROOM = 8                   # act range kept above the calibrated activation range


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    graph = run_passes(graph, [*scheme.passes, input_quantiser_pass(options.calibration, options.input_bits)])
    # one float64 pass over the calibration samples gives the output range and every activation's
    # input (the model's cost at compile time: a pass per use would double or triple it)
    vals = None if options.calibration is None else \
        evaluate(graph, np.asarray(options.calibration, dtype=np.float64), keep=_activation_inputs(graph))
    out_range = 0.0 if vals is None else float(np.max(np.abs(vals[graph.output])))
    graph, lams = _unit_activations(graph, vals, options.percentile)
    enc, real_layers = lower(graph)
    refuse_max_pooling(graph, real_layers, "max pooling of sigma-delta payloads is not the max of activations",
                       "use average pooling or the bitplane scheme")
    m_max = target.weight_mant_max
    code_max = target.state_max >> STATE_EXP
    layers = [enc.encoder(sd.DeltaEncoder(int(enc.quant.levels)))]
    # The injector sends each input code shifted left by `in_shift` (the first synapses'
    # weight_exp), so that the first layer's 8-bit weights can reach the fine value step its
    # activation range asks for (otherwise its codes stay tiny next to the 64-LSB bias unit).
    in_shift = _input_shift(real_layers, enc.name, lams, code_max, m_max)
    step = {enc.name: 1.0 / (1 << in_shift)}      # ANN units per input payload LSB (x code step)
    report = {}
    for rl in real_layers:
        w_abs = max(float(np.max(np.abs(syn.weighted_op(b.ops).weight))) * step[b.source]
                    for b in rl.branches)
        if rl.quant is None:
            # the readout's sigma is a 24-bit register on the chip: keep 2x headroom over the
            # calibrated output range (Lava's CPU model would not wrap, Loihi would)
            # ... and the host adds a bias that must fit the readout's state-wide bias field:
            # without --calibration (out_range 0) nothing else bounds the unit from below
            unit = max(w_abs / (2 * m_max) if w_abs > 0 else 1.0, 2.0 * out_range / target.state_max,
                       _max_abs(rl.bias) / target.state_max)
            branches = [_scaled(b, step[b.source] / unit / 2, 2, m_max, in_shift if b.source == enc.name else 0)
                        for b in rl.branches]
            bias = round_half_away(np.asarray(rl.bias) / unit)
            neuron, value_step = sd.Sigma(output_scale=unit), np.asarray(unit)
            bias_out = bias
        else:
            s = max(_scale_floor(rl, lams, code_max), 32.0 * w_abs / m_max)
            if not np.isfinite(s) or s <= 0:
                s = 1.0
            branches = [_scaled(b, 32.0 * step[b.source] / s, 2, m_max, in_shift if b.source == enc.name else 0)
                        for b in rl.branches]
            bias_out = round_half_away(np.asarray(rl.bias) / s / (1 << SPIKE_EXP))   # fits: _scale_floor
            neuron = sd.SigmaDelta(vth=scheme.vth, code_max=int(code_max), spike_exp=SPIKE_EXP,
                                   state_exp=STATE_EXP)
            value_step, unit = np.asarray(s), s
            step[rl.name] = s
        layers.append(Layer(rl.name, rl.shape, branches, np.asarray(bias_out, dtype=np.int64), 0, neuron,
                            value_step, rl.float_node))
        report[rl.name] = {"value_step": float(unit), "weight_rel_error": _rel_err(rl, branches, step, unit),
                           "bias_max_error": float(np.max(np.abs(
                               np.asarray(rl.bias) / unit - bias_out * (1 if rl.quant is None else 64))))}
    net = SpikingGraph(scheme.name, target.name, layers, {"quantisation": report})
    hops = depth(net)
    # samples run back to back as input deltas settle exactly only one at a time: no pipelining
    net.meta.update({"latency_steps": hops + 1, "throughput_steps": hops + 1, "sdnn_vth": scheme.vth,
                     "sdnn_exps": [SPIKE_EXP, STATE_EXP], "sdnn_input_shift": in_shift})
    return net


def exact_layers(graph: SpikingGraph) -> set:
    """Layers whose settled codes (readout: state) provably equal the integer ReLU reference
    (vth = 0).  Early activity (before the data arrives) starts at the first layer with a
    positive bias, hop h0: its early act is bias << 12, a multiple of 4096 (payload multiple of
    64); the next layer's early act is then a multiple of 64, so its floors are exact too; from
    hop h0 + 2 on, early payloads are arbitrary and a later change can lose up to one LSB per
    early spike to s >> 6.  Readouts (sigma, no floor) are exact when all their sources are."""
    if any(getattr(l.neuron, "vth", 0) for l in graph.neuron_layers()):
        return {graph.input.name}
    hops = {graph.input.name: 0}
    h0 = np.inf
    for l in graph.neuron_layers():
        hops[l.name] = 1 + max(hops[b.source] for b in l.branches)
        if not l.is_readout and np.any(np.asarray(l.bias) > 0):
            h0 = min(h0, hops[l.name])
    out = {graph.input.name}
    for l in graph.neuron_layers():
        if l.is_readout:
            if all(b.source in out for b in l.branches):
                out.add(l.name)
        elif hops[l.name] <= h0 + 1:
            out.add(l.name)
    return out


def _max_abs(x) -> float:
    return float(np.max(np.abs(x))) if x is not None and np.size(x) else 0.0


def _scale_floor(rl, lams: dict, code_max: int) -> float:
    """Finest value step s (ANN units per payload LSB) hidden layer `rl` may use.  Its range
    with HEADROOM must fit code_max, and the range is at least its largest |bias|: a ReLU
    (or a QCFS run as one, unclipped) outputs its bias where the synaptic sum is 0 -- a
    saturated or dead channel, as BatchNorm folded into a stem gives, has |bias| >> lambda.
    And the bias, an integer in units of 64 s, must fit Lava's signed 16-bit SigmaDelta bias
    (the binding bound on targets with wide states: --target cpu)."""
    bias_max = _max_abs(rl.bias)
    return max(max(lams[rl.float_node], bias_max) * HEADROOM / code_max,
               bias_max / ((1 << SPIKE_EXP) * sd.SIGMA_DELTA_BIAS_MAX))


def _input_shift(real_layers, input_name: str, lams: dict, code_max: int, m_max: int) -> int:
    """Smallest left shift of the input codes with which no first-layer weight bound is
    coarser than that layer's `_scale_floor` (at most 16)."""
    shift = 0
    for rl in real_layers:
        if rl.quant is None:
            continue
        for b in rl.branches:
            if b.source != input_name:
                continue
            w = float(np.max(np.abs(syn.weighted_op(b.ops).weight)))
            want = _scale_floor(rl, lams, code_max)
            if w > 0 and want > 0:
                shift = max(shift, int(np.ceil(np.log2(max(32.0 * w / (m_max * want), 1.0)))))
    return min(shift, sd.MAX_INPUT_SHIFT)


def _scaled(b, factor: float, mult: int, m_max: int, weight_exp: int = 0) -> Branch:
    """Branch with weight = mult * round(w * factor), mantissa clipped to +-m_max."""
    ops = []
    for op in b.ops:
        if isinstance(op, syn.WEIGHTED):
            mant = np.clip(round_half_away(np.asarray(op.weight) * factor), -m_max, m_max)
            op = type(op)(**{**op.__dict__, "weight": (mant * mult).astype(np.int64)})
        ops.append(op)
    return Branch(b.source, ops, weight_exp)


def _rel_err(rl, branches, step, unit) -> float:
    num = den = 0.0
    k = 1.0 if rl.quant is None else 64.0
    for rb, qb in zip(rl.branches, branches):
        w = syn.weighted_op(rb.ops).weight * step[rb.source]
        wq = syn.weighted_op(qb.ops).weight * unit / k
        num += float(np.sum((w - wq) ** 2))
        den += float(np.sum(w ** 2))
    return float(np.sqrt(num / den)) if den else 0.0


def _activations(graph: fg.FloatGraph) -> tuple[list, list]:
    """(the hidden ReLUs, every hidden activation (ReLU or QuantAct) but the input quantiser)."""
    # the input quantiser, read through the host's zero padding of a signed input (lowering.input_quant)
    first = input_quantiser(graph)
    relus = [n for n in graph.topo_order() if isinstance(graph.op(n), fg.Relu)]
    acts = [n for n in graph.topo_order() if n != first and isinstance(graph.op(n), (fg.Relu, fg.QuantAct))]
    return relus, acts


def _activation_inputs(graph: fg.FloatGraph) -> set:
    """The nodes whose calibration values `_unit_activations` reads (and the output's, for its range)."""
    relus, acts = _activations(graph)
    return {graph.inputs(n)[0] for n in relus + acts} | {graph.output}


def _unit_activations(graph: fg.FloatGraph, vals: dict | None, percentile: float):
    """Replace every hidden activation (ReLU or QCFS) by a unit quantiser (in_scale 1,
    offset 0, out_step 1) so that `lower` yields weights in ANN value units; return the
    activations' ranges lambda (calibration percentile for ReLUs, trained lambda for QCFS),
    widened to the percentile of |negative pre-activations| when calibration data is given.
    vals: the calibration samples' float values of `_activation_inputs(graph)` (None: no calibration)."""
    graph = graph.copy()
    first = input_quantiser(graph)
    relus, acts = _activations(graph)
    lams: dict[str, float] = {}
    neg_range: dict[str, float] = {}
    if relus:
        if vals is None:
            raise NeurodeployError(f"the model has {len(relus)} ReLU activation(s); sdnn needs their ranges",
                                   graph.source, "pass --calibration x.npy (a few hundred samples)")
        for n in relus:
            v = vals[graph.inputs(n)[0]]
            pos = v[v > 0]
            lams[n] = float(np.percentile(pos, percentile)) if pos.size else 1.0
    if vals is not None:
        # sigma (pre-ReLU) is a 24-bit register too, and a convolution's output wraps at 24 bits
        # in Lava: size the range for strongly negative pre-activations as well
        for n in acts:
            neg = -vals[graph.inputs(n)[0]]
            neg_range[n] = float(np.percentile(neg[neg > 0], percentile)) if np.any(neg > 0) else 0.0
    for name in graph.topo_order():
        op = graph.op(name)
        if name == first:
            continue
        if isinstance(op, fg.QuantAct):
            lams[name] = float(np.max(np.asarray(op.out_step) * op.levels))
        elif not isinstance(op, fg.Relu):
            continue
        graph.set_op(name, fg.QuantAct(in_scale=np.asarray(1.0), offset=np.asarray(0.0), levels=1 << 30,
                                       out_step=np.asarray(1.0)))
        graph.origin[name] = f"{graph.origin.get(name, 'activation')} -> sdnn ReLU"
    return graph, {n: max(lam, neg_range.get(n, 0.0)) for n, lam in lams.items()}
