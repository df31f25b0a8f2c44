"""Kernels and run loop of the `sws` scheme (stepwise weighted spikes, TSA neurons; digest §3).

Spike trains are digit planes: a tensor (N, Tc, *shape) of int8 ternary digits a ∈ {−1,0,1},
plane τ = digit τ (MSB first, worth β^(Tc−τ)).

Schedule (lock step, as the chip runs it): the encoder emits its digits at absolute steps
1..Tc.  A hidden TSA layer whose inputs start at offset o (its digit τ arrives at step o+τ)
emits digit j at step o + Ts + j; so its own offset is o + Ts.  A layer with several
sources (residual add) starts at the largest source offset and the earlier sources are
delayed by the difference (Ts per skipped TSA layer, digest §3.7).  The readout reads its
weighted potential V at step o + Tc (no spiking, no silent period), so the latency is
T_inf = Tc + Ts·L (L = hidden TSA layers on the longest path, Eq. 6) and a new frame can
enter every Tc + Ts steps.  Because every neuron only ever sees its inputs' digits in order,
simulating layer after layer over the whole digit planes is the same computation as the
lock-step schedule; `schedule()` gives the offsets and delays.

Engines (bit-identical, tests/test_sws.py): `steps` (`run_digits_steps`) runs `tsa_run` step by step
in int64, the statement of the neuron; the default (`run_digits_layers`) runs the same updates in
place in the type `layer_plan` proves exact, its inputs for chunks of steps at a time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import NeurodeployError
from ...ir import neurons as nrn
from . import neurons as tsa_ir
from ...ir.spiking import SpikingGraph
from ...sim import core


# ---------------------------------------------------------------------------- encoder

def encode_digits(codes: torch.Tensor, beta: int, coding_steps: int) -> torch.Tensor:
    """TSAEncoder: integer codes (N, *shape) -> digits (N, Tc, *shape), exact host expansion.

    β = 2: binary digits of P (P in 0 .. 2^Tc − 1).  β = 3: balanced ternary digits.
    """
    beta, tc = int(beta), int(coding_steps)
    codes = codes.to(torch.int64)
    if beta == 2:
        shifts = torch.arange(tc - 1, -1, -1, device=codes.device).reshape((1, tc) + (1,) * (codes.ndim - 1))
        return ((codes.unsqueeze(1) >> shifts) & 1).to(torch.int8)
    if beta == 3:
        digits = []
        r = codes.clone()
        for _ in range(tc):                       # least significant first
            d = torch.remainder(r, 3)
            d = torch.where(d == 2, torch.full_like(d, -1), d)
            digits.append(d)
            r = torch.div(r - d, 3, rounding_mode="floor")
        return torch.stack(digits[::-1], dim=1).to(torch.int8)
    raise NeurodeployError(f"beta {beta} is not supported", "sws encoder", "use beta 2 or 3")


def decode_digits(digits: torch.Tensor, beta: int) -> torch.Tensor:
    """Digits (N, Tc, ...) -> Σ a_τ β^(Tc−τ) as int64."""
    tc = digits.shape[1]
    w = torch.tensor([int(beta) ** (tc - 1 - t) for t in range(tc)], dtype=torch.int64, device=digits.device)
    return (digits.to(torch.int64) * w.reshape((1, tc) + (1,) * (digits.ndim - 2))).sum(dim=1)


# ---------------------------------------------------------------------------- TSA neuron

# The state registers (u of a TSA neuron, V of the readout) are `state_bits` wide and wrap in
# two's complement on overflow, as the Lava process models do (`schemes.sws.lava`, the
# same `processes.wrap_signed`): with a calibrated state bound (`schemes.sws`) an input unlike
# the calibration set can overflow, and simulator and Lava must then still agree bit for bit.
# Widths of 63 bits or more (e.g. --target cpu's 48 are below; int64 itself) are not wrapped.

def state_bits_of(graph: SpikingGraph) -> int | None:
    """Signed width of the neuron state from the graph's target (None: unknown/unbounded)."""
    spec = graph.meta.get("target_spec") if isinstance(graph.meta, dict) else None
    try:
        return int(spec["neuron"]["state_bits"])
    except (TypeError, KeyError, ValueError):
        return None


