"""Core allocation: which cores of a target a compiled network needs, from its synapses.

The structure of the network (`Connectivity`: which source neuron reaches which target neuron
through a branch's op chain, pooling folded in) and the target's limits (`ChipLimits`: neurons and
synaptic memory per core, cores per chip) give a greedy allocation, layer by layer, one layer per
core: `core_allocation`.  `check_fits` is the compiler's check (a network larger than its chips
stops with the largest layers named); the cost report prices the same allocation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import NeurodeployError, TargetLimitError
from ..ir import synapses as syn
from ..ir.spiking import SpikingGraph
from ..ir.synapse_ops import apply_ops, output_shape

EXPLICIT_LIMIT = 50_000_000        # one-hot probe elements per chunk when paths are not unique


# --- structure --------------------------------------------------------------------------------

def ones(ops: list) -> list:
    """The op chain with every weight replaced by 1: its linear map counts paths."""
    return [replace(op, weight=np.ones(np.shape(op.weight))) if isinstance(op, syn.WEIGHTED) else op
            for op in ops]


def paths_unique(ops: list) -> bool:
    """True when no source-target pair is joined by more than one path, so that the path-count
    map of the chain is the 0/1 connectivity: pooling windows that do not overlap before the
    one weighted op, nothing but Flatten after it."""
    weighted_seen = False
    for op in ops:
        if isinstance(op, syn.Flatten):
            continue
        if isinstance(op, syn.WEIGHTED):
            if weighted_seen:
                return False
            weighted_seen = True
        elif weighted_seen or isinstance(op, syn.MaxPool):
            return False
        elif isinstance(op, syn.SumPool) and (op.stride[0] < op.kernel[0] or op.stride[1] < op.kernel[1]):
            return False
    return True


def split_chain(ops: list) -> tuple[list, object] | None:
    """(pre-ops, weighted op) of a chain [sum pools / Flatten..., one weighted op, Flatten...] --
    the form of every unique-path chain the lowering makes -- or None for any other chain."""
    at = [i for i, op in enumerate(ops) if isinstance(op, syn.WEIGHTED)]
    if len(at) != 1 or not all(isinstance(op, syn.Flatten) for op in ops[at[0] + 1:]) \
            or not all(isinstance(op, (syn.SumPool, syn.Flatten)) for op in ops[:at[0]]):
        return None
    return ops[:at[0]], ops[at[0]]


def _grad(ops: list, shape: tuple, upstream: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(chain(ones), d<chain(ones), upstream>/d ones) for a batch of all-ones inputs of `shape`
    (float64: the path counts are exact integers); upstream defaults to ones."""
    x = torch.ones(tuple(shape), dtype=torch.float64, requires_grad=True)
    y = apply_ops(ops, x)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y) if upstream is None else upstream)
    return y.detach(), g


