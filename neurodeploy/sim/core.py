"""The simulator's core, shared by every scheme's kernel: no scheme knowledge here.

Integer state lives in torch int64 tensors, or in float32/float64 tensors where a static bound
proves every integer the arithmetic can produce representable (below 2^24 / 2^53).  Synapse ops
run as float convolutions / matmuls on spike planes, codes or payloads, which is exact because
every partial sum is such an integer: then every addition is exact in any order, so the results do
not depend on the BLAS / oneDNN kernel, the CPU or the thread count.  `prepare` bounds each branch
statically and picks the fastest exact dtype; `layer_arith` / `layer_current` give a kernel a whole
layer's input Σ_b (W_b·x_b) << e_b + bias as one tensor in the dtype its own arithmetic needs
(2^weight_exp and the bias folded into the synapse call where that dtype allows, 2^weight_exp into
the weights where only it fits, float64 calls split into float32 ones on groups of input channels or
on two limbs where that helps); `step_inputs` feeds the time-batched kernels a layer's input for a
chunk of steps at a time.  A kernel (`run_batch` of a scheme) decodes the input
with `input_codes` and returns a `BatchResult`; `sim.engine` picks the kernel.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import NeurodeployError
from ..limits import MAX_BATCH_SIZE
from ..ir import synapses as syn
from ..ir.spiking import InputEncoder, Layer, SpikingGraph
from ..ir.synapse_ops import abs_bound, apply_ops, max_pool

FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


class BranchWeights(Mapping):
    """op index -> the weighted op's weight as a tensor in `dtype` on `device`, converted on first use
    and kept.  Lazy because the kernels that run on whole layers (`layer_arith`: bitplane's codes
    engine, rate, sws) make their own copies in their own dtypes: converting every branch up front
    held the network's weights twice (VGG-11 at 224x224: 128.8 M weights, 0.5 GiB in float32)."""

    def __init__(self, ops: list, dtype: torch.dtype, device: torch.device):
        self._ops = {i: op for i, op in enumerate(ops) if isinstance(op, syn.WEIGHTED)}
        self._dtype, self._device, self._tensors = dtype, device, {}

    def __getitem__(self, i: int) -> torch.Tensor:
        if i not in self._tensors:
            self._tensors[i] = torch.as_tensor(np.asarray(self._ops[i].weight), dtype=self._dtype, device=self._device)
        return self._tensors[i]

    def __iter__(self):
        return iter(self._ops)

    def __len__(self) -> int:
        return len(self._ops)


@dataclass
class PreparedBranch:
    source: str
    ops: list
    weight_exp: int
    dtype: torch.dtype
    weights: Mapping              # op index -> weight tensor in `dtype` (`BranchWeights`: converted when first read)
    bitserial_maxpool: syn.MaxPool | None = None


@dataclass
class Prepared:
    graph: SpikingGraph
    device: torch.device
    branches: dict = field(default_factory=dict)   # layer name -> [PreparedBranch]
    engine: str = "neurodeploy"                    # which of its scheme's kernels runs it (Scheme.engines)
    cache: dict = field(default_factory=dict)      # what a kernel derives once per network (its own keys)