def wrap_state(x: torch.Tensor, bits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x wrapped to a signed `bits`-bit register, bool mask of the elements that overflowed)."""
    if bits is None or bits >= 63:
        return x, torch.zeros_like(x, dtype=torch.bool)
    half = 1 << (bits - 1)
    wrapped = torch.remainder(x + half, 2 * half) - half
    return wrapped, wrapped != x


def tsa_run(z: torch.Tensor, neuron: tsa_ir.TSA, peak: list | None = None, state_bits: int | None = None,
            overflow: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a TSA layer over its local steps 1..Tc+Ts.

    z: integer currents (N, Tc, *shape) for the input steps (synaptic input + per-step bias).
    Returns (digits (N, Tc, *shape) int8, final membrane u).  Exact integer arithmetic, see
    `schemes.sws.neurons.TSA`; m and u wrap at `state_bits` (signed) like the Lava process model
    (`lava.tsa_update`), None = no wrap.  `peak`, if given, gets the largest |m| seen
    (before wrapping) appended (state-range checks); `overflow` gets a bool tensor (N, *shape):
    which neurons' state wrapped at least once in the frame.
    """
    beta, tc, ts = int(neuron.beta), int(neuron.coding_steps), int(neuron.silent_steps)
    d = int(neuron.theta_mant)
    z = z.to(torch.int64)
    sub = d * beta ** ts
    h2 = sub * (2 if neuron.full_threshold else 1)
    u = torch.zeros_like(z[:, 0])
    emitted = torch.zeros_like(u)
    wrapped = torch.zeros_like(u, dtype=torch.bool)
    wraps = state_bits is not None and state_bits < 63          # else wrap_state is the identity
    out = []
    top = 0
    for t in range(1, tc + ts + 1):
        m = beta * u + (z[:, t - 1] if t <= tc else 0)
        if peak is not None and m.numel():
            top = max(top, int(m.max()), -int(m.min()))         # max |m| without an |m| tensor
        if wraps:
            m, ov = wrap_state(m, state_bits)
            wrapped |= ov
        if t <= ts:
            u = m
            continue
        w = beta ** (tc - (t - ts))
        pos = (2 * m >= h2) & (emitted + w <= neuron.code_max)
        neg = 2 * m < -h2
        if neuron.relu:
            neg = neg & (emitted - w >= 0)
        a = pos.to(torch.int64) - neg.to(torch.int64)
        u = m - a * sub
        if wraps:
            u, ov = wrap_state(u, state_bits)
            wrapped |= ov
        emitted = emitted + a * w
        out.append(a.to(torch.int8))
    if peak is not None:
        peak.append(top)
    if overflow is not None:
        overflow.append(wrapped)
    return torch.stack(out, dim=1), u


def tsa_reference_neuron(z: list, beta: int = 2, theta: int = 1, silent_steps: int = 0,
                         relu: bool = True, full_threshold: bool = False) -> tuple[list, int]:
    """One TSA neuron on a list of integer currents (hand checks): (digits, decoded value)."""
    tc = len(z)
    neuron = tsa_ir.TSA(theta_mant=theta, code_max=tsa_ir.digit_weight_sum(beta, tc), beta=beta,
                        coding_steps=tc, silent_steps=silent_steps, relu=relu, full_threshold=full_threshold)
    digits, _ = tsa_run(torch.tensor(z, dtype=torch.int64).reshape(1, tc), neuron)
    return [int(v) for v in digits[0]], int(decode_digits(digits, beta)[0])


# ---------------------------------------------------------------------------- schedule

