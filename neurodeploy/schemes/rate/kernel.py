"""Kernels of the `rate` scheme: every layer updates once per time step, synapses delay by one.

Layers run in lock step like Loihi's cores: at step t a layer receives what its sources
emitted at step t-1.  The input encoder emits during steps 1..T; the network runs
T + depth steps so that the last input spikes reach the readout (depth = synapse hops on
the longest path).

Two engines, bit-identical (tests/test_rate.py):

`steps` (`--engine steps`): that lock-step schedule literally, one step of every layer at a time
in int64 (`run_steps`): the statement of the dynamics.

`neurodeploy` (default, `run_layers`): layer after layer over the whole run.  A layer's input at
step t depends only on its sources' spikes at step t−1, so once a source's spike train is known
for all steps, its synaptic input for every step is one convolution over the (steps·N) batch;
only the neuron update (integrate, saturate, fire, reset) runs step by step, in place.  The
readout is linear: U = bias + Σ_t W·s(t−1) = bias + W·(spike counts), one synapse call.  Steps
in which no source spiked carry no synaptic input and skip the convolution.  The state in float32 (float64) where every integer the layer's arithmetic can
produce is below 2^24 (2^53) in magnitude (`layer_plan`), so that every operation is exact,
whatever the order of the convolution's sums (see `sim.core`); int64 otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import NeurodeployError
from ...sim import core
from .neurons import RateIF

def encoder_step(v: torch.Tensor, codes: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RateEncoder: v <- v + k; spike when v >= T; subtract T."""
    v = v + codes
    s = v >= n_steps
    return v - s.to(v.dtype) * n_steps, s


def if_step(v: torch.Tensor, current: torch.Tensor, neuron: RateIF,
            unclamped: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RateIF: integrate, saturate to the state range, fire on v >= v_th_mant, reset.  `unclamped`,
    if a list, gets v + current before saturation."""
    limit = state_limit(neuron)
    if unclamped is not None:
        unclamped.append(v + current)
    v = torch.clamp(v + current, -limit, limit)
    s = v >= neuron.v_th_mant
    if neuron.reset == "subtract":
        v = v - s.to(v.dtype) * neuron.v_th_mant
    else:
        v = torch.where(s, torch.zeros_like(v), v)
    return v, s


def state_limit(neuron: RateIF) -> int:
    """The saturation bound of v: 2^(state_bits − 1) − 1."""
    return (1 << (neuron.state_bits - 1)) - 1


def _readout_value(graph, u: torch.Tensor) -> torch.Tensor:
    n = u.shape[0]
    return (u.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32).reshape(n, -1)


def _encoder_train(k0: torch.Tensor, t_in: int, steps: int) -> torch.Tensor:
    """The encoder's spikes (steps, N, *shape) as float32 0/1: `encoder_step` for t < t_in, then silence."""
    train = core.empty_steps(steps, tuple(k0.shape), torch.float32, k0.device).zero_()
    v = torch.full_like(k0, t_in // 2)
    for t in range(t_in):
        v, s = encoder_step(v, k0, t_in)
        train[t] = s
    return train


def run_steps(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch of a `rate` network, step by step: codes = spike counts.  `probe` gets each layer's
    membrane peak (before saturation) and the readout's value after every step."""
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    enc = graph.input
    k0 = core.input_codes(enc, xt)
    n = xt.shape[0]
    t_in = enc.neuron.n_steps
    layers = graph.neuron_layers()
    zeros = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.int64, device=prep.device) for l in layers}
    # the readout starts at its bias; IF neurons at v_init and add their bias every step
    v = {l.name: (zeros[l.name] + core.layer_bias(l, zeros[l.name])) if l.is_readout else zeros[l.name] + l.neuron.v_init
         for l in layers}
    step_bias = {l.name: core.layer_bias(l, zeros[l.name]) for l in layers if not l.is_readout}
    v_enc = torch.full_like(k0, t_in // 2)
    prev = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.uint8, device=prep.device) for l in layers}
    prev[enc.name] = torch.zeros_like(k0, dtype=torch.uint8)
    counts = {name: torch.zeros_like(t, dtype=torch.int64) for name, t in prev.items()}
    for t in range(t_in + core.depth(graph)):
        now = {}
        if t < t_in:
            v_enc, s = encoder_step(v_enc, k0, t_in)
            now[enc.name] = s.to(torch.uint8)
        else:
            now[enc.name] = torch.zeros_like(prev[enc.name])
        for layer in layers:
            current = sum(core.branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name])
            if layer.is_readout:
                v[layer.name] = v[layer.name] + current
                if probe is not None:
                    probe.peak(layer.name, v[layer.name])
                    probe.readout(v[layer.name], layer.neuron.output_scale)
                continue
            raw = [] if probe is not None else None
            v[layer.name], s = if_step(v[layer.name], current + step_bias[layer.name], layer.neuron, raw)
            if probe is not None:
                probe.peak(layer.name, raw[0])
            now[layer.name] = s.to(torch.uint8)
        for name, s in now.items():
            counts[name] += s
        prev.update(now)
    u = v[graph.output.name]
    codes = {name: c for name, c in counts.items() if name != graph.output.name} if record_codes else {}
    spikes = {name: int(c.sum()) for name, c in counts.items() if name != graph.output.name}
    return core.BatchResult(_readout_value(graph, u), u, codes, spikes)


