"""Simulator kernels of the `bitplane` scheme: two engines, bit-identical on every layer.

Spike trains are planes: a tensor (N, T, *shape) of 0/1, plane t = time step t+1, most
significant bit first.  A `BitplaneIF` layer accumulates its sources' planes, U <- 2U + I(t)
(the Horner sum), adds its bias and emits its own code MSB first (`neurons.BitplaneIF`).

`codes` engine (the default, `--engine neurodeploy`): the accumulation phase is linear,

    U = Σ_t 2^(T−1−t) · W·s_t = W · Σ_t 2^(T−1−t) s_t = W · code,

so one convolution / matmul per branch on the sources' integer codes gives every neuron's
membrane exactly, and the emission phase is a floor division: the greedy MSB-first
subtractive emission against thresholds D·2^(T−1), ..., D of min(U, code_max·D) spells
code = clip(floor(U / D), 0, min(code_max, 2^T − 1)) and leaves U' = min(U, code_max·D) − code·D
(`emission`).  The network then costs what the quantised ANN costs.

`planes` engine (`--engine planes`): the chip's own order of work, plane by plane: every plane
through the synapses (all planes of a layer in one batched call), the Horner sum in int64, the
emission threshold by threshold (`emit`).  Kept as the executable statement of the neuron model
that the codes engine is tested against (tests/test_bitplane_engines.py).

Exactness of float arithmetic (both engines).  Synapse ops run as float convolutions/matmuls.
Every input (a code or a 0/1 plane) and every weight is an integer, so every product is an
integer and every partial sum is an integer of magnitude at most the static bound
Σ|W|·x_max.  Below 2^24 (float32) or 2^53 (float64) every such integer is representable, so
every multiplication and addition is exact whatever order, blocking, vector width, FMA or thread
count the BLAS / oneDNN / im2col kernel uses: the result is the same bits on any CPU and thread
count, which is why the simulator needs no pinned numerics.  `sim.core.prepare` bounds the
planes engine's branches; `code_plan` bounds the codes engine's layers: the synapse calls on
codes (Σ|W|·code_cap) and U with the emission's arithmetic (max |U| + D) each get the narrowest
exact type (float32, float64; U int64 beyond 2^53).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import NeurodeployError
from ...sim import core
from .neurons import BitplaneIF

# ---------------------------------------------------------------------------- neuron arithmetic

def encode_planes(codes: torch.Tensor, n_steps: int) -> torch.Tensor:
    """BitplaneEncoder: integer codes (N, *shape) -> spike planes (N, T, *shape), MSB first."""
    shifts = torch.arange(n_steps - 1, -1, -1, device=codes.device).reshape((1, n_steps) + (1,) * (codes.ndim - 1))
    return ((codes.unsqueeze(1) >> shifts) & 1).to(torch.uint8)


def horner(plane_currents: torch.Tensor, partials: list | None = None) -> torch.Tensor:
    """Accumulation phase: U <- 2U + I(t) over the planes axis (dim 1), from U = 0.  `partials`,
    if a list, gets every intermediate U (what the membrane holds during accumulation)."""
    u = torch.zeros_like(plane_currents[:, 0])
    for t in range(plane_currents.shape[1]):
        u = 2 * u + plane_currents[:, t]
        if partials is not None:
            partials.append(u)
    return u


def emit_states(u: torch.Tensor, neuron: BitplaneIF) -> tuple[torch.Tensor, torch.Tensor]:
    """Emission phase of BitplaneIF on int64 U: clamp at code_max·D, then thresholds
    D·2^(T−1) ... D, subtract on spike.  (planes (N, T, *shape) uint8, U left after emission)."""
    u = torch.minimum(u, torch.as_tensor(neuron.code_max * neuron.v_th_mant, dtype=u.dtype, device=u.device))
    planes = []
    for j in range(neuron.n_steps):
        theta = neuron.v_th_mant << (neuron.n_steps - 1 - j)
        s = u >= theta
        u = u - s.to(u.dtype) * theta
        planes.append(s.to(torch.uint8))
    return torch.stack(planes, dim=1), u


def emit(u: torch.Tensor, neuron: BitplaneIF) -> torch.Tensor:
    """The spike planes of the emission phase (`emit_states`)."""
    return emit_states(u, neuron)[0]


def code_cap(neuron) -> int:
    """The largest code a neuron's n_steps planes can spell and its clamp allows."""
    return min(int(neuron.code_max), (1 << int(neuron.n_steps)) - 1)