def schedule(graph: SpikingGraph) -> dict:
    """Absolute-step offsets of every layer, per-branch delays and the latency (Eq. 6)."""
    enc = graph.input.neuron
    tc = int(enc.coding_steps)
    offset = {graph.input.name: 0}
    delays = {}
    hidden_depth = {graph.input.name: 0}
    latency = tc
    for layer in graph.neuron_layers():
        start = max(offset[b.source] for b in layer.branches)
        delays[layer.name] = {b.source: start - offset[b.source] for b in layer.branches}
        depth = max(hidden_depth[b.source] for b in layer.branches)
        if layer.is_readout:
            latency = start + tc
            offset[layer.name] = start
            hidden_depth[layer.name] = depth
        else:
            offset[layer.name] = start + int(layer.neuron.silent_steps)
            hidden_depth[layer.name] = depth + 1
    ts_max = max([int(l.neuron.silent_steps) for l in graph.neuron_layers() if not l.is_readout] or [0])
    return {"offsets": offset, "branch_delays": delays, "latency_steps": int(latency),
            "throughput_steps": tc + ts_max, "tsa_layers_on_longest_path": int(hidden_depth[graph.output.name])}


# ---------------------------------------------------------------------------- run loop

def _currents(prep, layer, digits: dict, n: int, tc: int) -> torch.Tensor:
    """Σ_branches (W_mant · a_src(τ)) << weight_exp for every input step τ: (N, Tc, *shape)."""
    total = None
    for pb in prep.branches[layer.name]:
        if pb.bitserial_maxpool is not None:
            raise NeurodeployError("max pooling of ternary digit trains is not supported",
                                   f"layer '{layer.name}'", "use average pooling")
        p = digits[pb.source]
        flat = p.reshape((n * tc,) + tuple(p.shape[2:]))
        c = core.branch_current(pb, flat)
        c = c.reshape((n, tc) + tuple(c.shape[1:]))
        total = c if total is None else total + c
    return total


def _bias_steps(layer, like: torch.Tensor) -> torch.Tensor:
    b = torch.as_tensor(layer.bias, dtype=torch.int64, device=like.device)
    return b.reshape((1, 1, -1) + (1,) * (like.ndim - 3))


def _readout(cur: torch.Tensor, bias: torch.Tensor, beta: int, state_bits: int | None, peak: list | None = None):
    """The readout's weighted potential V (N, *shape) and its overflow mask: V ← β·V + a_in for
    the Tc input steps, + bias at the last one, wrapped each step like `lava.readout_update`.
    `peak`, if a list, gets the largest |V| before wrapping."""
    tc = cur.shape[1]
    v = torch.zeros_like(cur[:, 0])
    wrapped = torch.zeros_like(v, dtype=torch.bool)
    top = 0
    for t in range(tc):                       # the readout amplifies, never spikes
        v = beta * v + cur[:, t] + (bias if t == tc - 1 else 0)
        if peak is not None and v.numel():
            top = max(top, int(v.abs().max()))
        v, ov = wrap_state(v, state_bits)
        wrapped |= ov
    if peak is not None:
        peak.append(top)
    return v, wrapped