# ---------------------------------------------------------------------------- layer after layer

@dataclass
class RateLayer:
    arith: core.LayerArith        # the dtypes of its synapse calls and of its state v (U for the readout)
    saturates: bool               # can v reach the state limit (else the clamp is skipped)?


def layer_plan(prep: core.Prepared, steps: int) -> dict[str, RateLayer]:
    """Per layer, the arithmetic in which `run_layers` is exact (cached on `prep` per run length).

    IF layer: M = max |Σ_b (W_b·s_b) << e_b + bias| over 0/1 spikes bounds every step's input.
    v starts at v_init and each step adds at most M in magnitude (a subtractive reset only moves
    v ≥ θ towards 0, a zero reset to 0), so |v| ≤ min(limit, |v_init| + steps·M) =: V, and every
    integer computed (v + input before the clamp, v, v − θ) is at most V + M + θ in magnitude:
    v in float32 if that is below 2^24, float64 below 2^53, else int64 (`core.layer_arith`; the
    synapse calls on 0/1 spikes run in the type exact for Σ|W|).  The clamp can only act when
    |v_init| + steps·M exceeds the limit.  Readout: U = bias + Σ_b (W_b·counts_b) << e_b with
    counts ≤ steps − 1 (the last step's spikes are never delivered)."""
    key = ("rate.layers", steps)
    if key in prep.cache:
        return prep.cache[key]
    plan = {}
    ones = {l.name: 1 for l in prep.graph.layers}
    for layer in prep.graph.neuron_layers():
        for pb in prep.branches[layer.name]:
            if pb.bitserial_maxpool is not None:
                raise NeurodeployError("max pooling of spike trains is not part of the rate scheme",
                                       f"layer '{layer.name}'", "compile the model again")
        if layer.is_readout:
            counts = {l.name: steps - 1 for l in prep.graph.layers}
            top = float(np.max(core.current_bound(prep, layer, counts)))
            plan[layer.name] = RateLayer(core.layer_arith(prep, layer, counts, top), False)
            continue
        neuron = layer.neuron
        m = float(np.max(core.current_bound(prep, layer, ones)))
        free = abs(int(neuron.v_init)) + steps * m
        v = min(float(state_limit(neuron)), free)
        plan[layer.name] = RateLayer(core.layer_arith(prep, layer, ones, v + m + int(neuron.v_th_mant)),
                                     free > state_limit(neuron))
    prep.cache[key] = plan
    return plan