@contextlib.contextmanager
def exact_sum_kernels():
    """oneDNN's convolutions for the block's synapse calls (the engines' runs, `engine.run_batch`).

    `reproducible.pin_cpu_numerics` switches oneDNN off because its kernels pick a summation order
    per CPU, and float sums round differently in another order.  The engines' synapse calls sum
    integers in the dtype `exact_float_dtype` / `layer_arith` proved exact: every partial sum is an
    integer below 2^24 (float32) or 2^53 (float64), exactly representable, so every order gives the
    same bits (oneDNN's convolutions are direct ones, products of integers summed; it has no float64
    kernels, which keep PyTorch's own).  Measured on a CIFAR ResNet-18 layer (64 -> 64 channels,
    3x3, 64 samples of 32x32 spikes, one thread): 0.044 s against 0.28 s on the pinned
    im2col + BLAS path, with identical output."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = True
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


def exact_float_dtype(bound: float) -> torch.dtype | None:
    """The narrowest float dtype in which integers up to `bound` in magnitude are all exact:
    float32 below 2^24, float64 below 2^53, None beyond."""
    if bound < FLOAT32_EXACT:
        return torch.float32
    if bound < FLOAT64_EXACT:
        return torch.float64
    return None


def prepare(graph: SpikingGraph, device: str = "cpu", engine: str = "neurodeploy") -> Prepared:
    """Weights on `device` (`BranchWeights`: when a kernel first reads them), each branch in the
    narrowest float dtype whose synaptic sums are exact
    (|Σ W·p| ≤ Σ|W|·p_max below 2^24: float32, below 2^53: float64).  p_max is the source's
    `max_payload` (graded spikes: input codes, sigma-delta or ReverB payloads) or 1 (binary and
    ternary spikes).  `engine`: the kernel of the graph's scheme that will run it (checked by
    `sim.engine.prepare`)."""
    dev = check_device(device)
    prep = Prepared(graph, dev, engine=engine)
    shapes = {l.name: l.shape for l in graph.layers}
    p_max = {l.name: float(l.neuron.max_payload) for l in graph.layers}
    for layer in graph.neuron_layers():
        out = []
        for b in layer.branches:
            ops = list(b.ops)
            mp = None
            if ops and isinstance(ops[0], syn.MaxPool):
                mp, ops = ops[0], ops[1:]
            bound = float(np.max(abs_bound(ops, shape_after(mp, shapes[b.source]), p_max[b.source])))
            dtype = exact_float_dtype(bound)
            if dtype is None:
                raise NeurodeployError(f"synaptic sums up to {bound:.3g} exceed exact float64 range",
                                       f"layer '{layer.name}'", "use smaller weights or payloads")
            out.append(PreparedBranch(b.source, ops, b.weight_exp, dtype, BranchWeights(ops, dtype, dev), mp))
        prep.branches[layer.name] = out
    return prep


def check_device(device) -> torch.device:
    """The torch device to simulate on: cpu, or cuda (cuda:N) where PyTorch sees that GPU."""
    where, hint = f"--device {device}", "use --device cpu, or cuda on a machine with an NVIDIA GPU"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise NeurodeployError(f"'{device}' is not a device", where, hint) from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise NeurodeployError(f"the simulator runs on cpu or cuda, not {dev.type}", where, hint)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise NeurodeployError("no CUDA GPU is available here (PyTorch sees no CUDA device)", where, hint)
    if dev.index is not None and dev.index >= count:
        raise NeurodeployError(f"there is no GPU {dev.index} (this machine has {count})", where,
                               f"use cuda:0..cuda:{count - 1}")
    return dev


def check_batch_size(batch_size) -> int:
    """Samples per batch: an integer 1..MAX_BATCH_SIZE."""
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise NeurodeployError(f"batch size {batch_size!r} is not an integer in 1..{MAX_BATCH_SIZE}",
                               "--batch-size", "use e.g. 256")
    return int(batch_size)


def shape_after(mp: syn.MaxPool | None, shape: tuple) -> tuple:
    """Shape of a (C, H, W) source after a leading max pool split off by `prepare` (None: unchanged)."""
    if mp is None:
        return shape
    return (shape[0], *mp.out_hw(shape[1:]))


def branch_input_shape(prep: "Prepared", pb: "PreparedBranch") -> tuple:
    """Shape of what a branch's synapse ops read: its source layer's, after a leading max pool."""
    return tuple(shape_after(pb.bitserial_maxpool, next(l.shape for l in prep.graph.layers if l.name == pb.source)))


def input_codes(enc: InputEncoder, x: torch.Tensor) -> torch.Tensor:
    """clip(floor(x*in_scale + offset), code_min, code_max) in float64, as int64 (code_min: 0
    unless the encoder has another: signed inputs of imported NetX networks)."""
    def chan(a):
        t = torch.as_tensor(np.asarray(a, dtype=np.float64), device=x.device)
        return t if t.ndim == 0 else t.reshape((1, -1) + (1,) * (x.ndim - 2))
    x = x.to(torch.float64)
    if any(enc.pad):          # the first layer's zero padding, in the input's units
        top, bottom, left, right = enc.pad
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
    k = torch.floor(x * chan(enc.in_scale) + chan(enc.offset))
    return torch.clamp(k, enc.neuron.code_min, enc.neuron.code_max).to(torch.int64)


def layer_bias(layer: Layer, like: torch.Tensor) -> torch.Tensor:
    """The layer's integer bias (bias_mant << bias_exp) shaped to add to `like` (N, C, ...)."""
    b = torch.as_tensor(layer.bias, dtype=torch.int64, device=like.device)
    return b.reshape((1, -1) + (1,) * (like.ndim - 2))