def run_digits_steps(prep, x: np.ndarray, record_codes: bool = True, keep_digits: bool = False,
                     overflows: dict | None = None, probe: core.Probe | None = None):
    """The `steps` engine: layer after layer over whole digit planes, `tsa_run` step by step in
    int64.  overflows: if given, layer -> number of neurons x samples whose state wrapped (at the
    target's state width) is added to it; `probe` gets each layer's peak |state| (the readout holds
    its value only after the last step)."""
    graph = prep.graph
    bits = state_bits_of(graph)
    enc = graph.input
    beta, tc = int(enc.neuron.beta), int(enc.neuron.coding_steps)
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    n = xt.shape[0]
    k0 = core.input_codes(enc, xt)
    digits = {enc.name: encode_digits(k0, beta, tc)}
    codes = {enc.name: k0} if record_codes else {}
    u = None
    for layer in graph.neuron_layers():
        cur = _currents(prep, layer, digits, n, tc)
        if isinstance(layer.neuron, nrn.Readout):
            top = [] if probe is not None else None
            u, wrapped = _readout(cur, _bias_steps(layer, cur)[:, 0], beta, bits, top)
            if probe is not None:
                probe.state_peak[layer.name] = max(probe.state_peak.get(layer.name, 0), top[0])
            if overflows is not None:
                overflows[layer.name] = overflows.get(layer.name, 0) + int(wrapped.sum())
            break
        if not isinstance(layer.neuron, tsa_ir.TSA):
            raise NeurodeployError(f"the sws simulator has no kernel for {type(layer.neuron).__name__}",
                                   f"layer '{layer.name}'")
        if int(layer.neuron.beta) != beta or int(layer.neuron.coding_steps) != tc:
            raise NeurodeployError("all sws layers must share beta and coding steps", f"layer '{layer.name}'")
        ov, top = [], ([] if probe is not None else None)
        out, _ = tsa_run(cur + _bias_steps(layer, cur), layer.neuron, peak=top, state_bits=bits, overflow=ov)
        if probe is not None:
            probe.state_peak[layer.name] = max(probe.state_peak.get(layer.name, 0), top[0])
        if overflows is not None:
            overflows[layer.name] = overflows.get(layer.name, 0) + int(ov[0].sum())
        digits[layer.name] = out
        if record_codes:
            codes[layer.name] = decode_digits(out, beta)
    spikes = {name: int(torch.count_nonzero(dg)) for name, dg in digits.items()}
    return u, codes, spikes, (digits if keep_digits else None)


# ---------------------------------------------------------------------------- the default engine

@dataclass
class SwsLayer:
    arith: core.LayerArith      # the synapse calls' types and the state's (u, m, emitted; V of the readout)
    wraps: bool                 # can the state register wrap (the static bound exceeds it)?


def layer_plan(prep) -> dict[str, SwsLayer]:
    """Per layer, the arithmetic in which `run_digits_layers` is exact (cached on `prep`).

    TSA layer: every integer of its run is at most B + sub + M in magnitude, B the worst-case |m|
    of `compile.tsa_state_bound` (β^Ts·S·(max step input + D)), sub = β^Ts·D the reset, M the
    largest step input Σ|W|·2^e + |b| (`core.current_bound` on ternary digits); if B + sub stays
    inside the signed `state_bits` register nothing ever wraps and the state runs in float32 /
    float64 where that bound is below 2^24 / 2^53 (int64 beyond).  Otherwise the register wraps
    as `wrap_state` does and its values before each wrap reach β·2^(bits−1) + M + sub.
    Readout: V = Σ_t β^(Tc−1−t)·I(t) + bias = Σ_b (W_b·code_b) << e_b + bias with the sources'
    decoded codes |code| ≤ S; without wrapping it is one synapse call on the codes."""
    if "sws.layers" in prep.cache:
        return prep.cache["sws.layers"]
    from .compile import tsa_state_bound
    graph = prep.graph
    bits = state_bits_of(graph)
    half = None if bits is None or bits >= 63 else float(1 << (bits - 1))
    shapes = {l.name: tuple(l.shape) for l in graph.layers}
    enc = graph.input.neuron
    beta, tc = int(enc.beta), int(enc.coding_steps)
    s_max = tsa_ir.digit_weight_sum(beta, tc)
    ones = {l.name: 1 for l in graph.layers}
    plan = {}
    for layer in graph.neuron_layers():
        if layer.is_readout:
            codes = {l.name: s_max for l in graph.layers}
            top = float(np.max(core.current_bound(prep, layer, codes)))
            wraps = half is not None and top >= half
            if wraps:                       # V wraps after every step: β·2^(bits−1) + S·M + |bias| before
                top = beta * half + top
            plan[layer.name] = SwsLayer(core.layer_arith(prep, layer, ones if wraps else codes, top), wraps)
            continue
        neuron = layer.neuron
        m = float(np.max(core.current_bound(prep, layer, ones)))
        sub = int(neuron.theta_mant) * beta ** int(neuron.silent_steps)
        top = tsa_state_bound(layer.branches, layer.bias, neuron, shapes) + sub + m
        wraps = half is not None and top >= half
        if wraps:
            top = beta * half + m + sub
        plan[layer.name] = SwsLayer(core.layer_arith(prep, layer, ones, top), wraps)
    prep.cache["sws.layers"] = plan
    return plan