def _if_train(prep, layer, rl: RateLayer, trains: dict, busy: dict, n: int, steps: int) -> torch.Tensor:
    """Run an IF layer over all steps: its spike train (steps, N, *shape) float32; `if_step` in place
    (step t's input: what the sources sent at t − 1, `core.step_inputs`)."""
    neuron, la = layer.neuron, rl.arith
    shape = (n,) + tuple(layer.shape)
    bias = la.bias.reshape((1, -1) + (1,) * (len(layer.shape) - 1))
    v = core.nhwc(torch.full(shape, neuron.v_init, dtype=la.dtype, device=prep.device))
    train = core.empty_steps(steps, shape, torch.float32, prep.device)
    # the spikes in v's dtype (mixed-dtype in-place ops take a slow, unvectorised path); float32: the train itself
    s = None if la.dtype == torch.float32 else torch.empty_like(v)
    fired = torch.empty_like(v, dtype=torch.bool)
    limit, theta = state_limit(neuron), neuron.v_th_mant
    for t, cur in enumerate(core.step_inputs(prep, layer, la, trains, busy, steps, lag=1)):
        v.add_(bias if cur is None else cur)
        if rl.saturates:
            v.clamp_(-limit, limit)
        if neuron.reset == "subtract":
            out = train[t] if s is None else s
            torch.ge(v, theta, out=out)
            v.sub_(out, alpha=theta)
            if s is not None:
                train[t].copy_(s)
        else:
            torch.ge(v, theta, out=fired)
            v.masked_fill_(fired, 0)
            train[t].copy_(fired)
    return train


def _run_layers(prep: core.Prepared, k0: torch.Tensor, plan: dict, steps: int):
    """(readout U, spike counts per layer) of one group of samples, layer after layer."""
    graph = prep.graph
    enc = graph.input
    n = k0.shape[0]
    remaining = core.consumers(prep)
    trains, busy, counts = {}, {}, {}

    def keep(name, train):
        trains[name], busy[name] = train, core.busy_steps(train)
        counts[name] = core.sum_steps(train).to(torch.int64)   # exact: at most `steps` spikes per neuron

    keep(enc.name, _encoder_train(core.nhwc(k0), enc.neuron.n_steps, steps))
    for layer in graph.neuron_layers():
        rl = plan[layer.name]
        if layer.is_readout:
            # delivered spikes: steps 0 .. steps−2 (the last step's spikes arrive after the run)
            delivered = {pb.source: counts[pb.source] - trains[pb.source][steps - 1].to(torch.int64)
                         for pb in prep.branches[layer.name]}
            return core.layer_current(prep, layer, rl.arith, delivered.__getitem__).to(torch.int64), counts
        train = _if_train(prep, layer, rl, trains, busy, n, steps)
        core.release_sources(prep, layer, remaining, trains, busy)
        keep(layer.name, train)
    raise NeurodeployError("a rate network ends with its readout", f"layer '{graph.output.name}'")


def run_layers(prep: core.Prepared, x: np.ndarray, record_codes: bool = True) -> core.BatchResult:
    """One batch of a `rate` network layer after layer (module docstring), a few samples at a time
    (`core.sample_groups`); the same integers as `run_steps`."""
    graph = prep.graph
    enc = graph.input
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k0 = core.input_codes(enc, xt)
    steps = enc.neuron.n_steps + core.depth(graph)
    plan = layer_plan(prep, steps)
    us, counts = [], {}
    for group in core.sample_groups(graph, k0.shape[0]):
        u, c = _run_layers(prep, k0[group], plan, steps)
        us.append(u)
        for name, v in c.items():
            counts.setdefault(name, []).append(v)
    u = torch.cat(us).contiguous()
    counts = {name: torch.cat(v).contiguous() for name, v in counts.items()}
    codes = counts if record_codes else {}
    spikes = {name: int(c.sum()) for name, c in counts.items()}
    return core.BatchResult(_readout_value(graph, u), u, codes, spikes)


RUNNERS = {"neurodeploy": run_layers, "steps": run_steps}


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch of a `rate` network with the engine `prep` was prepared for: codes = spike counts.
    With a `probe` the step engine runs (bit-identical; it holds every step's state to read)."""
    if probe is not None:
        return run_steps(prep, x, record_codes, probe)
    return RUNNERS[prep.engine](prep, x, record_codes)
