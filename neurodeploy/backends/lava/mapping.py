"""Map a `SpikingGraph`'s synapses onto Lava: synapse stages per branch, and the plan structures.

Host-side planning only (numpy / torch, no Lava import), shared by the schemes' Lava back ends;
each scheme plans its own time schedule (`schemes.bitplane.lava.plan.plan_network` for the
layer-by-layer bit-plane schedule described below).  Shapes here are in IR (PyTorch) order: (C, H, W) or (F,).  Lava tensors
are (W, H, C); `lava_shape` converts.

Synapse ops -> Lava (exact in every case, checked on the integers):

* ``Conv``  -> stock `lava.proc.conv.process.Conv`.  Lava's CPU Conv model ignores
  `weight_exp` and does not clip weights (loihi.md C), so the kernel is stored as
  ``W_mant << weight_exp`` (int32) with weight_exp = 0; the kernel is flipped and
  transposed to Lava's convolution layout (C_out, kW, kH, C_in).  On Loihi 2 one would
  store W_mant (8-bit) and weight_exp instead; the sums are the same.
* ``Dense`` -> stock `lava.proc.dense.process.Dense` with weights ``2*W_mant`` and
  ``weight_exp = e - 1``.  Lava's bit-accurate Dense clips weights to 8 bits and, in MIXED
  sign mode, truncates the LSB (an 8-bit signed mantissa x2); even weights in [-254, 254]
  survive clipping and truncation in every sign mode, and ``sum(2W s) << (e-1)`` (or
  ``>> 1`` when e = 0, exact on an even sum) equals ``W.s << e``.
* ``ChannelScale`` -> a depthwise 1x1 Conv (groups = C) on (C, H, W), a diagonal Dense on (F,).
* ``SumPool`` -> folded into the neighbouring weighted op when the composite is exact and
  its integer weights still fit the target's mantissa (e.g. 2x2/2 sum-pool + 3x3 pad-1
  conv = one 6x6 stride-2 pad-2 conv; sum-pool + flatten + dense = one dense matrix).
  Otherwise a relay: a depthwise all-ones Conv stage, then a `GradedRelay` neuron that
  sends the (graded) window sums on to the next synapse stage (`num_message_bits` = 24).
* ``Flatten`` -> no process: a Lava virtual port ``transpose([2, 1, 0]).flatten()`` (Lava
  (W,H,C) -> PyTorch C,H,W order), or folded into a dense matrix.
* ``MaxPool`` (only as a branch's first op, as the compiler emits it) -> the custom
  `BitserialMaxPool` process on the source's spikes (exact on MSB-first codes); its padding
  is silent input (zero trains), the max of codes >= 0 while every window holds a real input.

Anything else raises `NeurodeployError`.

Timing: every synapse stage adds one step (Lava's Dense/Conv send at t what they received
at t-1); neurons, relays and the max-pool add none.  A layer's accumulation window is chosen
so that the *last* (LSB) plane of every branch arrives in the same step `acc_end`: plane t of
a source with T planes must arrive at acc_end - T + t for the Horner sum to weight it by
2^(T-t).  Branches that would arrive early get a `DelayLine` on their source spikes.  The
layer fires its n_steps bits in the steps after acc_end.  All samples use the same local
schedule; the sample period is one more than the last busy local step.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neurodeploy.errors import NeurodeployError
from neurodeploy.ir import synapses as syn
from neurodeploy.ir.spiking import SpikingGraph
from neurodeploy.ir.synapse_ops import abs_bound, apply_ops

GRADED_MESSAGE_BITS = 24           # graded-spike payload between relay stages (target payload_bits)
MAX_CONV_KERNEL = 127              # Lava Conv kernel_size is an int8 Var
MAX_DENSE_BASIS = 1 << 16          # largest source size for which a chain is folded into a matrix
DEFAULT_MANT_MAX = 127             # 8-bit signed weight mantissa (targets/loihi2.toml)


def lava_shape(shape: tuple) -> tuple:
    """IR (C, H, W) -> Lava (W, H, C); (F,) unchanged."""
    shape = tuple(int(s) for s in shape)
    return shape[::-1] if len(shape) == 3 else shape


def to_lava(a: np.ndarray, lead: int = 0) -> np.ndarray:
    """Array with IR-ordered trailing dims (C, H, W) -> Lava (W, H, C); `lead` leading dims kept."""
    if a.ndim - lead == 3:
        return np.moveaxis(a, [lead, lead + 1, lead + 2], [lead + 2, lead + 1, lead])
    return a


def from_lava(a: np.ndarray, lead: int = 0) -> np.ndarray:
    """Inverse of `to_lava` (the permutation is its own inverse)."""
    return to_lava(a, lead)


# --------------------------------------------------------------------------- stages
@dataclass
class ConvStage:
    """A stock Lava Conv.  weight: torch layout (C_out, C_in/groups, kH, kW) int64 mantissas."""
    weight: np.ndarray
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    shift: int                     # weight_exp folded into the stored kernel
    in_shape: tuple
    out_shape: tuple
    graded_in: bool = False
    origin: str = ""

    def lava_weight(self) -> np.ndarray:
        """Stored kernel: (W_mant << shift), flipped, as (C_out, kW, kH, C_in/groups) int32."""
        w = np.asarray(self.weight, dtype=np.int64) << int(self.shift)
        return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)).astype(np.int32)


@dataclass
class DenseStage:
    """A stock Lava Dense.  weight (out, in) int64 mantissas, `in` in IR flatten order."""
    weight: np.ndarray
    shift: int
    in_shape: tuple
    out_shape: tuple
    graded_in: bool = False
    origin: str = ""

    def lava_weights(self) -> tuple[np.ndarray, int]:
        """(2*W_mant as int32, weight_exp - 1): exact through Lava's 8-bit clip + LSB drop."""
        return (2 * np.asarray(self.weight, dtype=np.int64)).astype(np.int32), int(self.shift) - 1