@dataclass
class BatchResult:
    output: torch.Tensor                        # float32 (N, outputs) in the ANN's units
    output_state: torch.Tensor                  # int64 readout U
    codes: dict                                 # layer -> int64 decoded codes (N, *shape)
    spikes: dict                                # layer -> total spikes in the batch
    overflows: dict = field(default_factory=dict)   # layer -> neurons whose state register wrapped
                                                    # (schemes whose bound can be exceeded: sws calibrated)


@dataclass
class Probe:
    """What a kernel records on request beyond its `BatchResult` (the reports' per-layer plots;
    `Scheme.run_probed` passes one to its kernel, which fills what it knows).

    state_peak     layer -> the largest |value| its state register (membrane, accumulator, sigma)
                   had to hold over the batch and every step, taken before any wrap or saturation:
                   a peak beyond the register's signed range is an overflow
    readout_steps  the readout's value in the ANN's units (N, outputs) float64 after each time step
                   of the run, for schemes whose readout accumulates over the run (empty otherwise)
    """
    state_peak: dict = field(default_factory=dict)
    readout_steps: list = field(default_factory=list)

    def peak(self, layer: str, *states: torch.Tensor) -> None:
        """Raise layer's peak to the largest |value| among `states` (int64 tensors)."""
        top = max((int(t.abs().max()) for t in states if t.numel()), default=0)
        self.state_peak[layer] = max(self.state_peak.get(layer, 0), top)

    def readout(self, state: torch.Tensor, output_scale: float) -> None:
        """Record the readout's integer state after one step, in the ANN's units."""
        n = state.shape[0]
        self.readout_steps.append((state.to(torch.float64) * float(output_scale)).reshape(n, -1).cpu().numpy())


def branch_current(pb: PreparedBranch, spikes: torch.Tensor) -> torch.Tensor:
    """Integer current of one branch for one batch of spike tensors (N, *shape)."""
    return apply_ops(pb.ops, spikes.to(pb.dtype), pb.weights).to(torch.int64) << pb.weight_exp


def wrap24(x: torch.Tensor) -> torch.Tensor:
    """Lava's Conv sends signed_clamp(a_out, 24): wrap to the signed 24-bit range."""
    return torch.remainder(x + (1 << 23), 1 << 24) - (1 << 23)


def lava_branch_current(pb: PreparedBranch, payload: torch.Tensor) -> torch.Tensor:
    """W . payload of one branch as Lava's fixed-point Dense and Conv processes deliver it (the
    kernels of schemes that run on them): a convolution's output wraps at 24 bits (Lava's
    conv/models.py L78-79); Dense does not wrap."""
    c = branch_current(pb, payload)
    if any(isinstance(op, syn.Conv) for op in pb.ops):
        c = wrap24(c)
    return c
def synapses_with_bias(ops: list, x: torch.Tensor, weights: dict, bias: torch.Tensor | None) -> torch.Tensor:
    """apply_ops(ops, x, weights) + bias (C,): added by the last op's kernel where it is a Conv or Dense
    (one pass over the output less), else afterwards.  The output is a new tensor when the branch
    has a weighted op (every compiled branch has one, `fused_layer` checks)."""
    last, i = ops[-1], len(ops) - 1
    if bias is not None and isinstance(last, syn.Conv):
        return F.conv2d(apply_ops(ops[:-1], x, weights), weights[i], bias, last.stride, last.padding, last.dilation,
                        last.groups)
    if bias is not None and isinstance(last, syn.Dense):
        return F.linear(apply_ops(ops[:-1], x, weights), weights[i], bias)
    y = apply_ops(ops, x, weights)
    return y if bias is None else y.add_(bias.reshape((1, -1) + (1,) * (y.ndim - 2)))


# --- a layer's whole input in one tensor ----------------------------------------------------------
# Kernels that run a layer's neurons in float arithmetic (bitplane's codes engine, rate, sws, reverb)
# want U = Σ_b (W_b·x_b) << e_b + bias as one tensor in the dtype of that arithmetic.  Float is
# exact while every partial sum is an integer below 2^24 (float32) or 2^53 (float64): the caller
# bounds its arithmetic statically (`current_bound` gives the synaptic part) and `layer_arith`
# picks the dtypes: each branch's synapse call in the narrowest dtype exact for that branch, and,
# where that is the result's dtype too, 2^weight_exp folded into the weights and the bias added by
# the synapse call itself (one pass over the output).