def _wrap_(x: torch.Tensor, half: int, wrapped: torch.Tensor) -> None:
    """`wrap_state` in place (exact in float64: fmod-based remainder of integers below 2^53); marks
    the elements that wrapped in `wrapped`."""
    wrapped |= (x < -half) | (x >= half)
    x.add_(half).remainder_(2 * half).sub_(half)


def _tsa_layer(prep, layer, sl: SwsLayer, trains: dict, busy: dict, bits: int | None):
    """`tsa_run` of one layer in place, its input chunk by chunk (`core.step_inputs`): (digits (Tc, N,
    *shape) float32, decoded codes in the state's dtype, mask of the neurons whose state wrapped or None)."""
    neuron, la = layer.neuron, sl.arith
    beta, tc, ts = int(neuron.beta), int(neuron.coding_steps), int(neuron.silent_steps)
    sub = int(neuron.theta_mant) * beta ** ts
    h2 = sub * (2 if neuron.full_threshold else 1)
    pos_th, neg_th = (h2 + 1) // 2, -(h2 // 2)          # integers m: 2m ≥ h2 ⇔ m ≥ ⌈h2/2⌉; 2m < −h2 ⇔ m < −⌊h2/2⌋
    n = trains[prep.branches[layer.name][0].source].shape[1]
    shape = (n,) + tuple(layer.shape)
    dev = prep.device
    bias = la.bias.reshape((1, -1) + (1,) * (len(layer.shape) - 1))
    u = core.nhwc(torch.zeros(shape, dtype=la.dtype, device=dev))
    emitted = torch.zeros_like(u)
    digits = core.empty_steps(tc, shape, torch.float32, dev)
    a_buf = None if la.dtype == torch.float32 else torch.empty_like(u)
    neg, ok = torch.empty_like(u), torch.empty_like(u)
    half = 1 << (bits - 1) if sl.wraps else None
    wrapped = torch.zeros_like(u, dtype=torch.bool) if sl.wraps else None
    clip_top = int(neuron.code_max) < tsa_ir.digit_weight_sum(beta, tc)   # else E + w ≤ code_max always holds
    inputs = core.step_inputs(prep, layer, la, trains, busy, tc)
    for t in range(1, tc + ts + 1):
        if t <= tc:                                        # m = β·u + z(t)
            z = next(inputs)
            if z is None:
                u.mul_(beta).add_(bias)
            else:
                torch.add(z, u, alpha=beta, out=u)
        else:
            u.mul_(beta)
        if half is not None:
            _wrap_(u, half, wrapped)
        if t <= ts:
            continue
        j = t - ts
        w = beta ** (tc - j)
        a = digits[j - 1] if a_buf is None else a_buf
        torch.ge(u, pos_th, out=a)
        if clip_top:
            a.mul_(torch.le(emitted, int(neuron.code_max) - w, out=ok))
        torch.lt(u, neg_th, out=neg)
        if neuron.relu:
            neg.mul_(torch.ge(emitted, w, out=ok))
        a.sub_(neg)
        u.sub_(a, alpha=sub)
        if half is not None:
            _wrap_(u, half, wrapped)
        emitted.add_(a, alpha=w)
        if a_buf is not None:
            digits[j - 1].copy_(a)
    return digits, emitted, wrapped