def emission(u: torch.Tensor, neuron: BitplaneIF, in_place: bool = False) -> torch.Tensor:
    """The code that `emit_states` spells from U, in U's dtype: clip(floor(U / D), 0, code_cap)
    (in_place: computed in U's own storage).

    The clamp at code_max·D commutes with the floor (floor(min(U, c·D)/D) = min(floor(U/D), c))
    and the greedy MSB-first subtraction of D·2^(T−1), ..., D writes floor(U'/D) in binary when
    it is below 2^T, all ones otherwise.  Float U: exact when |U| + D ≤ 2^p (p = 24 / 53 bits,
    `code_plan` ensures it).  U ≥ 0, q = floor(U/D): q is representable, so fl(U/D) ≥ q; U/D ≤
    (q+1) − 1/D, and the float next below q+1 is within (q+1)·2^(1−p), so fl(U/D) < q+1 as long
    as 1/D ≥ (q+1)·2^−p, i.e. D·(q+1) ≤ U + D ≤ 2^p.  U < 0: fl(U/D) < 0, floor ≤ −1, clipped to 0
    as the exact value is."""
    if u.is_floating_point():
        q = u.div_(float(neuron.v_th_mant)) if in_place else u / float(neuron.v_th_mant)
        return q.floor_().clamp_(0, code_cap(neuron))
    return torch.div(u, int(neuron.v_th_mant), rounding_mode="floor").clamp_(0, code_cap(neuron))


def residual(u: torch.Tensor, code: torch.Tensor, neuron: BitplaneIF) -> torch.Tensor:
    """U left after the emission of `code` (int64): min(U, code_max·D) − code·D."""
    return torch.clamp(u, max=int(neuron.code_max) * int(neuron.v_th_mant)) - code * int(neuron.v_th_mant)


def decode_planes(planes: torch.Tensor) -> torch.Tensor:
    """Spike planes (N, T, ...) -> integer codes, weighting plane t by 2^(T-1-t)."""
    t = planes.shape[1]
    w = (1 << torch.arange(t - 1, -1, -1, device=planes.device, dtype=torch.int64))
    w = w.reshape((1, t) + (1,) * (planes.ndim - 2))
    return (planes.to(torch.int64) * w).sum(dim=1)


def spike_total(codes: torch.Tensor, n_steps: int) -> int:
    """Spikes that codes (any dtype, integer values in 0 .. 2^n_steps − 1) emit: Σ popcount(code),
    from the histogram of the codes (counted in the narrowest integer type that holds them)."""
    top = (1 << int(n_steps)) - 1
    small = core.flat(codes).to(torch.uint8 if top < 256 else torch.int32 if top < 2 ** 31 else torch.int64)
    hist = torch.bincount(small, minlength=top + 1)
    popcount = torch.tensor([bin(k).count("1") for k in range(len(hist))], dtype=torch.int64, device=hist.device)
    return int((hist * popcount).sum())


def bitserial_maxpool(planes: torch.Tensor, mp) -> torch.Tensor:
    """Max pooling (an `ir.synapses.MaxPool`) of MSB-first spike trains, one plane at a time
    (exact on the codes).

    A window's output bit is the OR of the bits of inputs still tied for the maximum;
    an input whose bit falls below the output bit drops out of the race.  Padding is silent
    (all-zero trains, code 0): the max of codes >= 0 whenever every window holds a real input,
    which `ir.validate` checks.
    """
    kernel, stride = tuple(mp.kernel), tuple(mp.stride)
    top, bottom, left, right = mp.padding
    n, t, c, h, w = planes.shape
    x = planes.reshape(n * t, c, h, w).to(torch.float32)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    oh, ow = mp.out_hw((h, w))
    cols = F.unfold(x, kernel, stride=stride)                     # (n*t, c*k, L)
    k = kernel[0] * kernel[1]
    cols = cols.reshape(n, t, c, k, -1)
    alive = torch.ones_like(cols[:, 0])
    out = []
    for step in range(t):
        bits = cols[:, step] * alive
        o = bits.amax(dim=2, keepdim=True)
        alive = alive * (1 - (o - bits).clamp(min=0))             # drop inputs that lost this bit
        out.append(o.squeeze(2))
    return torch.stack(out, dim=1).reshape(n, t, c, oh, ow).to(torch.uint8)