def weight_scaled_ops(ops: list, weight_exp: int, where: str) -> list:
    """The branch ops with the weighted op's weight multiplied by 2^weight_exp (float64, exact)."""
    if weight_exp < 0:
        raise NeurodeployError(f"weight_exp {weight_exp} < 0", where, "compile the model again")
    return [type(op)(**{**op.__dict__, "weight": np.asarray(op.weight, dtype=np.float64) * float(1 << weight_exp)})
            if isinstance(op, syn.WEIGHTED) else op for op in ops]


def branch_bound(prep: Prepared, pb: PreparedBranch, p_max: float, weight_exp: int = 0) -> np.ndarray:
    """Per output, max |(W·x) << weight_exp| of one branch over inputs 0 ≤ x ≤ p_max (float64)."""
    shape = branch_input_shape(prep, pb)
    return abs_bound(weight_scaled_ops(pb.ops, weight_exp, f"branch from '{pb.source}'"), shape, float(p_max))


def current_bound(prep: Prepared, layer: Layer, p_max: dict) -> np.ndarray:
    """Per neuron (float64, the layer's shape), the largest |Σ_b (W_b·x_b) << e_b + bias| over all inputs
    with 0 ≤ x_b ≤ p_max[source of b]."""
    bound = np.abs(np.asarray(layer.bias, dtype=np.float64))
    bound = bound.reshape((-1,) + (1,) * (len(layer.shape) - 1)) if bound.ndim else bound
    for pb in prep.branches[layer.name]:
        bound = bound + branch_bound(prep, pb, p_max[pb.source], pb.weight_exp)
    return np.broadcast_to(bound, tuple(layer.shape))


@dataclass
class LayerArith:
    """How `layer_current` computes a layer's U exactly (`layer_arith`)."""
    dtype: torch.dtype              # of U: float32, float64 or int64
    branch_dtypes: list             # per branch: the float dtype of its synapse call
    weights: list                   # per branch: op index -> weight in its branch dtype (· 2^weight_exp if fused)
    bias: torch.Tensor | None       # (C,) or (F,) in dtype; None: none added (the caller adds its own, or none)
    fused: bool                     # branch dtypes == dtype: weights carry 2^weight_exp, the first call adds the bias
    weight_exps: list = field(default_factory=list)   # per branch: the shift still to apply (0: in the weights)
    limbs: list = field(default_factory=list)    # per branch: None, ("channels", groups, weights per group),
                                                 # ("input", b) or ("weight", b, high weights)


# Limbs.  A branch whose sums Σ|W|·p_max reach 2^24 needs float64, and PyTorch's float64 convolution is
# an unvectorised im2col path several times slower than two float32 (oneDNN) convolutions.  So where
# it helps, the sum is assembled in float64 from float32 synapse calls, each exact because its own
# sums stay below 2^24.  Best, for a convolution (groups = 1) behind per-channel pools only: its input
# channels in G contiguous groups, W·x = Σ_g W[:, g]·x[g] (G calls of 1/G of the work each, the same
# multiply-adds as one call; measured on the CIFAR ResNet-18's 16-bit rate and reverb layers: 1.0-1.2x
# one call's time against 2x for two limbs).  Else one factor is split in two limbs at bit b,
# x = 2^b·hi + lo with lo in [0, 2^b) (floor division, also for negative values), and
# W·x = 2^b·W·hi + W·lo: the input's limbs (graded payloads of many bits through small weights) or the
# weight's (wide weight mantissas, e.g. the cpu target's 16 bits, on spikes).

# narrower channel groups run no faster than two limbs (measured against the two limbs' time: groups of
# 16 channels 1.0-1.3x, of 32 0.8-0.9x)
MIN_GROUP_CHANNELS = 32