@dataclass
class MaxPoolStage:
    kernel: tuple                  # (kH, kW)
    stride: tuple
    in_shape: tuple
    out_shape: tuple
    origin: str = "BitserialMaxPool"
    padding: tuple = (0, 0, 0, 0)  # (top, bottom, left, right), as `ir.synapses.MaxPool`

    def lava_params(self) -> dict:
        """The window of a Lava max-pool process in Lava's (W, H) order: kernel_wh, stride_wh, pad_wh."""
        top, bottom, left, right = self.padding
        return {"kernel_wh": (self.kernel[1], self.kernel[0]), "stride_wh": (self.stride[1], self.stride[0]),
                "pad_wh": ((left, right), (top, bottom))}


SYNAPSE_STAGES = (ConvStage, DenseStage)


@dataclass
class BranchPlan:
    source: str
    stages: list
    delay: int = 0                 # DelayLine steps on the source spikes
    weight_exp: int = 0

    @property
    def latency(self) -> int:
        return sum(isinstance(s, SYNAPSE_STAGES) for s in self.stages)

    def describe(self) -> str:
        parts = ([f"delay {self.delay}"] if self.delay else []) + [s.origin or type(s).__name__ for s in self.stages]
        return f"{self.source}: " + " -> ".join(parts)


@dataclass
class LayerPlan:
    name: str
    shape: tuple
    kind: str                      # "input" | "if" | "readout"
    n_steps: int                   # planes emitted (0 for the readout)
    branches: list = field(default_factory=list)
    acc_start: int = 0
    acc_end: int = -1
    emit_start: int = 0            # local step of the first emitted plane


@dataclass
class NetworkPlan:
    graph: SpikingGraph
    layers: dict                   # name -> LayerPlan (topological order)
    period: int

    def summary(self) -> str:
        lines = [f"sample period {self.period} steps"]
        for lp in self.layers.values():
            if lp.kind == "input":
                lines.append(f"{lp.name}: injected, planes at steps {lp.emit_start}..{lp.emit_start + lp.n_steps - 1}")
                continue
            fire = "" if lp.kind == "readout" else \
                f", fires at {lp.emit_start}..{lp.emit_start + lp.n_steps - 1}"
            lines.append(f"{lp.name}: accumulates {lp.acc_start}..{lp.acc_end}{fire}")
            lines += [f"    {b.describe()}" for b in lp.branches]
        return "\n".join(lines)


# --------------------------------------------------------------------------- conv algebra
@dataclass
class _ConvSpec:
    weight: np.ndarray             # float64 / int64, torch layout
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    in_shape: tuple
    out_shape: tuple
    weighted: bool                 # contains the branch's weighted op (carries the shift)
    origin: str

    @property
    def diagonal(self) -> bool:
        c_out, c_in_g = self.weight.shape[:2]
        return c_in_g == 1 and self.groups == c_out == self.in_shape[0]

    def as_stage(self, shift: int, graded_in: bool) -> ConvStage:
        return ConvStage(np.asarray(self.weight, dtype=np.int64), self.stride, self.padding, self.dilation,
                         self.groups, shift if self.weighted else 0, self.in_shape, self.out_shape,
                         graded_in, self.origin)