# ---------------------------------------------------------------------------- one batch, either engine

@dataclass
class BitplaneRun:
    """What one batch produced, int64 tensors on the simulation device (either engine)."""
    codes: dict                 # spiking layer (encoder included) -> codes (N, *shape); {} unless recorded
    spikes: dict                # spiking layer -> spikes in the batch
    readout_state: torch.Tensor  # the readout's U (N, *shape)
    planes: dict | None = None       # keep_states: spiking layer -> planes (N, T, *shape) uint8
    membranes: dict | None = None    # keep_states: BitplaneIF layer -> U after accumulation and bias
    residuals: dict | None = None    # keep_states: BitplaneIF layer -> U left after the emission


def check_neuron(layer) -> None:
    if not isinstance(layer.neuron, BitplaneIF):
        raise NeurodeployError(f"the simulator has no kernel for {type(layer.neuron).__name__}",
                               f"layer '{layer.name}'")


def _input_codes(prep: core.Prepared, x: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)   # copy: x may be a read-only memmap
    return core.input_codes(prep.graph.input, xt)


def accumulate_planes(prep: core.Prepared, layer, planes_of, probe: core.Probe | None = None) -> torch.Tensor:
    """Σ_branches Horner(W·planes_src) << weight_exp + bias: U of a layer in int64, plane by plane.
    planes_of(source name) -> that source's planes (N, T, *shape).  `probe` gets the membrane's
    peak (branch by branch, as the planes arrive)."""
    u = None
    for pb in prep.branches[layer.name]:
        p = planes_of(pb.source)
        if pb.bitserial_maxpool is not None:
            p = bitserial_maxpool(p, pb.bitserial_maxpool)
        n, t = p.shape[:2]
        current = core.branch_current(pb, p.reshape((n * t,) + tuple(p.shape[2:])))
        partials = [] if probe is not None else None
        acc = horner(current.reshape((n, t) + tuple(current.shape[1:])), partials)
        if probe is not None:   # the membrane holds the earlier branches' sum plus this one's partials
            base = 0 if u is None else u
            probe.peak(layer.name, *[base + p for p in partials])
        u = acc if u is None else u + acc
    u = u + core.layer_bias(layer, u)
    if probe is not None:
        probe.peak(layer.name, u)
    return u


def run_planes(prep: core.Prepared, x: np.ndarray, record_codes: bool = True, keep_states: bool = False,
               probe: core.Probe | None = None) -> BitplaneRun:
    """The planes engine: every layer's planes through its synapses, Horner sums, threshold emission.
    `probe` gets each layer's membrane peak (the readout only holds a value after the last plane,
    so no per-step readout)."""
    graph = prep.graph
    enc = graph.input
    k0 = _input_codes(prep, x)
    planes = {enc.name: encode_planes(k0, enc.neuron.n_steps)}
    codes = {enc.name: k0} if record_codes else {}
    spikes = {enc.name: int(planes[enc.name].sum())}
    membranes, residuals = {}, {}
    remaining = core.consumers(prep)
    u = None
    for layer in graph.neuron_layers():
        u = accumulate_planes(prep, layer, planes.__getitem__, probe)
        if not keep_states:         # a source's planes go once its last reader took them (residual branches!)
            core.release_sources(prep, layer, remaining, planes)
        if layer.is_readout:
            break
        check_neuron(layer)
        out, left = emit_states(u, layer.neuron)
        planes[layer.name] = out
        spikes[layer.name] = int(out.sum())
        if record_codes:
            codes[layer.name] = decode_planes(out)
        if keep_states:
            membranes[layer.name], residuals[layer.name] = u, left
    if keep_states:
        return BitplaneRun(codes, spikes, u, planes, membranes, residuals)
    return BitplaneRun(codes, spikes, u)