def _split(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    hi = np.floor_divide(a, 1 << b)
    return a - hi * (1 << b), hi


def _channel_groups(prep: Prepared, pb: PreparedBranch, p_max: float):
    """("channels", [(c0, c1), ...]): the fewest contiguous, near-equal groups of the source's channels
    (at least MIN_GROUP_CHANNELS each) whose own synaptic sums are each below 2^24, or None (another
    weighted op than a Conv with groups = 1, a max pool after it, or no such grouping).  The ops before
    the Conv are per-channel pools, so a group of input channels runs through the chain on its own; the
    ops after it (Flatten, sum pools) are linear, so the groups' results add up to the branch's."""
    at = [i for i, op in enumerate(pb.ops) if isinstance(op, syn.WEIGHTED)]
    k = pb.ops[at[0]]
    if not isinstance(k, syn.Conv) or k.groups != 1 \
            or not all(isinstance(op, (syn.SumPool, syn.MaxPool)) for op in pb.ops[:at[0]]) \
            or any(isinstance(op, syn.MaxPool) for op in pb.ops[at[0] + 1:]):
        return None
    shape = branch_input_shape(prep, pb)
    w = np.asarray(k.weight)

    def bound(c0, c1):
        ops = [type(op)(**{**op.__dict__, "weight": w[:, c0:c1]}) if op is k else op for op in pb.ops]
        return float(np.max(abs_bound(ops, (c1 - c0,) + shape[1:], p_max)))
    # the groups' bounds add up to at least the whole branch's: fewer than whole / 2^24 groups cannot do
    fewest = max(2, int(np.ceil(bound(0, shape[0]) / FLOAT32_EXACT)))
    for g in range(fewest, shape[0] // MIN_GROUP_CHANNELS + 1):
        edges = [round(j * shape[0] / g) for j in range(g + 1)]
        groups = list(zip(edges, edges[1:]))
        if all(bound(c0, c1) < FLOAT32_EXACT for c0, c1 in groups):
            return ("channels", groups)
    return None


def _limbs(prep: Prepared, pb: PreparedBranch, p_max: float):
    """("channels", groups), ("input", b), ("weight", b, high weights) or None: input channel groups, or
    a split at bit b, that make every synapse call exact in float32 (see above)."""
    groups = _channel_groups(prep, pb, p_max)
    if groups:
        return groups
    shape = branch_input_shape(prep, pb)
    w_sum = float(np.max(branch_bound(prep, pb, 1.0)))
    if p_max < FLOAT32_EXACT and w_sum > 0:
        for b in range(1, 24):
            if w_sum * ((1 << b) - 1) < FLOAT32_EXACT and w_sum * (np.floor(p_max / (1 << b)) + 1) < FLOAT32_EXACT:
                return ("input", b)
    k = syn.weighted_op(pb.ops)
    w = np.asarray(k.weight, dtype=np.int64)
    for b in range(1, 24):
        lo, hi = _split(w, b)
        with_w = lambda a: [type(op)(**{**op.__dict__, "weight": a}) if op is k else op for op in pb.ops]
        if all(float(np.max(abs_bound(with_w(part), shape, p_max))) < FLOAT32_EXACT for part in (lo, hi)):
            return ("weight", b, with_w(hi))
    return None


def layer_arith(prep: Prepared, layer: Layer, p_max: dict, bound: float, fuse: bool = True) -> LayerArith | None:
    """The dtypes for U = Σ_b (W_b·x_b) << e_b + bias with inputs |x_b| ≤ p_max[source]: U in
    `exact_float_dtype(bound)` (bound: the caller's static bound of every integer its arithmetic on U
    produces, at least max |U|), int64 beyond 2^53; each branch's synapse call in the dtype exact for
    Σ|W_b|·p_max, or in float32 on two limbs (above).  None when a branch's synaptic sum alone exceeds
    2^53.  fuse=False: never fold 2^weight_exp and the bias into the synapse calls (the caller
    post-processes each branch)."""
    dtype = exact_float_dtype(bound) or torch.int64
    branch_dtypes, limbs = [], []
    for pb in prep.branches[layer.name]:
        if sum(isinstance(op, syn.WEIGHTED) for op in pb.ops) != 1:
            raise NeurodeployError("a branch needs exactly one weighted synapse op",
                                   f"layer '{layer.name}', branch from '{pb.source}'", "compile the model again")
        bd = exact_float_dtype(float(np.max(branch_bound(prep, pb, p_max[pb.source]))))
        if bd is None:
            return None
        limb = _limbs(prep, pb, float(p_max[pb.source])) if bd == torch.float64 and dtype != torch.float32 else None
        branch_dtypes.append(torch.float32 if limb else bd)
        limbs.append(limb)
    fused = fuse and all(bd == dtype for bd in branch_dtypes) and not any(limbs)
    weights, weight_exps = [], []
    for i, (pb, bd, limb) in enumerate(zip(prep.branches[layer.name], branch_dtypes, limbs)):
        ops = weight_scaled_ops(pb.ops, pb.weight_exp if fused else 0, f"layer '{layer.name}'")
        if limb and limb[0] == "weight":
            k = syn.weighted_op(ops)
            lo, _ = _split(np.asarray(k.weight).astype(np.int64), limb[1])
            ops = [type(op)(**{**op.__dict__, "weight": lo}) if op is k else op for op in ops]
            limbs[i] = ("weight", limb[1], _tensors(prep, limb[2], bd))
        w = _tensors(prep, ops, bd)
        # unfused into a float U: 2^weight_exp rides on the weights too, one pass over the current less.
        # Exact: a power of two scales every partial sum's exponent only (2^e times an integer below
        # 2^24 resp. 2^53 is representable while e stays far from the dtype's largest exponent)
        e = 0 if fused else int(pb.weight_exp)
        if e and dtype != torch.int64 and 2.0 ** (e + 64) < torch.finfo(bd).max:
            w = {j: t.mul_(float(1 << e)) for j, t in w.items()}
            if limbs[i] and limbs[i][0] == "weight":
                limbs[i] = ("weight", limb[1], {j: t.mul_(float(1 << e)) for j, t in limbs[i][2].items()})
            e = 0
        if limb and limb[0] == "channels":           # op index -> weight of each input channel group
            limbs[i] = ("channels", limb[1], [{j: nhwc(t[:, c0:c1]) for j, t in w.items()} for c0, c1 in limb[1]])
        weights.append(w)
        weight_exps.append(e)
    bias = torch.as_tensor(np.asarray(layer.bias, dtype=np.int64 if dtype == torch.int64 else np.float64),
                           dtype=dtype, device=prep.device)
    return LayerArith(dtype, branch_dtypes, weights, bias.expand(layer.shape[0]).contiguous(), fused,
                      weight_exps, limbs)


def _tensors(prep: Prepared, ops: list, dtype: torch.dtype) -> dict:
    return {i: nhwc(torch.as_tensor(np.asarray(op.weight), dtype=dtype, device=prep.device))
            for i, op in enumerate(ops) if isinstance(op, syn.WEIGHTED)}


def layer_current(prep: Prepared, layer: Layer, la: LayerArith, inputs, post=None) -> torch.Tensor:
    """U = Σ_b (W_b·x_b) << e_b + bias as one new tensor in la.dtype; inputs(source) -> x_b, a batch
    (M, *source shape) of values (codes, spike planes, counts, payloads).  A branch's leading max pool
    takes the max of those values.  post(branch index, current): applied in place to each branch's
    current before the sum (unfused layers only)."""
    u = None
    for i, (pb, bd, w, e) in enumerate(zip(prep.branches[layer.name], la.branch_dtypes, la.weights, la.weight_exps)):
        x = inputs(pb.source).to(bd)
        if pb.bitserial_maxpool is not None:
            x = max_pool(x, pb.bitserial_maxpool, 0.0)   # values >= 0: zeros as the chip pads
        if la.fused:
            cur = synapses_with_bias(pb.ops, x, w, la.bias if u is None else None)
        else:
            limb = la.limbs[i] if la.limbs else None
            if limb and limb[0] == "channels":          # W·x = Σ_g W[:, g]·x[g], each call exact in float32
                cur = None
                for (c0, c1), wg in zip(limb[1], limb[2]):
                    part = apply_ops(pb.ops, x[:, c0:c1], wg)
                    cur = part.to(la.dtype) if cur is None else cur.add_(part if la.dtype.is_floating_point
                                                                         else part.to(la.dtype))
            elif limb and limb[0] == "input":           # W·x = W·lo + 2^b·W·hi, both calls exact in float32
                b = limb[1]
                hi = torch.floor(x * (1.0 / (1 << b)))
                both = apply_ops(pb.ops, torch.cat([x.sub(hi, alpha=1 << b), hi]), w).to(la.dtype)
                cur = both[:x.shape[0]].add_(both[x.shape[0]:], alpha=1 << b)
            elif limb:                                  # W·x = W_lo·x + 2^b·W_hi·x
                cur = apply_ops(pb.ops, x, w).to(la.dtype).add_(apply_ops(pb.ops, x, limb[2]).to(la.dtype),
                                                                alpha=1 << limb[1])
            else:
                cur = apply_ops(pb.ops, x, w).to(la.dtype)     # exact integers in bd, hence in la.dtype
            if e:
                cur = cur.mul_(1 << e)
            if post is not None:
                post(i, cur)
        u = cur if u is None else u.add_(cur)
    return u if la.fused or la.bias is None else u.add_(la.bias.reshape((1, -1) + (1,) * (u.ndim - 2)))


# --- time-batched synaptic input -----------------------------------------------------------------
# Kernels that simulate a layer over all its steps once its sources' trains (time first: (steps, N,
# ...)) are known compute the synaptic input of a chunk of steps in one synapse call over (chunk·N)
# planes.  The chunks are sized so that the input of one chunk stays in the CPU's L2 cache while the
# neuron loop walks through it (the elementwise updates are memory-bound: measured on ResNet-20,
# whole-run tensors made the rate kernel 2x slower).

CHUNK_BYTES = 1 << 21
STEP_BYTES = 1 << 19        # one step of the widest layer's state (float64) for the samples run together


def sample_groups(graph: SpikingGraph, n: int, step_bytes: int = STEP_BYTES) -> list[slice]:
    """The batch split into groups of samples that the time-batched kernels run together: one step of
    the widest layer's state in `step_bytes`, so that the step loops work in cache (measured on ResNet-20:
    sws 1.4x, reverb 1.2x, rate 1.5x faster than whole batches of 16)."""
    widest = max(int(np.prod(l.shape)) for l in graph.layers)
    size = max(1, step_bytes // (widest * 8))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """A batch of (C, H, W) maps in channels-last memory order (other tensors unchanged): oneDNN's
    convolutions then run without reordering their input and output (measured: 2x faster with 16
    channels, 1.3x with 64), and elementwise ops keep the order."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def empty_steps(steps: int, shape: tuple, dtype: torch.dtype, device) -> torch.Tensor:
    """An uninitialised (steps, *shape) tensor (shape = (N, C, H, W) or (N, F)) whose steps are each
    in `nhwc` order and whose first two axes merge into one batch axis without a copy."""
    if len(shape) == 4:
        return torch.empty((steps * shape[0],) + tuple(shape[1:]), dtype=dtype, device=device,
                           memory_format=torch.channels_last).view((steps,) + tuple(shape))
    return torch.empty((steps,) + tuple(shape), dtype=dtype, device=device)


def sum_steps(train: torch.Tensor) -> torch.Tensor:
    """Σ over the steps of a (steps, N, ...) train, one step at a time into an accumulator in the train's
    dtype and each step's memory order.  `train.sum(dim=0)` on `empty_steps`' layout walks the whole
    train with the steps' stride (measured on a 50-step train of 16 x 64 x 32 x 32: 0.51 s against
    0.037 s); the same integers where the sums are exact in that dtype (e.g. spike counts in float32)."""
    out = torch.zeros_like(train[0])
    for step in train:
        out.add_(step)
    return out


def flat(x: torch.Tensor) -> torch.Tensor:
    """All entries of x in memory order, a view where x is contiguous or channels-last."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1).reshape(-1)
    return x.reshape(-1)


def consumers(prep: Prepared) -> dict:
    """Source layer -> how many branches read it (what `release_sources` counts down)."""
    count = {}
    for layer in prep.graph.neuron_layers():
        for pb in prep.branches[layer.name]:
            count[pb.source] = count.get(pb.source, 0) + 1
    return count


def release_sources(prep: Prepared, layer: Layer, remaining: dict, *stores: dict) -> None:
    """After `layer` took its input: drop from `stores` (trains, codes, planes, ...) every source no later
    layer reads, so that a run holds only the activations still to be consumed (on a residual network a
    block's input stays until the skip connection has read it too): a batch's peak is set by the
    widest point of the network, not by its depth."""
    for pb in prep.branches[layer.name]:
        remaining[pb.source] -= 1
        if remaining[pb.source] == 0:
            for store in stores:
                store.pop(pb.source, None)


def busy_steps(train: torch.Tensor) -> list[bool]:
    """Per step of a (steps, N, ...) train: is any entry nonzero?"""
    dims = tuple(range(1, train.dim()))
    return ((train.amax(dim=dims) > 0) | (train.amin(dim=dims) < 0)).tolist()


def count_unit_spikes(train: torch.Tensor) -> int:
    """Nonzero entries of a float train (steps, N, ...) whose values are −1, 0 or 1: Σ x² by BLAS dot
    products over slices of 2^23 entries (every partial sum an integer below 2^24: exact in float32,
    in any order)."""
    return sum(int(torch.dot(c, c)) for step in train for c in flat(step).split(1 << 23))


def step_inputs(prep: Prepared, layer: Layer, la: LayerArith, trains: dict, busy: dict, steps: int, lag: int = 0,
                post=None):
    """For t = 0 .. steps−1: the layer's input Σ_b (W_b·x_b(t − lag)) << e_b + bias, a (N, *shape) tensor
    in la.dtype, or None where no source sent anything at t − lag (the input is then the bias alone).
    trains: source -> its train (steps', N, ...) (time first), busy: source -> `busy_steps` of it;
    steps before 0 or past a train's end send nothing; post: as in `layer_current`."""
    sources = [pb.source for pb in prep.branches[layer.name]]
    n = trains[sources[0]].shape[1]
    shape = (n,) + tuple(layer.shape)
    per_step = int(np.prod(shape)) * torch.empty((), dtype=la.dtype).element_size()
    chunk = max(1, CHUNK_BYTES // per_step)
    for t0 in range(0, steps, chunk):
        t1 = min(steps, t0 + chunk)
        sent = [t for t in range(max(t0 - lag, 0), t1 - lag) if any(t < len(busy[s]) and busy[s][t] for s in sources)]
        cur, first = None, 0
        if sent:
            lo, hi = sent[0], sent[-1] + 1

            def planes(src):
                tr = trains[src][lo:hi]
                if tr.shape[0] < hi - lo:           # a shorter train sends nothing at its end
                    tr = torch.cat([tr, tr.new_zeros((hi - lo - tr.shape[0],) + tuple(tr.shape[1:]))])
                return tr.reshape((-1,) + tuple(tr.shape[2:]))
            cur = layer_current(prep, layer, la, planes, post).reshape((hi - lo,) + shape)
            first = lo + lag
        for t in range(t0, t1):
            yield cur[t - first] if cur is not None and first <= t < first + cur.shape[0] else None


def iter_batches(x: np.ndarray, batch_size: int):
    batch_size = check_batch_size(batch_size)
    for start in range(0, len(x), batch_size):
        yield start, x[start:start + batch_size]


def depth(graph: SpikingGraph) -> int:
    """Synapse hops on the longest path from the encoder to the readout."""
    hops = {graph.input.name: 0}
    for layer in graph.neuron_layers():
        hops[layer.name] = 1 + max(hops[b.source] for b in layer.branches)
    return hops[graph.output.name]


def fanout(ops: list, src_shape: tuple) -> np.ndarray:
    """Synapses leaving each source element of a branch (paths through the ops with nonzero
    weight; equal to the connection count when pooling windows do not overlap), float64 (*src_shape)."""
    ind = []
    for op in ops:
        if isinstance(op, syn.WEIGHTED):
            op = type(op)(**{**op.__dict__, "weight": (np.asarray(op.weight) != 0).astype(np.float64)})
        ind.append(op)
    x = torch.ones((1,) + tuple(src_shape), dtype=torch.float64, requires_grad=True)
    apply_ops(ind, x).sum().backward()
    return x.grad[0].numpy()


# --- Lava's 24-bit wrap of a convolution's output, on time-batched currents ------------------------

def lava_wrap_post(prep: Prepared, layer: Layer, p_max: dict):
    """`layer_current`'s post-processing that makes each branch's current what `lava_branch_current`
    delivers: Lava's Conv wraps its output to signed 24 bits.  The wrap is elementwise, so it applies to
    a whole chunk of steps' currents as to one step's.  Only the branches that have a Conv and whose
    bound Σ|W|·p_max·2^e reaches 2^23 are wrapped (no other current can change); None when no branch
    is.  Returns (post or None, per-branch wrap flags)."""
    half = 1 << 23
    wraps = [any(isinstance(op, syn.Conv) for op in pb.ops)
             and float(np.max(branch_bound(prep, pb, p_max[pb.source], pb.weight_exp))) >= half
             for pb in prep.branches[layer.name]]

    def post(i, cur):        # two reductions skip the three passes where no current of the chunk wraps
        if wraps[i] and (float(cur.amax()) >= half or float(cur.amin()) < -half):
            cur.add_(half).remainder_(2 * half).sub_(half)     # exact: int64, or fmod of integers below 2^53
    return (post if any(wraps) else None), wraps


@dataclass
class LavaStepLayer:
    """How a layer after layer engine gets one Lava layer's input a_in for a chunk of steps (`step_inputs`)."""
    arith: LayerArith             # the synapse calls, no bias (Lava adds it to the neuron's state, not to a_in)
    post: object                  # Lava's 24-bit wrap of the convolutions' currents (`lava_wrap_post`), or None


def lava_step_layer(prep: Prepared, layer: Layer, p_max: dict, bound: float) -> LavaStepLayer:
    """The `LavaStepLayer` of `layer`, its states in the type exact below `bound` (`layer_arith`, unfused:
    the weight exponents are shifts after each branch's call, as Lava's Dense/Conv apply them)."""
    post, _ = lava_wrap_post(prep, layer, p_max)
    la = layer_arith(prep, layer, p_max, bound, fuse=False)
    return LavaStepLayer(replace(la, bias=None), post)