def _readout_layers(prep, layer, sl: SwsLayer, trains: dict, busy: dict, codes: dict, bits: int | None):
    """The readout's V (int64) and its wrapped mask (None: it cannot wrap)."""
    if not sl.wraps:
        return core.layer_current(prep, layer, sl.arith, codes.__getitem__).to(torch.int64), None
    # V ← β·V + I(t) (+ bias at the last step), wrapped after every step, as `_readout`
    la = dataclasses.replace(sl.arith, bias=None)
    tc = int(prep.graph.input.neuron.coding_steps)
    beta = int(prep.graph.input.neuron.beta)
    n = trains[prep.branches[layer.name][0].source].shape[1]
    v = core.nhwc(torch.zeros((n,) + tuple(layer.shape), dtype=la.dtype, device=prep.device))
    wrapped = torch.zeros_like(v, dtype=torch.bool)
    for t, z in enumerate(core.step_inputs(prep, layer, la, trains, busy, tc)):
        v.mul_(beta)
        if z is not None:
            v.add_(z)
        if t == tc - 1:
            v.add_(sl.arith.bias.reshape((1, -1) + (1,) * (len(layer.shape) - 1)))
        _wrap_(v, 1 << (bits - 1), wrapped)
    return v.to(torch.int64), wrapped


def run_digits_layers(prep, x: np.ndarray, record_codes: bool = True, keep_digits: bool = False,
                      overflows: dict | None = None):
    """The default engine: `run_digits_steps`' integers, each TSA layer in place in its exact type
    (`layer_plan`) with its input computed for chunks of steps in one synapse call over (steps·N)
    digit planes, the readout one synapse call on its sources' decoded codes where it cannot wrap;
    a few samples at a time (`core.sample_groups`)."""
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k0 = core.input_codes(prep.graph.input, xt)
    parts = [_digits_layers(prep, k0[g], overflows, keep_digits) for g in core.sample_groups(prep.graph, k0.shape[0])]
    u = torch.cat([p[0] for p in parts]).contiguous()
    codes = ({name: torch.cat([p[1][name] for p in parts]).to(torch.int64).contiguous() for name in parts[0][1]}
             if record_codes else {})
    spikes = {name: sum(p[2][name] for p in parts) for name in parts[0][2]}
    digits = ({name: torch.cat([p[3][name] for p in parts], dim=1).transpose(0, 1).to(torch.int8).contiguous()
               for name in parts[0][3]} if keep_digits else None)
    return u, codes, spikes, digits


def _digits_layers(prep, k0: torch.Tensor, overflows: dict | None, keep: bool):
    """One group of samples: (readout V, decoded codes, nonzero digits, digit trains (Tc, N, ...) if keep)."""
    graph = prep.graph
    bits = state_bits_of(graph)
    plan = layer_plan(prep)
    enc = graph.input
    beta, tc = int(enc.neuron.beta), int(enc.neuron.coding_steps)
    first = encode_digits(k0, beta, tc).transpose(0, 1)               # (Tc, N, ...) int8, time first
    trains = {enc.name: core.empty_steps(tc, tuple(k0.shape), torch.float32, prep.device).copy_(first)}
    busy = {enc.name: core.busy_steps(trains[enc.name])}
    spikes = {enc.name: core.count_unit_spikes(trains[enc.name])}
    value = {enc.name: core.nhwc(k0)}                                 # decoded codes
    remaining, kept = core.consumers(prep), {}
    u = None
    for layer in graph.neuron_layers():
        if isinstance(layer.neuron, nrn.Readout):
            u, wrapped = _readout_layers(prep, layer, plan[layer.name], trains, busy, value, bits)
        else:
            if not isinstance(layer.neuron, tsa_ir.TSA):
                raise NeurodeployError(f"the sws simulator has no kernel for {type(layer.neuron).__name__}",
                                       f"layer '{layer.name}'")
            if int(layer.neuron.beta) != beta or int(layer.neuron.coding_steps) != tc:
                raise NeurodeployError("all sws layers must share beta and coding steps", f"layer '{layer.name}'")
            for pb in prep.branches[layer.name]:
                if pb.bitserial_maxpool is not None:
                    raise NeurodeployError("max pooling of ternary digit trains is not supported",
                                           f"layer '{layer.name}'", "use average pooling")
            train, value[layer.name], wrapped = _tsa_layer(prep, layer, plan[layer.name], trains, busy, bits)
            if keep:
                kept.update(trains)
            core.release_sources(prep, layer, remaining, trains, busy)
            trains[layer.name], busy[layer.name] = train, core.busy_steps(train)
            spikes[layer.name] = core.count_unit_spikes(train)
        if overflows is not None:
            overflows[layer.name] = overflows.get(layer.name, 0) + (0 if wrapped is None else int(wrapped.sum()))
        if u is not None:
            break
    return u, value, spikes, {**kept, **trains} if keep else None