def _out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_spec(op, in_shape: tuple) -> _ConvSpec:
    c, h, w = in_shape
    if isinstance(op, syn.Conv):
        wt = np.asarray(op.weight, dtype=np.int64)
        kh, kw = wt.shape[2:]
        out = (wt.shape[0], _out_size(h, kh, op.stride[0], op.padding[0], op.dilation[0]),
               _out_size(w, kw, op.stride[1], op.padding[1], op.dilation[1]))
        return _ConvSpec(wt, tuple(op.stride), tuple(op.padding), tuple(op.dilation), int(op.groups),
                         in_shape, out, True, f"Conv{kh}x{kw}/{op.stride[0]}")
    if isinstance(op, syn.SumPool):
        kh, kw = op.kernel
        wt = np.ones((c, 1, kh, kw), dtype=np.int64)
        out = (c, _out_size(h, kh, op.stride[0], op.padding[0], 1), _out_size(w, kw, op.stride[1], op.padding[1], 1))
        return _ConvSpec(wt, tuple(op.stride), tuple(op.padding), (1, 1), c, in_shape, out, False,
                         f"SumPool{kh}x{kw}/{op.stride[0]}")
    if isinstance(op, syn.ChannelScale):
        wt = np.asarray(op.weight, dtype=np.int64).reshape(c, 1, 1, 1)
        return _ConvSpec(wt, (1, 1), (0, 0), (1, 1), c, in_shape, in_shape, True, "ChannelScale")
    raise TypeError(op)


def _compose_kernels(a: np.ndarray, b: np.ndarray, sa: tuple, da: tuple, db: tuple) -> np.ndarray:
    """Kernel of 'conv a then conv b' (per channel pair, broadcast over leading dims)."""
    kah, kaw = a.shape[-2:]
    kbh, kbw = b.shape[-2:]
    ka = ((kah - 1) * da[0] + 1, (kaw - 1) * da[1] + 1)
    kc = (ka[0] + sa[0] * db[0] * (kbh - 1), ka[1] + sa[1] * db[1] * (kbw - 1))
    dil_a = np.zeros(a.shape[:-2] + ka, dtype=np.int64)
    dil_a[..., ::da[0], ::da[1]] = a
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.zeros(lead + kc, dtype=np.int64)
    for i in range(kbh):
        for j in range(kbw):
            y, x = i * sa[0] * db[0], j * sa[1] * db[1]
            out[..., y:y + ka[0], x:x + ka[1]] += dil_a * b[..., i:i + 1, j:j + 1]
    return out


def _compose(a: _ConvSpec, b: _ConvSpec) -> _ConvSpec | None:
    """One conv equal to a followed by b, or None if none exists / it would not be exact."""
    if not (a.diagonal or b.diagonal) or (a.weighted and b.weighted):
        return None
    for ax in (0, 1):
        ka = (a.weight.shape[2 + ax] - 1) * a.dilation[ax] + 1
        n_in, n_a = a.in_shape[1 + ax], a.out_shape[1 + ax]
        if b.padding[ax] > 0:
            # b pads a's output with zeros: the composite must see only padding there, i.e.
            # a's receptive field of output -1 and of output n_a must lie outside the input.
            if ka > a.stride[ax] + a.padding[ax] or n_a * a.stride[ax] - a.padding[ax] < n_in:
                return None
    if a.diagonal:                                  # weight[o, i] = b[o, i] (*) a[channel of (o, i)]
        c_out, c_in_g = b.weight.shape[:2]
        per_group_out = c_out // b.groups
        ch = (np.arange(c_out)[:, None] // per_group_out) * c_in_g + np.arange(c_in_g)[None, :]
        a_k = a.weight[ch, 0]                       # (c_out, c_in_g, kh, kw)
        w = _compose_kernels(a_k, b.weight, a.stride, a.dilation, b.dilation)
        groups = b.groups
    else:                                           # b diagonal: weight[o, i] = a[o, i] (*) b[o]
        w = _compose_kernels(a.weight, b.weight[:, 0:1], a.stride, a.dilation, b.dilation)
        groups = a.groups
    stride = (a.stride[0] * b.stride[0], a.stride[1] * b.stride[1])
    padding = (a.padding[0] + a.stride[0] * b.padding[0], a.padding[1] + a.stride[1] * b.padding[1])
    c, h, wd = a.in_shape
    out = (w.shape[0], _out_size(h, w.shape[2], stride[0], padding[0], 1), _out_size(wd, w.shape[3], stride[1], padding[1], 1))
    if out != tuple(b.out_shape):
        return None
    return _ConvSpec(w, stride, padding, (1, 1), groups, a.in_shape, tuple(b.out_shape),
                     a.weighted or b.weighted, f"{a.origin}+{b.origin}")


# --------------------------------------------------------------------------- branch mapping
def _exact_same(ops: list, in_shape: tuple, stage_eval, probes: int = 8, seed: int = 0) -> bool:
    """Random 0/1 probes: does the folded stage compute the op chain on the integers?"""
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.integers(0, 2, size=(probes,) + tuple(in_shape)), dtype=torch.float64)
    ref = apply_ops(ops, x).numpy()
    got = stage_eval(x)
    return ref.shape == got.shape and np.array_equal(ref, got)