def code_plan(prep: core.Prepared) -> dict[str, core.LayerArith]:
    """Per layer of the graph, how the codes engine computes it exactly (cached on `prep`):
    U = Σ_b (W_b·code_b) << e_b + bias with the sources' codes up to their code_cap, in float32 /
    float64 where max |U| + D is below 2^24 / 2^53 (the emission's arithmetic: see `emission`),
    int64 beyond; each branch's synapse call in the float type exact for Σ|W_b|·code_cap."""
    if "bitplane.codes" in prep.cache:
        return prep.cache["bitplane.codes"]
    graph = prep.graph
    cap = {graph.input.name: code_cap(graph.input.neuron)}
    plan = {}
    for layer in graph.neuron_layers():
        if not layer.is_readout:
            check_neuron(layer)
            cap[layer.name] = code_cap(layer.neuron)
        top = float(np.max(core.current_bound(prep, layer, cap))) + (0 if layer.is_readout else int(layer.neuron.v_th_mant))
        plan[layer.name] = core.layer_arith(prep, layer, cap, top)
        if plan[layer.name] is None:
            raise NeurodeployError("synaptic sums of codes exceed float64's exact range", f"layer '{layer.name}'",
                                   "simulate with --engine planes")
    prep.cache["bitplane.codes"] = plan
    return plan


def run_codes(prep: core.Prepared, x: np.ndarray, record_codes: bool = True, keep_states: bool = False) -> BitplaneRun:
    """The codes engine: U = Σ_b (W_b·2^e_b)·code_b + bias, one synapse call per branch, then the emission."""
    graph = prep.graph
    plan = code_plan(prep)
    enc = graph.input
    k0 = _input_codes(prep, x)
    value = {enc.name: core.nhwc(k0 & ((1 << int(enc.neuron.n_steps)) - 1))}     # what its planes spell
    codes = {enc.name: k0} if record_codes else {}
    spikes = {enc.name: spike_total(value[enc.name], enc.neuron.n_steps)}
    n_steps = {enc.name: int(enc.neuron.n_steps)}
    planes, membranes, residuals = {}, {}, {}
    remaining = core.consumers(prep)
    u = None
    for layer in graph.neuron_layers():
        u = core.layer_current(prep, layer, plan[layer.name], value.__getitem__)  # max pool: the max of codes
        if not keep_states:         # a source's codes go once its last reader took them (residual branches!)
            core.release_sources(prep, layer, remaining, value)
        if layer.is_readout:
            break
        if keep_states:
            membranes[layer.name] = u.to(torch.int64).contiguous()
        code = emission(u, layer.neuron, in_place=True)          # U is not needed any more
        value[layer.name], n_steps[layer.name] = code, int(layer.neuron.n_steps)
        if record_codes or keep_states:
            codes[layer.name] = code.to(torch.int64).contiguous()
        spikes[layer.name] = spike_total(codes.get(layer.name, code), layer.neuron.n_steps)
        if keep_states:
            residuals[layer.name] = residual(membranes[layer.name], codes[layer.name], layer.neuron)
    readout = u.to(torch.int64).contiguous()
    if keep_states:
        planes = {name: encode_planes(value[name].to(torch.int64), n_steps[name]) for name in n_steps}
        return BitplaneRun(codes, spikes, readout, planes, membranes, residuals)
    return BitplaneRun(codes, spikes, readout)


RUNNERS = {"neurodeploy": run_codes, "planes": run_planes}


def run(prep: core.Prepared, x: np.ndarray, record_codes: bool = True, keep_states: bool = False) -> BitplaneRun:
    """One batch with the engine `prep` was prepared for (`sim.core.prepare(..., engine=)`)."""
    return RUNNERS[prep.engine](prep, x, record_codes, keep_states)


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch of a `bitplane` network: codes = the decoded bit planes of every layer.  With a
    `probe` the planes engine runs (bit-identical; the membrane peaks are its partial sums)."""
    r = run_planes(prep, x, record_codes, probe=probe) if probe is not None else run(prep, x, record_codes)
    n = r.readout_state.shape[0]
    value = (r.readout_state.to(torch.float64) * float(prep.graph.output.neuron.output_scale)).to(torch.float32)
    return core.BatchResult(value.reshape(n, -1), r.readout_state, r.codes, r.spikes)
