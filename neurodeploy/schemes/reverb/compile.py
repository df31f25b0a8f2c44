"""`reverb`: a trained ReverB-SNN (binary synapses, graded spikes; digest §4) on Loihi 2.

Pipeline: front end `schemes.reverb.front` -> `schemes.reverb.fold` (BN and α leave the
synapses, which stay ±1) -> this scheme, which maps the folded float network to the
integer neurons of `schemes.reverb.neurons` (the spec of the arithmetic):

* Payload units (value of one payload LSB), one per spiking layer (the consumer's ±1
  synapses add payloads of all its input channels, so they must share one unit): from a
  float run of the folded network over the calibration set,
  ``u = max(E / (2^bits − 1), M·MARGIN / (g·π·(2^23 − 1)), max|bias| / (g·π·B_max))``
  with E the largest graded spike the layer emitted (the max, not a percentile: at 16 bits
  an outlier costs little resolution, while clipping a graded spike changes every consumer),
  M the consumer's largest |membrane| or |per-step input|, g its weight step (1 for ±1),
  π its average-pool factor 1/k², B_max = bias_mant_max·2^bias_exp_max.  The second and third
  terms keep the consumer's 24-bit v and its bias inside the chip's formats with a factor
  MARGIN = 2 over the calibration maxima; when they win, the layer uses fewer payload bits
  than asked (reported in `meta["quantisation"]`), and when not even one payload level is
  left the compile fails (TargetLimitError naming the layer).  The input encoder's codes are
  payloads of `input_bits` bits, unit u_0, scaled per channel by the first layer's |α|.
* A layer's membrane v is in units of in_unit = u_src·g·π (Ũ = v·in_unit), so
  ``v_th_mant = ceil(θ/in_unit)`` per channel: for an integer v, ``v ≥ ceil(θ/in_unit)`` is
  exactly ``v·in_unit ≥ θ``, the float fire test on the fixed-point membrane (a relative 1e-9
  tolerance absorbs float noise in θ/in_unit).  The bias per step c/in_unit becomes
  bias_mant (13-bit signed) << bias_exp (0..7), the smallest exponent that fits.
* Emission: p = round(v·κ·in_unit/u_out) = (v·out_mant + half) >> out_shift with one
  out_shift per layer chosen so that the smallest non-zero out_mant has ≥ 16 bits (relative
  error ≤ 2^-16), unless the largest would then exceed 24 bits (then the largest has 24 bits
  and the smallest channel's precision is reported).  κ and out_mant are per channel (C,),
  or per neuron (the layer shape) where the folding left a per-neuron emit_scale (the
  consumer's α varies within a channel: a BinaryLinear after a Flatten); the rule that
  chooses out_shift is the same, over all the layer's non-zero multipliers.
* Weights: binary layers ±1, weight_exp 0 (1-bit synapses); real-valued layers (first/last
  nn.Conv2d/Linear) 8-bit mantissas round(w/δ), δ = max|w|/127, weight_exp 0 (δ is part of
  the layer's in_unit, so no exponent is needed).  Average pooling becomes SumPool (π above);
  max pooling directly after a neuron stays a MaxPool of payloads (one unit per layer).
* Time: layer-synchronous T local steps; start_step = hop depth (every synapse delays one
  step on the chip); the readout integrates T steps, output_scale = in_unit / T.
* Residual basic blocks (`schemes.reverb.fold` step 4): the block's second neuron becomes a
  two-branch `Layer`: branch 0 its binary conv2 from h, branch 1 the folded real-valued
  shortcut from the block input x (identity -> `ChannelScale`, 1x1 conv -> `Conv`), both
  adding into the one membrane unit in_unit.  x's payload unit is fixed by its binary
  consumer (conv1), so the shortcut's real weights w (Ũ units per unit of x's emitted value)
  become 8-bit mantissas round(w·u_x / (in_unit·2^e)) with a branch exponent e ≥ 0, and
  r = max|w|·u_x/in_unit_0 (in_unit_0 = u_h·g·π as for a sequential layer) decides:
  r ≤ 127 -> the membrane unit gets finer, in_unit = in_unit_0 / 2^k with the largest
  k ≤ log2(127/r) that keeps the 24-bit state and the bias within MARGIN / their format and
  k ≤ the target's weight_exp_max, and conv2's ±1 synapses get weight_exp k (still 1-bit
  weights, a per-branch exponent); r > 127 -> k = 0 and the shortcut takes
  e = ceil(log2(r/127)) (TargetLimitError above weight_exp_max).  The shortcut branch is
  reported in meta["real_branches"] (8-bit synapses in the memory report); start_step =
  1 + the deepest source (the Lava backend delays the shallower shortcut).

Guarantee: none (exact = False): payload, weight, bias and threshold rounding and Loihi's
round-toward-zero leak move the fixed-point network away from the float SNN; `verify`
reports both accuracies and their agreement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import NeurodeployError, TargetLimitError, UnsupportedError
from ...ir import float_graph as fg
from . import neurons as rv
from . import float_model as rf
from ...ir import synapses as syn
from ...ir.spiking import Branch, InputEncoder, Layer, SpikingGraph
from ...passes import run_passes
from .fold import node_shapes, sequential_chain
from ...lowering.quantize import round_half_away
from ...lowering.maxpool import padding_before, spiking_maxpool
from ...target import Target

DEFAULT_TIMESTEPS = 4        # the T of the ReverB paper's CIFAR runs and of models/ training
MARGIN = 2.0                 # headroom of the 24-bit state over the calibration maxima
OUT_MANT_MIN_BITS = 16       # precision of the emission multiplier (smallest non-zero channel)
OUT_MANT_MAX_BITS = 24       # cap of the emission multiplier
CAL_BATCH = 256


@dataclass
class Stage:
    """One weighted layer of the folded chain: its synapses from `source` and its neuron (None = readout)."""
    name: str                      # IR layer name
    source: str                    # IR name of the source layer
    pre: list                      # float pass-through ops between source and weighted op
    weighted: str                  # float node of the weighted op
    act: str | None                # float node of the ReverbAct (None for the readout)
    binary: bool
    pool: float = 1.0              # average-pool factor π of the branch
    depth: int = 1
    stats_src: str = ""            # float node whose values are the source's graded spikes
    shortcut: "Shortcut | None" = None   # residual block: the second, real-valued branch


@dataclass
class Shortcut:
    """The folded shortcut of a residual stage: float node `node` (Scale or Conv) fed by the
    float node `stats_src` (a ReverbAct) of IR layer `source`; `join` is the float Add."""
    source: str
    node: str
    stats_src: str
    join: str


@dataclass
class _Cal:
    """Calibration maxima merged over batches."""
    stats: dict = field(default_factory=dict)

    def add(self, st: dict) -> None:
        for k, s in st.items():
            if k not in self.stats:
                self.stats[k] = s
                continue
            a = self.stats[k]
            a.emit_max, a.u_max = max(a.emit_max, s.emit_max), max(a.u_max, s.u_max)
            a.sum_max = max(a.sum_max, s.sum_max)


def plan(folded: fg.FloatGraph) -> tuple[str, list[Stage]]:
    """(float node of the input's graded values, stages) of a folded ReverB graph: the chain
    without its shortcuts (`_plan_chain`), each shortcut then attached to the stage of the
    neuron its Add feeds."""
    joins = [n for n in folded.topo_order() if isinstance(folded.op(n), fg.Add)]
    if not joins:
        return _plan_chain(folded)
    spine, cuts = folded.copy(), {}
    for j in joins:
        (act,), (_, sc) = folded.consumers(j), folded.inputs(j)     # fold_reverb wires Add(conv2, shortcut)
        (x,) = folded.inputs(sc)
        spine.g.remove_node(sc)
        spine.bypass(j)
        cuts[act] = (sc, x, j)
    enc_node, stages = _plan_chain(spine)
    by_act = {st.act: st for st in stages if st.act is not None}
    for act, (sc, x, j) in cuts.items():
        st, src = by_act[act], by_act.get(x)
        if src is None or not st.binary:
            raise UnsupportedError("a residual block whose shortcut source or main conv is not a ReverB layer",
                                   folded.where(j), "use neurodeploy.nn.reverb.ReverBBasicBlock")
        st.shortcut = Shortcut(src.name, sc, x, j)
    return enc_node, stages


def _plan_chain(folded: fg.FloatGraph) -> tuple[str, list[Stage]]:
    """(float node of the input's graded values, stages) of a folded sequential ReverB graph."""
    chain = sequential_chain(folded)
    src_name, src_node, pre, stages = "input", chain[0], [], []
    if len(chain) > 1 and isinstance(folded.op(chain[1]), fg.Scale):
        src_node = chain[1]
        chain = chain[:1] + chain[2:]
    enc_node = src_node
    counts: dict[str, int] = {}
    depth = 0
    i = 1
    while i < len(chain):
        name = chain[i]
        op = folded.op(name)
        if isinstance(op, (fg.AvgPool, fg.GlobalAvgPool, fg.MaxPool, fg.Flatten)) or _maxpool_padding(folded, chain, i):
            pre.append(name)
            i += 1
            continue
        if isinstance(op, rf.ReverbAct):
            raise UnsupportedError("a ReverB neuron that does not directly follow a Conv/Linear layer",
                                   folded.where(name), "put each ReverBNeuron right after its layer (and BatchNorm)")
        if not isinstance(op, rf.WEIGHTED):
            raise UnsupportedError(f"{type(op).__name__} in a folded ReverB network", folded.where(name))
        act = chain[i + 1] if i + 1 < len(chain) and isinstance(folded.op(chain[i + 1]), rf.ReverbAct) else None
        if act is None and i + 1 < len(chain):
            nxt = chain[i + 1]
            raise UnsupportedError("a layer that is neither followed by a ReverB neuron nor the last one",
                                   folded.where(nxt), "put a ReverBNeuron between consecutive layers")
        kind = "conv" if isinstance(op, (fg.Conv, rf.BinaryConv)) else "dense"
        depth += 1
        if act is None:
            lname = "readout"
        else:
            counts[kind] = counts.get(kind, 0) + 1
            lname = f"{kind}{counts[kind]}"
        stages.append(Stage(lname, src_name, pre, name, act, isinstance(op, rf.BINARY), depth=depth,
                            stats_src=src_node))
        pre = []
        if act is None:
            i += 1
            break
        src_name, src_node = lname, act
        i += 2
    if not stages or stages[-1].act is not None or i < len(chain):
        where = folded.where(chain[-1])
        raise UnsupportedError("the network does not end in a linear readout layer", where,
                               "end the model with nn.Linear / BinaryLinear (no neuron after it): its mean over T "
                               "is the output")
    return enc_node, stages


def _maxpool_padding(folded: fg.FloatGraph, chain: list, i: int) -> bool:
    """Whether chain[i] is the -inf padding of the MaxPool chain[i + 1] (ceil_mode, asymmetric pads)."""
    return i + 1 < len(chain) and isinstance(folded.op(chain[i + 1]), fg.MaxPool) \
        and padding_before(folded, chain[i + 1]) == chain[i]


def _branch_ops(folded: fg.FloatGraph, st: Stage, src_shape: tuple, weight_int: np.ndarray) -> tuple[list, float]:
    """IR synapse ops of a stage and its average-pool factor π."""
    ops, pool, shape = [], 1.0, tuple(src_shape)
    for name in st.pre:
        op = folded.op(name)
        if isinstance(op, fg.Pad):                 # a MaxPool's -inf padding: merged into it below
            continue
        if isinstance(op, fg.AvgPool) and tuple(op.dilation) != (1, 1):
            raise UnsupportedError("dilated average pooling", folded.where(name), "pool without dilation")
        if isinstance(op, fg.MaxPool):
            if ops:
                raise UnsupportedError("max pooling that is not directly after a neuron", folded.where(name),
                                       "pool right after the ReverBNeuron, or use average pooling")
            # payloads (and input codes) are >= 0: zero padding never wins (lowering.maxpool)
            mp = spiking_maxpool(folded, name, shape)
            ops.append(mp)
            shape = (shape[0], *mp.out_hw(shape[1:]))
        elif isinstance(op, (fg.AvgPool, fg.GlobalAvgPool)):
            if isinstance(op, fg.GlobalAvgPool):
                kernel, stride, pad = tuple(shape[1:]), tuple(shape[1:]), (0, 0)
            else:
                kernel, stride, pad = tuple(op.kernel), tuple(op.stride), tuple(op.padding)
            if any(pad):
                raise UnsupportedError("padded average pooling is not a uniform scale", folded.where(name),
                                       "use average pooling without padding")
            ops.append(syn.SumPool(kernel, stride, (0, 0)))
            pool /= float(np.prod(kernel))
            shape = (shape[0], (shape[1] - kernel[0]) // stride[0] + 1, (shape[2] - kernel[1]) // stride[1] + 1)
        else:
            ops.append(syn.Flatten())
            shape = (int(np.prod(shape)),)
    op = folded.op(st.weighted)
    if isinstance(op, (fg.Conv, rf.BinaryConv)):
        ops.append(syn.Conv(weight_int, tuple(op.stride), tuple(op.padding), tuple(op.dilation),
                            int(getattr(op, "groups", 1))))
    else:
        ops.append(syn.Dense(weight_int))
    return ops, pool


def _weights(op, target: Target) -> tuple[np.ndarray, float]:
    """(integer mantissas, weight step g): ±1 with g = 1 for binary ops, 8-bit round(w/δ) else."""
    w = np.asarray(op.weight, np.float64)
    if isinstance(op, rf.BINARY):
        return w.astype(np.int64), 1.0
    wmax = float(np.max(np.abs(w))) if w.size else 0.0
    step = wmax / target.weight_mant_max if wmax > 0 else 1.0
    return round_half_away(w / step), step


def _bias(name: str, b: np.ndarray, target: Target) -> tuple[np.ndarray, int]:
    """bias (v units per step) -> (bias_mant, bias_exp) with the smallest exponent that fits."""
    for e in range(target.bias_exp_max + 1):
        m = round_half_away(np.asarray(b, np.float64) / float(1 << e))
        if np.all(np.abs(m) <= target.bias_mant_max):
            return m, e
    raise TargetLimitError(f"bias up to {float(np.max(np.abs(b))):.4g} v units does not fit "
                           f"{target.bias_mant_bits}-bit mantissa << {target.bias_exp_max}", f"layer '{name}'",
                           "use fewer payload_bits or a smaller BatchNorm shift")


def _emission_scale(emit_scale, shape: tuple) -> np.ndarray:
    """The folded κ as the IR stores it: per channel (C,) unless it is per neuron (`shape`)."""
    k = np.asarray(emit_scale, np.float64)
    if k.ndim > 1 or (k.ndim == 1 and len(shape) == 1):
        return np.broadcast_to(k, tuple(shape)).copy()       # per neuron / per feature
    return np.broadcast_to(k, (int(shape[0]),)).copy()        # scalar or per channel


def _emission(name: str, ratio: np.ndarray, notes: list) -> tuple[np.ndarray, int, int]:
    """(out_mant, out_shift, bits of the smallest non-zero mantissa) for ratios ≥ 0 of any shape
    (per channel or per neuron): one out_shift for the whole layer."""
    ratio = np.asarray(ratio, np.float64)
    nz = ratio[ratio > 0]
    if nz.size == 0:
        return np.zeros(ratio.shape, np.int64), 0, 0
    cap = (1 << OUT_MANT_MAX_BITS) - 1
    shift = max(0, math.ceil(math.log2((1 << (OUT_MANT_MIN_BITS - 1)) / float(nz.min()))))
    if float(nz.max()) * 2.0 ** shift > cap:
        shift = math.floor(math.log2(cap / float(nz.max())))
        if shift < 0:
            raise TargetLimitError(f"emission multiplier {float(nz.max()):.4g} exceeds {OUT_MANT_MAX_BITS} bits",
                                   f"layer '{name}'", "the layer's output unit is far finer than its membrane unit: "
                                   "use fewer payload_bits")
    mant = round_half_away(ratio * 2.0 ** shift)
    mant = np.minimum(mant, cap)
    small = int(mant[ratio > 0].min())
    bits = small.bit_length()
    if bits < OUT_MANT_MIN_BITS:
        notes.append(f"{name}: emission scales span {float(nz.max() / nz.min()):.3g}x; the smallest "
                     f"emission multiplier has {bits} bits")
    return mant, shift, bits


def _weight_rel_error(op, ops: list, step: float) -> float:
    """RMS error of the stored weights relative to the folded float weights (0 for ±1 layers)."""
    w = np.asarray(op.weight, np.float64)
    q = np.asarray(syn.weighted_op(ops).weight, np.float64) * step
    den = float(np.sqrt(np.sum(w ** 2)))
    return float(np.sqrt(np.sum((w - q) ** 2))) / den if den else 0.0


def _shortcut_branch(folded: fg.FloatGraph, st: Stage, units: dict, in_unit0: float, m: float, cmax: float,
                     target: Target, notes: list) -> tuple[int, float, Branch, dict]:
    """(k, in_unit, shortcut Branch, report row) of a residual stage (module docstring): the
    main branch's weight_exp k (membrane unit in_unit = in_unit0 / 2^k) and the shortcut's
    8-bit mantissas with exponent e."""
    sc = st.shortcut
    op = folded.op(sc.node)
    w = np.asarray(op.factor if isinstance(op, fg.Scale) else op.weight, np.float64)
    u_x = units[sc.source]
    mant_max = int(target.weight_mant_max)
    r = float(np.max(np.abs(w), initial=0.0)) * u_x / in_unit0
    k, e = 0, 0
    if r > mant_max:
        e = math.ceil(math.log2(r / mant_max))
        if e > target.weight_exp_max:
            raise TargetLimitError(f"shortcut weights need exponent {e} > {target.weight_exp_max} to fit "
                                   f"{target.weight_mant_bits}-bit mantissas", f"layer '{st.name}', shortcut",
                                   "the shortcut is far stronger than the block's conv path: retrain with "
                                   "BatchNorm on the shortcut, or use fewer payload_bits")
    elif r > 0:
        limits = [math.floor(math.log2(mant_max / r)), target.weight_exp_max]
        state_max = float(min(rv.STATE_MAX, target.state_max))
        if m > 0:      # v stays within the 24-bit state with MARGIN
            limits.append(math.floor(math.log2(in_unit0 * state_max / (m * MARGIN))))
        if cmax > 0:   # the per-step bias stays within 13-bit mantissa << bias_exp_max
            limits.append(math.floor(math.log2(in_unit0 * target.bias_mant_max * (1 << target.bias_exp_max) / cmax)))
        k = max(0, min(limits))
    in_unit = in_unit0 / float(1 << k)
    mant = round_half_away(w * u_x / (in_unit * float(1 << e)))
    if np.any(np.abs(mant) > mant_max):      # r·2^k ≤ mant_max, so only float noise can get here
        raise TargetLimitError(f"shortcut mantissa {int(np.max(np.abs(mant)))} exceeds {mant_max}",
                               f"layer '{st.name}', shortcut")
    mbits = int(np.max(np.abs(mant), initial=0)).bit_length()
    if 0 < mbits < target.weight_mant_bits - 1:
        notes.append(f"{st.name}: shortcut mantissas use {mbits} of {target.weight_mant_bits - 1} magnitude bits "
                     "(the 24-bit state or the bias limits how fine the membrane unit can get)")
    if isinstance(op, fg.Scale):
        ops = [syn.ChannelScale(mant.astype(np.int64))]
    else:
        ops = [syn.Conv(mant.astype(np.int64), tuple(op.stride), tuple(op.padding), tuple(op.dilation),
                        int(getattr(op, "groups", 1)))]
    q = mant * float(1 << e) * in_unit / u_x
    den = float(np.sqrt(np.sum(w ** 2)))
    row = {"source": sc.source, "kind": type(ops[0]).__name__, "weight_exp": int(e), "main_weight_exp": int(k),
           "mantissa_bits": mbits, "weight_rel_error": float(np.sqrt(np.sum((w - q) ** 2))) / den if den else 0.0}
    return k, in_unit, Branch(sc.source, ops, int(e)), row


def calibrate(folded: fg.FloatGraph, x: np.ndarray, timesteps: int) -> dict:
    """{node: reverb_float.Stats} maxima of the folded float network over x (in batches)."""
    cal = _Cal()
    for i in range(0, len(x), CAL_BATCH):
        _, st = rf.run(folded, x[i:i + CAL_BATCH], timesteps, stats=True)
        cal.add(st)
    return cal.stats


def build(scheme, graph: fg.FloatGraph, target: Target, options) -> SpikingGraph:
    """The flow (the package's `Scheme.build`): float graph -> SpikingGraph for `target`."""
    t = DEFAULT_TIMESTEPS if options.timesteps is None else int(options.timesteps)
    if t < 1:
        raise NeurodeployError(f"timesteps={t}", "--timesteps",
                               "use the T the ReverB model was trained with (>= 1)")
    bits = int(options.payload_bits)
    limit = min(rv.MAX_PAYLOAD_BITS, target.payload_bits if target.graded_spikes else 0)
    if not 1 <= bits <= limit:
        raise NeurodeployError(f"payload_bits={bits} out of range", "--payload-bits",
                               f"target '{target.name}' carries graded spikes of 1..{limit} bits" if limit else
                               f"target '{target.name}' has no graded spikes: the reverb scheme needs them")
    if not any(isinstance(graph.op(n), rf.ReverbAct) for n in graph.topo_order()):
        raise UnsupportedError("the model has no ReverB neuron", graph.source,
                               "the reverb scheme compiles networks of neurodeploy.nn.ReverBNeuron "
                               "(schemes.reverb.front.load_reverb_model)")
    if options.calibration is None:
        raise NeurodeployError("the reverb scheme needs calibration data to choose its payload units",
                               "--calibration", "pass samples shaped like the input (e.g. the training set)")
    cal_x = np.asarray(options.calibration, dtype=np.float64)
    if float(cal_x.min()) < 0:
        raise UnsupportedError(f"the calibration inputs reach {float(cal_x.min()):.4g} < 0; ReverB inputs are "
                               "sent as unsigned graded payloads", graph.source,
                               "shift/scale the inputs to be >= 0 (e.g. pixels in [0, 1])")
    folded = run_passes(graph, scheme.passes)
    enc_node, stages = plan(folded)
    stats = calibrate(folded, cal_x, t)
    shapes_of = node_shapes(folded)
    shapes = {"input": tuple(folded.op(folded.input_nodes()[0]).shape)}
    notes: list[str] = []

    # ---- pass 1: weights, pooling and the payload unit of every source -------------------
    built = {}
    for st in stages:
        op = folded.op(st.weighted)
        w_int, g = _weights(op, target)
        ops, pool = _branch_ops(folded, st, shapes[st.source], w_int)
        st.pool = pool
        shapes[st.name] = shapes_of[st.weighted]
        if st.act is not None:
            m = max(stats[st.act].u_max, stats[st.weighted].emit_max)
            if st.shortcut is not None:     # each branch's current and their sum stay in the state too
                m = max(m, stats[st.shortcut.node].emit_max, stats[st.shortcut.join].emit_max)
            cmax = float(np.max(np.abs(folded.op(st.act).bias), initial=0.0))
        else:
            cmax = float(np.max(np.abs(op.bias), initial=0.0))
            m = max(stats[st.weighted].sum_max, stats[st.weighted].emit_max + cmax)
        built[st.name] = (op, ops, g, m, cmax)
    units, eff_bits = {}, {}
    bias_lim = float(target.bias_mant_max) * float(1 << target.bias_exp_max)
    state_max = float(min(rv.STATE_MAX, target.state_max))
    for st in stages:
        _, _, g, m, cmax = built[st.name]
        levels = (1 << int(options.input_bits)) - 1 if st.source == "input" else (1 << bits) - 1
        e = stats[st.stats_src].emit_max
        need = [e / levels, m * MARGIN / (g * st.pool * state_max), cmax / (g * st.pool * bias_lim)]
        u = max(need)
        if u <= 0:
            u = 1.0                      # the source never emits and the consumer is silent
        if e > 0 and e / u < 1.0:
            raise TargetLimitError(
                f"the 24-bit state of layer '{st.name}' cannot hold its input range even with 1-level payloads "
                f"from '{st.source}' (membrane up to {m:.4g}, graded spikes up to {e:.4g})",
                f"layer '{st.source}'", "retrain with BatchNorm/smaller fan-in, or check the calibration data")
        units[st.source] = u
        eff_bits[st.source] = int(round(e / u)).bit_length() if e > 0 else 0
        if u > need[0] * (1 + 1e-9) and e > 0:
            why = "24-bit state" if need[1] >= need[2] else "bias (13-bit mantissa << 7)"
            notes.append(f"{st.source}: payload unit coarsened so that layer '{st.name}' keeps its {why}: "
                         f"{eff_bits[st.source]} of {levels.bit_length()} payload bits used")

    # ---- pass 2: the IR layers ------------------------------------------------------------
    kin = np.asarray(folded.op(enc_node).factor, np.float64) if enc_node != "input" else np.asarray(1.0)
    u0 = units["input"]
    code_max = (1 << int(options.input_bits)) - 1
    step = np.where(kin > 0, u0 / np.where(kin > 0, kin, 1.0), 0.0)
    layers = [InputEncoder("input", shapes["input"], kin / u0, np.asarray(0.5), step,
                           rv.ReverbEncoder(code_max=code_max, timesteps=t), float_node=enc_node)]
    report = {"input": {"payload_unit": u0, "payload_bits_used": eff_bits["input"], "code_max": code_max,
                        "weight_rel_error": None}}
    binary_layers, real_branches = [], {}
    for st in stages:
        op, ops, g, m, cmax = built[st.name]
        in_unit = units[st.source] * g * st.pool
        branches, sc_row = [Branch(st.source, ops, 0)], None
        if st.shortcut is not None:
            k, in_unit, sc_branch, sc_row = _shortcut_branch(folded, st, units, in_unit, m, cmax, target, notes)
            branches = [Branch(st.source, ops, k), sc_branch]
            real_branches[st.name] = [1]
        if st.act is None:
            bias_mant, bias_exp = _bias(st.name, np.asarray(op.bias, np.float64) / in_unit, target)
            neuron = rv.ReverbReadout(output_scale=in_unit / t, timesteps=t, start_step=st.depth)
            value_step = np.asarray(in_unit / t)
            row = {}
        else:
            act = folded.op(st.act)
            c = shapes[st.name][0]
            theta = np.broadcast_to(np.asarray(act.threshold, np.float64), (c,)) / in_unit
            vth = np.ceil(theta - 1e-9 * np.maximum(1.0, np.abs(theta)))
            if np.any(vth > rv.STATE_MAX):
                notes.append(f"{st.name}: thresholds above the 24-bit state capped at 2^23 - 1 (never reached "
                             "on the calibration data)")
            vth = np.clip(vth, 0, rv.STATE_MAX).astype(np.int64)
            bias_mant, bias_exp = _bias(st.name, np.broadcast_to(np.asarray(act.bias, np.float64), (c,)) / in_unit,
                                        target)
            kappa = _emission_scale(act.emit_scale, shapes[st.name])
            out_mant, out_shift, mbits = _emission(st.name, kappa * in_unit / units[st.name], notes)
            dv = rv.decay_mant_for(act.tau)
            if dv > rv.DECAY_UNITY - 1:
                notes.append(f"{st.name}: tau {act.tau} -> dv 4095 (v keeps v >> 12 per step)")
                dv = rv.DECAY_UNITY - 1
            neuron = rv.ReverbNeuron(dv=int(dv), v_th_mant=vth, out_mant=out_mant.astype(np.int64),
                                     out_shift=int(out_shift), payload_bits=bits, timesteps=t, start_step=st.depth)
            value_step = np.asarray(units[st.name])
            row = {"payload_unit": units[st.name], "payload_bits_used": eff_bits[st.name],
                   "out_shift": int(out_shift), "out_mant_min_bits": mbits,
                   "tau": act.tau, "dv": int(dv)}
        if sc_row is not None:
            row = {**row, "shortcut": sc_row}
        layers.append(Layer(st.name, shapes[st.name], branches, bias_mant.astype(np.int64),
                            int(bias_exp),
                            neuron, value_step, st.act or st.weighted))
        if st.binary:
            binary_layers.append(st.name)
        report[st.name] = {**row, "binary": st.binary, "in_unit": in_unit, "weight_step": g,
                           "weight_rel_error": _weight_rel_error(op, ops, g),
                           "bias_exp": int(bias_exp), "v_max_calibration": m / in_unit,
                           "state_headroom": float(rv.STATE_MAX / max(m / in_unit, 1.0))}
    depth = stages[-1].depth
    net = SpikingGraph(scheme.name, target.name, layers, {"quantisation": report})
    # no pipelining: a layer's v must be 0 when the next sample's first payload arrives, and
    # nothing but a spike resets it, so samples follow each other (as in the cuba scheme)
    net.meta.update({"timesteps": t, "payload_bits": bits, "latency_steps": t + depth,
                     "throughput_steps": t + depth,
                     "time_steps_per_layer": {l.name: t for l in layers[:-1]}, "depth": depth,
                     "binary_layers": binary_layers, "notes": notes})
    if real_branches:          # residual shortcuts: 8-bit branches of binary layers (reports/costs.py)
        net.meta["real_branches"] = real_branches
    return net