def _conv_eval(spec: _ConvSpec):
    def run(x):
        w = torch.as_tensor(np.asarray(spec.weight, dtype=np.float64))
        return torch.nn.functional.conv2d(x, w, None, spec.stride, spec.padding, spec.dilation, spec.groups).numpy()
    return run


def _dense_matrix(ops: list, in_shape: tuple) -> np.ndarray | None:
    """The chain as one integer matrix (out, in) in IR flatten orders (exact in float64)."""
    if len(ops) == 1 and isinstance(ops[0], syn.Dense):
        return np.asarray(ops[0].weight, dtype=np.int64)
    if len(ops) == 2 and isinstance(ops[0], syn.Flatten) and isinstance(ops[1], syn.Dense):
        return np.asarray(ops[1].weight, dtype=np.int64)
    n_in = int(np.prod(in_shape))
    if n_in > MAX_DENSE_BASIS:
        return None
    cols = []
    for start in range(0, n_in, 1024):
        idx = np.arange(start, min(n_in, start + 1024))
        basis = torch.zeros((len(idx), n_in), dtype=torch.float64)
        basis[torch.arange(len(idx)), torch.as_tensor(idx)] = 1.0
        y = apply_ops(ops, basis.reshape((len(idx),) + tuple(in_shape)))
        cols.append(y.reshape(len(idx), -1).numpy())
    m = np.concatenate(cols, axis=0).T
    mi = np.rint(m).astype(np.int64)
    assert np.array_equal(mi, m), "non-integer folded weights"
    return mi


def _shape_after(op, shape: tuple) -> tuple:
    x = torch.zeros((1,) + tuple(shape), dtype=torch.float64)
    return tuple(apply_ops([op], x).shape[1:])


def map_branch(branch, src_shape: tuple, mant_max: int = DEFAULT_MANT_MAX, fold: bool = True) -> BranchPlan:
    """Synapse stages for one IR branch (see the module docstring).  `fold=False` forces the
    unfolded relay form (one stage per op) - used by the tests to check that path too."""
    if branch.weight_exp < 0:
        raise NeurodeployError(f"negative weight_exp {branch.weight_exp} has no exact per-plane meaning",
                               f"branch from '{branch.source}'", "recompile with a non-negative weight exponent")
    ops = list(branch.ops)
    stages: list = []
    shape = tuple(src_shape)
    if ops and isinstance(ops[0], syn.MaxPool):
        mp = ops.pop(0)
        out = _shape_after(mp, shape)
        stages.append(MaxPoolStage(tuple(mp.kernel), tuple(mp.stride), shape, out, padding=tuple(mp.padding)))
        shape = out
    for op in ops:
        if isinstance(op, syn.MaxPool):
            raise NeurodeployError("MaxPool after other synapse ops cannot be mapped exactly",
                                   f"branch from '{branch.source}'", "put MaxPool right after an activation")
        if not isinstance(op, tuple(syn.SYNAPSE_TYPES.values())):
            raise NeurodeployError(f"synapse op {type(op).__name__} has no Lava mapping",
                                   f"branch from '{branch.source}'")
    if not any(isinstance(op, syn.WEIGHTED) for op in ops):
        raise NeurodeployError("branch without a weighted op", f"branch from '{branch.source}'")
    e = int(branch.weight_exp)
    out_shape = tuple(apply_ops(ops, torch.zeros((1,) + shape, dtype=torch.float64)).shape[1:])
    flat_out = len(out_shape) == 1
    if fold:
        folded = _fold(ops, shape, out_shape, flat_out, e, mant_max)
        if folded is not None:
            return BranchPlan(branch.source, stages + [folded], 0, e)
    return BranchPlan(branch.source, stages + _unfolded(ops, shape, e, branch.source), 0, e)