ENGINES = {"neurodeploy": run_digits_layers, "steps": run_digits_steps}


def run_digits(prep, x: np.ndarray, record_codes: bool = True, keep_digits: bool = False,
               overflows: dict | None = None, probe: core.Probe | None = None):
    """(readout V int64, codes per layer, nonzero digits per layer, digit planes (N, Tc, ...) int8 per
    layer if keep_digits) of one batch, with the engine `prep` was prepared for; overflows: if given,
    layer -> neurons x samples whose state wrapped (at the target's state width) is added to it.
    With a `probe` the steps engine runs (bit-identical; it holds every step's state to read)."""
    if probe is not None:
        return run_digits_steps(prep, x, record_codes, keep_digits, overflows, probe)
    return ENGINES[prep.engine](prep, x, record_codes, keep_digits, overflows)


def run_batch(prep, x: np.ndarray, record_codes: bool = True, overflows: dict | None = None,
              probe: core.Probe | None = None):
    """The `sws` kernel (sim.engine.run_batch): codes = decoded value of each layer's digits,
    spikes = number of nonzero (±1) digits; `overflows` (optional dict) accumulates the state
    overflows per layer (see `_run`); `probe` gets the state peaks."""
    graph = prep.graph
    counts = {l.name: 0 for l in graph.neuron_layers()}
    u, codes, spikes, _ = run_digits(prep, x, record_codes, overflows=counts, probe=probe)
    if overflows is not None:
        for name, c in counts.items():
            overflows[name] = overflows.get(name, 0) + c
    n = u.shape[0]
    value = (u.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
    return core.BatchResult(value.reshape(n, -1), u, codes, spikes, counts)


def state_overflows(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu") -> dict:
    """Layer -> number of (sample, neuron) pairs whose state register wrapped on x.

    Always 0 for a network compiled with the static state bound; with the calibrated bound a
    nonzero count means x drives the membranes beyond the calibration set's range times the
    margin, and those neurons' codes (and everything downstream) may be wrong: the SNN still
    equals Lava / the chip bit for bit, but no longer the quantised ANN.
    """
    prep = core.prepare(graph, device)
    counts = {l.name: 0 for l in graph.neuron_layers()}
    for _, xb in core.iter_batches(x, batch_size):
        run_digits(prep, xb, record_codes=False, overflows=counts)
    return counts


# ---------------------------------------------------------------------------- reference

def reference(graph: SpikingGraph, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """Integer quantised ANN of an `sws` network: sim/reference.py, whose layers defer to the
    TSA neuron's `reference_code` (round half up: clip(floor((2U + D) / 2D), 0, Q)) and whose
    U includes S x the per-step bias through `total_bias`."""
    from ...sim.reference import reference as integer_reference
    return integer_reference(graph, x)