@dataclass
class Connectivity:
    """0/1 connectivity of one branch between its (possibly max-pooled) sources and its targets.

    For the chains the lowering makes (non-overlapping sum pools, one weighted op, Flatten:
    `split_chain`), fan-in, fan-out and destination cores come from the chain's structure, in
    work that grows with neurons and kernel taps, not with connections: a convolution joins every
    input channel of a group to every output channel of it, so one single-channel convolution
    with an all-ones kernel gives the spatial part, and the channels multiply it; a dense layer
    joins all to all; a channel scale one to one.  Other chains run whole on all-ones inputs (the
    path counts and their gradient) or, where paths are not unique, one-hot probe by probe."""
    ops: list                      # ones-weight chain
    src_shape: tuple
    n_tgt: int
    unique_paths: bool
    fan_in: np.ndarray = field(default=None)    # (n_tgt,) synapses into each target neuron
    fan_out: np.ndarray = field(default=None)   # (n_src,) synapses out of each source neuron
    _pairs: tuple = None                         # (src idx, tgt idx) when paths are not unique

    @property
    def n_src(self) -> int:
        return int(np.prod(self.src_shape))

    @property
    def _structure(self) -> tuple[list, object] | None:
        """split_chain of a unique-path chain whose convolution (if any) acts on (C, H, W)."""
        parts = split_chain(self.ops) if self.unique_paths else None
        if parts is not None and isinstance(parts[1], syn.Conv) and len(self.src_shape) != 3:
            return None
        return parts

    def build(self) -> "Connectivity":
        if self._structure is not None:
            self._build_structured(*self._structure)
        elif self.unique_paths:
            y, g = _grad(self.ops, (1,) + tuple(self.src_shape))
            self.fan_in = np.rint(y.reshape(-1).numpy()).astype(np.int64)
            self.fan_out = np.rint(g.reshape(-1).numpy()).astype(np.int64)
        else:
            rows, cols = [], []
            chunk = max(1, EXPLICIT_LIMIT // max(1, self.n_src + self.n_tgt))
            for start in range(0, self.n_src, chunk):
                b = min(chunk, self.n_src - start)
                x = torch.zeros((b, self.n_src), dtype=torch.float64)
                x[torch.arange(b), start + torch.arange(b)] = 1.0
                with torch.no_grad():
                    y = apply_ops(self.ops, x.reshape((b,) + tuple(self.src_shape))).reshape(b, -1)
                nz = torch.nonzero(y > 0).numpy()
                rows.append(nz[:, 0] + start)
                cols.append(nz[:, 1])
            src, tgt = np.concatenate(rows), np.concatenate(cols)
            self._pairs = (src, tgt)
            self.fan_in = np.bincount(tgt, minlength=self.n_tgt).astype(np.int64)
            self.fan_out = np.bincount(src, minlength=self.n_src).astype(np.int64)
        return self

    def _build_structured(self, pre: list, w) -> None:
        """fan_in / fan_out of [pools, w, Flatten] without applying w to all its channels."""
        if isinstance(w, syn.Conv):
            # one input channel through the pools and a 1-in, 1-out all-ones kernel: the spatial
            # path counts; every output channel of a group sees all cin_g inputs of it, and
            # every input channel feeds all cout_g outputs of its group
            c_out, cin_g = w.weight.shape[:2]
            cout_g = c_out // w.groups
            one = [*pre, replace(w, weight=np.ones((1, 1) + tuple(np.shape(w.weight)[2:])), groups=1)]
            y1, g1 = _grad(one, (1, 1) + tuple(self.src_shape[1:]))
            fan_in = np.broadcast_to(y1.reshape(1, -1).numpy() * cin_g, (c_out, y1[0, 0].numel()))
            fan_out = np.broadcast_to(g1.reshape(1, -1).numpy() * cout_g, (self.src_shape[0], g1[0, 0].numel()))
        else:
            pooled, g = _grad(pre, (1,) + tuple(self.src_shape))    # per pooled element: its sources
            if isinstance(w, syn.Dense):                            # all to all
                n_out = int(np.shape(w.weight)[0])
                fan_in = np.full(n_out, float(pooled.sum()))
                fan_out = g.numpy() * n_out
            else:                                                   # ChannelScale: one to one
                fan_in, fan_out = pooled.numpy(), g.numpy()
        self.fan_in = np.rint(fan_in).reshape(-1).astype(np.int64)
        self.fan_out = np.rint(fan_out).reshape(-1).astype(np.int64)

    def dest_cores(self, bounds: list[tuple[int, int]]) -> np.ndarray:
        """(n_src,) number of target cores (flattened target ranges) each source reaches."""
        if len(bounds) <= 1:
            return (self.fan_out > 0).astype(np.int64)
        out = np.zeros(self.n_src, np.int64)
        if self._pairs is not None:
            src, tgt = self._pairs
            core_of = np.zeros(self.n_tgt, np.int64)
            for c, (a, b) in enumerate(bounds):
                core_of[a:b] = c
            pairs = np.unique(src * len(bounds) + core_of[tgt])
            np.add.at(out, pairs // len(bounds), 1)
            return out
        if self._structure is not None:
            return self._dest_cores_structured(*self._structure, bounds)
        x = torch.ones((1,) + tuple(self.src_shape), dtype=torch.float64, requires_grad=True)
        y = apply_ops(self.ops, x).reshape(-1)
        for a, b in bounds:
            (g,) = torch.autograd.grad(y[a:b].sum(), x, retain_graph=True)
            out += (g.reshape(-1).numpy() > 0.5)
        return out

    def _dest_cores_structured(self, pre: list, w, bounds: list[tuple[int, int]]) -> np.ndarray:
        """dest_cores of [pools, w, Flatten]: the cores each input of w reaches, then back
        through the non-overlapping pools (a source feeds at most one pooled element)."""
        in_shape = shape_after_ops(pre, self.src_shape)
        bounds = [(a, b) for a, b in bounds if b > a]
        if isinstance(w, syn.Conv):
            per_input = _conv_dest_cores(w, in_shape, bounds)
        elif isinstance(w, syn.Dense):                  # all to all: every core
            per_input = torch.full((1,) + in_shape, float(len(bounds)), dtype=torch.float64)
        else:                                           # one to one: the cores that hold its target
            cover = np.zeros(self.n_tgt + 1)
            for a, b in bounds:
                cover[a] += 1
                cover[b] -= 1
            per_input = torch.from_numpy(np.cumsum(cover)[:-1]).reshape((1,) + in_shape)
        _, g = _grad(pre, (1,) + tuple(self.src_shape), per_input)
        return np.rint(g.reshape(-1).numpy()).astype(np.int64)


def _conv_dest_cores(w: syn.Conv, in_shape: tuple, bounds: list[tuple[int, int]],
                     chunk: int = 64) -> torch.Tensor:
    """(1, C_in, H, W): for each input of convolution `w`, the number of cores (ranges of its
    flattened (C_out, Ho, Wo) outputs) it reaches.  Within a group every input channel reaches
    every output channel, so an input reaches a core iff its spatial window meets the output
    positions the core holds in some channel of the input's group: one single-channel
    all-ones-kernel backward pass per (core, group) pair that meet, in chunks."""
    c_out, cin_g = w.weight.shape[:2]
    groups, cout_g = w.groups, c_out // w.groups
    kernel = torch.ones((1, 1) + tuple(np.shape(w.weight)[2:]), dtype=torch.float64)
    out_hw = output_shape([w], in_shape)[1:]
    hw = int(np.prod(out_hw))
    masks, group_of = [], []
    for a, b in bounds:
        for gi in range(a // (cout_g * hw), (b - 1) // (cout_g * hw) + 1):
            lo, hi = max(a, gi * cout_g * hw), min(b, (gi + 1) * cout_g * hw)
            mask = np.zeros(hw)
            if hi - lo >= hw:
                mask[:] = 1
            else:                   # a tail of one channel's plane and / or a head of the next
                start, end = lo % hw, lo % hw + (hi - lo)
                mask[start:min(end, hw)] = 1
                mask[:max(0, end - hw)] = 1
            masks.append(mask)
            group_of.append(gi)
    per_group = torch.zeros((groups,) + tuple(in_shape[1:]), dtype=torch.float64)
    for s in range(0, len(masks), chunk):
        m = torch.from_numpy(np.stack(masks[s:s + chunk])).reshape((-1, 1) + out_hw)
        x = torch.ones((len(m), 1) + tuple(in_shape[1:]), dtype=torch.float64, requires_grad=True)
        y = F.conv2d(x, kernel, None, w.stride, w.padding, w.dilation)
        (g,) = torch.autograd.grad(y, x, m)
        per_group.index_add_(0, torch.tensor(group_of[s:s + chunk]), (g[:, 0] > 0.5).to(torch.float64))
    return per_group.repeat_interleave(cin_g, dim=0)[None]


def shape_after_ops(ops: list, shape: tuple) -> tuple:
    """The target shape of a branch's chain on a source of `shape` (from the ops' parameters)."""
    return output_shape(ops, shape)


@dataclass
class BranchConnectivity:
    """One branch of a layer: its source, a leading max pool (split off: it acts on the source's
    spikes, before the synapses) and the 0/1 connectivity of the rest of its op chain."""
    source: str
    maxpool: syn.MaxPool | None
    conn: Connectivity
    ops: list                      # the branch's whole op chain (max pool included)


def branch_connectivity(net: SpikingGraph) -> dict[str, list[BranchConnectivity]]:
    """Layer -> its branches' connectivity (NeurodeployError when a branch does not fit its layer)."""
    shapes = {l.name: tuple(l.shape) for l in net.layers}
    out = {}
    for layer in net.neuron_layers():
        infos = []
        n_tgt = int(np.prod(layer.shape))
        for b in layer.branches:
            ops = list(b.ops)
            mp = ops.pop(0) if ops and isinstance(ops[0], syn.MaxPool) else None
            src_shape = shapes[b.source] if mp is None else shape_after_ops([mp], shapes[b.source])
            conn = Connectivity(ones(ops), src_shape, n_tgt, paths_unique(ops)).build()
            if int(np.prod(shape_after_ops(ops, src_shape))) != n_tgt:
                raise NeurodeployError(f"branch from '{b.source}' yields {int(np.prod(shape_after_ops(ops, src_shape)))} "
                                       f"values for {n_tgt} neurons", f"layer '{layer.name}'",
                                       "the compiled network is inconsistent: compile it again")
            infos.append(BranchConnectivity(b.source, mp, conn, list(b.ops)))
        out[layer.name] = infos
    return out


# --- target, memory and cores -----------------------------------------------------------------

@dataclass
class ChipLimits:
    name: str
    description: str
    weight_bits: int
    cores_per_chip: int            # 0 = unlimited
    neurons_per_core: int
    memory_bytes_per_core: int
    binary_weight_bits: int = 0    # bits the target stores per ±1 weight (0: the file gives none)


def chip_limits(net: SpikingGraph) -> ChipLimits:
    """The limits of the graph's target (from its recorded target_spec, else its target file)."""
    spec = net.meta.get("target_spec")
    if not spec:
        from . import load_target
        spec = load_target(net.target).to_dict()
    try:
        c = spec["chip"]
        return ChipLimits(spec.get("name", net.target), spec.get("description", ""), int(spec["weights"]["mant_bits"]),
                          int(c["cores_per_chip"]), int(c["neurons_per_core"]),
                          int(c["synaptic_memory_bytes_per_core"]),
                          int(spec.get("synapse_formats", {}).get("binary_weight_bits", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise NeurodeployError(f"the target description lacks {exc}", f"target '{net.target}'",
                               "compile the model again with a complete target file") from None


def layer_bits(net: SpikingGraph, lim: ChipLimits, layer: str, index_bits: int) -> int:
    """Bits stored per synapse of `layer`: the target's ±1 format for the binary (±1) layers a
    scheme lists in meta["binary_layers"] (reverb), its weight mantissa otherwise; plus index bits."""
    binary = layer in net.meta.get("binary_layers", ()) and lim.binary_weight_bits
    return (lim.binary_weight_bits if binary else lim.weight_bits) + int(index_bits)


def synapse_bits(net: SpikingGraph, lim: ChipLimits, layer, infos: list, index_bits: int) -> np.ndarray:
    """Synapse bits stored per target neuron of `layer` (int64, flattened): Σ over its branches of
    fan-in × bits per synapse, where a real-valued branch of a binary layer (meta["real_branches"]:
    a residual shortcut) counts at the weight mantissa, not the ±1 format."""
    real = net.meta.get("real_branches", {}).get(layer.name, ())
    full = layer_bits(net, lim, layer.name, index_bits)
    return sum(bi.conn.fan_in.astype(np.int64) * (lim.weight_bits + int(index_bits) if i in real else full)
               for i, bi in enumerate(infos))


def allocate(bits_per_neuron: np.ndarray, lim: ChipLimits) -> tuple[list, str | None]:
    """Greedy cores for one layer: list of (start, end) flattened neuron ranges, or a problem."""
    n = len(bits_per_neuron)
    per_core = lim.neurons_per_core or n
    cap = lim.memory_bytes_per_core * 8 if lim.memory_bytes_per_core else math.inf
    worst = int(bits_per_neuron.max()) if n else 0
    if worst > cap:
        return [(0, n)], (f"one neuron needs {math.ceil(worst / 8)} bytes of synapses, more than the "
                          f"{lim.memory_bytes_per_core} bytes of a core")
    bounds, start = [], 0
    cum = np.concatenate([[0], np.cumsum(bits_per_neuron, dtype=np.float64)])
    while start < n:
        end = min(n, start + per_core)
        end = min(end, int(np.searchsorted(cum, cum[start] + cap, side="right")) - 1)
        bounds.append((start, end))
        start = end
    return bounds, None


def core_allocation(net: SpikingGraph, index_bits: int = 0) -> tuple[dict, list[str], int, ChipLimits]:
    """Cores per layer (greedy, one layer per core), the per-layer problems, total cores, limits."""
    lim = chip_limits(net)
    branches = branch_connectivity(net)
    cores, problems = {}, []
    for layer in net.neuron_layers():
        bounds, problem = allocate(synapse_bits(net, lim, layer, branches[layer.name], index_bits), lim)
        cores[layer.name] = len(bounds)
        if problem:
            problems.append(f"layer '{layer.name}': {problem}")
    return cores, problems, sum(cores.values()), lim


# The memory model stores every connection as its own synapse (`synapse_bits`).  A convolution
# uses each weight at every output position, and a sum pool folded into a branch repeats each
# weight once per pooled input; Loihi 2 can store a shared kernel once.  So where a network has
# either, its synaptic memory, cores and chips are what it needs at most.
UPPER_BOUND_REASON = ("every connection is stored as its own synapse (no weight sharing), "
                      "so convolutions and folded pools may need fewer cores")


def _shares_weights(ops: list) -> bool:
    """True when the chain uses one weight for several connections: a convolution, or a sum pool
    of more than one input folded before the weighted op."""
    return any(isinstance(op, syn.Conv) or (isinstance(op, syn.SumPool) and op.kernel[0] * op.kernel[1] > 1)
               for op in ops)


def counts_are_upper_bounds(net: SpikingGraph) -> bool:
    """True when some branch shares its weights between connections (`_shares_weights`): the
    explicit-synapse memory model then over-counts, and the core and chip counts are upper bounds."""
    return any(_shares_weights(b.ops) for layer in net.neuron_layers() for b in layer.branches)


def chips_needed(total_cores: int, lim: ChipLimits) -> int:
    """Chips of the target that hold `total_cores` cores: ceil(cores / cores per chip), at least 1
    (1 for a target without a per-chip limit)."""
    return max(1, -(-int(total_cores) // lim.cores_per_chip)) if lim.cores_per_chip else 1


def check_fits(net: SpikingGraph, chips: int | str = 1) -> dict:
    """Raise TargetLimitError naming the offending layers when the network does not fit `chips`
    chips of its target (chips="auto": as many chips as it needs); return the allocation otherwise:
    cores per layer, total cores, the chips it needs and the chips available (`chips_available`,
    "auto" or the number given), and `upper_bound` (`counts_are_upper_bounds`)."""
    cores, problems, total, lim = core_allocation(net)
    if problems:
        raise TargetLimitError("; ".join(problems), f"target '{lim.name}'",
                               "shrink those layers' fan-in or use a target with more synaptic memory per core")
    needed = chips_needed(total, lim)
    if chips != "auto" and lim.cores_per_chip and total > lim.cores_per_chip * chips:
        worst = sorted(cores.items(), key=lambda kv: -kv[1])[:3]
        raise TargetLimitError(
            f"the network needs {total} cores but {chips} chip(s) have {lim.cores_per_chip * chips} "
            f"({total - lim.cores_per_chip * chips} too many; largest layers: "
            + ", ".join(f"{n} {c} cores" for n, c in worst) + ")",
            f"target '{lim.name}'", f"pass --chips {needed} (or --chips auto) for a multi-chip system, "
                                    "or make the network smaller")
    return {"cores": cores, "total_cores": total, "chips": needed, "chips_available": chips,
            "upper_bound": counts_are_upper_bounds(net)}