def _fold(ops, shape, out_shape, flat_out, e, mant_max):
    core = list(ops)
    while core and isinstance(core[-1], syn.Flatten):
        core.pop()                                  # a trailing Flatten is a port adapter
    if flat_out and core and len(shape) == 3 and not any(isinstance(op, (syn.Flatten, syn.Dense)) for op in core):
        ops, flat_out = core, False                 # keep a conv a conv; flatten into the neuron
    if flat_out:                                    # the whole chain as one integer matrix
        m = _dense_matrix(ops, shape)
        if m is None or np.max(np.abs(m)) > mant_max:
            return None
        names = "+".join(type(op).__name__ for op in ops)
        return DenseStage(m, e, shape, out_shape, False, f"Dense[{names}]" if len(ops) > 1 else "Dense")
    specs = []
    cur = shape
    for op in ops:
        if isinstance(op, syn.Flatten) or len(cur) != 3:
            return None
        s = _conv_spec(op, cur)
        specs.append(s)
        cur = s.out_shape
    spec = specs[0]
    for nxt in specs[1:]:
        spec = _compose(spec, nxt)
        if spec is None:
            return None
    if np.max(np.abs(spec.weight)) > mant_max or max(spec.weight.shape[2:]) > MAX_CONV_KERNEL:
        return None
    if len(specs) > 1 and not _exact_same(ops, shape, _conv_eval(spec)):
        return None
    return spec.as_stage(e, False)


def _unfolded(ops, shape, e, source) -> list:
    """One synapse stage per op (Flatten -> port adapter); GradedRelays go between stages."""
    stages = []
    cur = shape
    done = []
    for op in ops:
        if isinstance(op, syn.Flatten):
            cur = (int(np.prod(cur)),)
            done.append(op)
            continue
        graded = bool(stages)
        if isinstance(op, syn.Dense):
            st = DenseStage(np.asarray(op.weight, dtype=np.int64), e, cur, (op.weight.shape[0],), graded, "Dense")
        elif isinstance(op, syn.ChannelScale) and len(cur) == 1:
            st = DenseStage(np.diag(np.asarray(op.weight, dtype=np.int64)), e, cur, cur, graded, "ChannelScale(diag Dense)")
        elif isinstance(op, (syn.Conv, syn.SumPool, syn.ChannelScale)) and len(cur) == 3:
            st = _conv_spec(op, cur).as_stage(e, graded)
        else:
            raise NeurodeployError(f"{type(op).__name__} on a tensor of shape {cur} has no Lava mapping",
                                   f"branch from '{source}'")
        if graded:
            bound = float(np.max(abs_bound(done, shape, 1.0))) * (1 << e if _weighted_before(done) else 1)
            if bound >= 1 << (GRADED_MESSAGE_BITS - 1):
                raise NeurodeployError(f"relayed partial sums up to {bound:.3g} exceed the "
                                       f"{GRADED_MESSAGE_BITS}-bit graded spike payload", f"branch from '{source}'")
        stages.append(st)
        done.append(op)
        cur = st.out_shape
    return stages


def _weighted_before(ops) -> bool:
    return any(isinstance(op, syn.WEIGHTED) for op in ops)


def target_mant_max(graph: SpikingGraph) -> int:
    """The largest weight mantissa of the graph's target (8-bit signed: 127 when it names none)."""
    spec = graph.meta.get("target_spec") if isinstance(graph.meta, dict) else None
    try:
        bits = int(spec["weights"]["mant_bits"])
        return (1 << (bits - 1)) - 1
    except (TypeError, KeyError, ValueError):
        return DEFAULT_MANT_MAX


def load_graph(graph_or_dir) -> SpikingGraph:
    if isinstance(graph_or_dir, SpikingGraph):
        return graph_or_dir
    from neurodeploy.ir import serialize
    return serialize.load(Path(graph_or_dir))
