"""Kernels of the `sdnn` scheme: sigma-delta neurons with graded spikes, bit-exact with Lava.

Lock-step like Loihi's cores: at step t every layer receives W . payload_src(t-1) (each
synapse delays by one step) and updates as `schemes.sdnn.neurons.SigmaDelta` documents.  The input
encoder sends its codes once, at step 0.  A feed-forward network has settled after
depth + 1 steps (depth = synapse hops on the longest path): nothing changes afterwards.
`codes` per layer = the sum of its payloads (its settled activation), the input's codes
for the input; the readout's `output_state` = its sigma plus the host-added bias.

Two engines, bit-identical (tests/test_sdnn_engines.py):

`steps` (`--engine steps`, `run_sdnn`): that lock-step schedule literally, one step of every layer at a
time in int64; it also records traces, final states and probes.

`neurodeploy` (default, `run_layers`): layer after layer over all the steps.  A layer's input at step t
is W·payload_src(t−1), linear in its sources' payloads, so once a source's payloads are known for every
step, the layer's input for a chunk of steps is one synapse call over the (steps·N) batch
(`core.step_inputs`, float32 calls where exact, Lava's 24-bit wrap elementwise afterwards); only the
sigma-delta update runs step by step, in place.  A step in which no source sent anything changes
nothing after step 0 (sigma keeps its value, so act does, and delta = residue, below the threshold
since the step that left it), and is skipped.
"""
from __future__ import annotations

import numpy as np
import torch

from . import neurons as sd
from ...errors import NeurodeployError
from ...ir.spiking import SpikingGraph
from ...sim import core


def settle_steps(graph: SpikingGraph) -> int:
    """Steps after which every layer has settled (input sent at step 0)."""
    return core.depth(graph) + 1


def sigma_delta_step(state: dict, a_in: torch.Tensor, bias: torch.Tensor, neuron: sd.SigmaDelta) -> torch.Tensor:
    """One PySigmaDeltaModelFixed update; returns the payload (s >> state_exp)."""
    k = neuron.spike_exp + neuron.state_exp
    state["sigma"] = state["sigma"] + a_in
    act = torch.clamp(state["sigma"] + (bias << k), min=0)
    delta = act - state["act"] + state["residue"]
    s = torch.where(delta.abs() >= (int(neuron.vth) << k), delta, torch.zeros_like(delta))
    state["residue"] = delta - s
    state["act"] = act
    return s >> neuron.state_exp


wrap24 = core.wrap24
branch_current = core.lava_branch_current     # a convolution's output wraps at 24 bits, as in Lava


def _input_codes(enc, xt: torch.Tensor) -> torch.Tensor:
    """The encoder's payload at step 0: its codes, those below its threshold vth never sent (Lava's Delta)."""
    k0 = core.input_codes(enc, xt)
    if enc.neuron.vth:
        k0 = torch.where(k0.abs() >= enc.neuron.vth, k0, torch.zeros_like(k0))
    return k0


def run_sdnn(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
             n_steps: int | None = None, trace: list | None = None,
             states: dict | None = None, probe: core.Probe | None = None) -> core.BatchResult:
    """Run one batch for `n_steps` (default: until settled).  `trace`, if a list, receives
    per step a dict layer -> payload tensor; `states`, if a dict, receives per layer the final
    {"sigma", "act", "residue"} tensors (for comparisons with Lava); `probe` gets each layer's
    peak |sigma| and |act| (24-bit registers on the chip) and the readout's value after every step."""
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    enc = graph.input
    k0 = _input_codes(enc, xt)
    n = xt.shape[0]
    layers = graph.neuron_layers()
    dev = prep.device

    def zeros(shape):
        return torch.zeros((n,) + tuple(shape), dtype=torch.int64, device=dev)

    state = {l.name: {"sigma": zeros(l.shape), "act": zeros(l.shape), "residue": zeros(l.shape)}
             for l in layers}
    bias = {l.name: core.layer_bias(l, zeros(l.shape)) for l in layers}
    prev = {l.name: zeros(l.shape) for l in layers}
    prev[enc.name] = torch.zeros_like(k0)
    codes = {name: torch.zeros_like(t) for name, t in prev.items()}
    spikes = {name: 0 for name in prev}
    steps = settle_steps(graph) if n_steps is None else n_steps
    for t in range(steps):
        now = {enc.name: k0 if t == 0 else torch.zeros_like(k0)}
        for layer in layers:
            a_in = sum(branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name])
            if layer.is_readout:
                state[layer.name]["sigma"] = state[layer.name]["sigma"] + a_in
                if probe is not None:
                    probe.peak(layer.name, state[layer.name]["sigma"])
                    probe.readout(state[layer.name]["sigma"] + bias[layer.name], layer.neuron.output_scale)
                continue
            now[layer.name] = sigma_delta_step(state[layer.name], a_in, bias[layer.name], layer.neuron)
            if probe is not None:
                probe.peak(layer.name, state[layer.name]["sigma"], state[layer.name]["act"])
        for name, p in now.items():
            codes[name] += p
            spikes[name] += int(torch.count_nonzero(p))
        if trace is not None:
            trace.append({k: v.clone() for k, v in now.items()})
        prev.update(now)
    if states is not None:
        states.update(state)
    out = graph.output
    u = state[out.name]["sigma"] + bias[out.name]
    value = (u.to(torch.float64) * float(out.neuron.output_scale)).to(torch.float32)
    codes.pop(out.name, None)
    spikes.pop(out.name, None)
    return core.BatchResult(value.reshape(n, -1), u, codes if record_codes else {}, spikes)



# ---------------------------------------------------------------------------- layer after layer

def layer_plan(prep: core.Prepared) -> dict[str, core.LavaStepLayer]:
    """Per layer, the exact arithmetic of its input a_in (cached on `prep`): every state in int64, each
    branch's synapse call in the float type exact for Σ|W|·max_payload (float32 on channel groups or
    limbs where float64 would be needed, `core.layer_arith`)."""
    if "sdnn.layers" in prep.cache:
        return prep.cache["sdnn.layers"]
    p_max = {l.name: float(l.neuron.max_payload) for l in prep.graph.layers}
    plan = {}
    for layer in prep.graph.neuron_layers():       # states in int64: the bound of float64's exact range
        plan[layer.name] = core.lava_step_layer(prep, layer, p_max, float(core.FLOAT64_EXACT))
    prep.cache["sdnn.layers"] = plan
    return plan


def _sigma_delta_train(prep, layer, sl: core.LavaStepLayer, trains: dict, busy: dict, n: int, steps: int):
    """`sigma_delta_step` of one layer over all steps, in place: (payloads (steps, N, *shape) float32,
    codes int64, spikes).  Payloads are at most max_payload in magnitude: exact in float32."""
    neuron = layer.neuron
    k = neuron.spike_exp + neuron.state_exp
    shape = (n,) + tuple(layer.shape)
    b = core.layer_bias(layer, torch.zeros(shape, dtype=torch.int64, device=prep.device)) << k
    threshold = int(neuron.vth) << k
    sigma, act, residue = (core.nhwc(torch.zeros(shape, dtype=torch.int64, device=prep.device)) for _ in range(3))
    act_new, delta = torch.empty_like(sigma), torch.empty_like(sigma)
    codes = torch.zeros_like(sigma)
    train = core.empty_steps(steps, shape, torch.float32, prep.device)
    spikes = 0
    for t, cur in enumerate(core.step_inputs(prep, layer, sl.arith, trains, busy, steps, lag=1, post=sl.post)):
        if cur is None and t > 0:          # nothing arrived: nothing changes (module docstring)
            train[t].zero_()
            continue
        if cur is not None:
            sigma.add_(cur)
        torch.add(sigma, b, out=act_new).clamp_(min=0)
        torch.sub(act_new, act, out=delta).add_(residue)
        if threshold:                      # s = delta where |delta| >= vth << k, the rest stays in the residue
            sent = delta.abs() >= threshold
            torch.where(sent, torch.zeros_like(delta), delta, out=residue)
            delta.masked_fill_(~sent, 0)
        act, act_new = act_new, act
        delta.bitwise_right_shift_(neuron.state_exp)
        codes.add_(delta)
        spikes += int(torch.count_nonzero(delta))
        train[t].copy_(delta)
    return train, codes, spikes


def _run_group(prep: core.Prepared, k0: torch.Tensor, plan: dict, steps: int, trace: dict | None = None):
    """(readout U, codes, spikes) of one group of samples, layer after layer; `trace`, if a dict, gets
    each hidden layer's payloads (steps, N, *shape) int64."""
    graph = prep.graph
    enc = graph.input
    n = k0.shape[0]
    remaining = core.consumers(prep)
    first = core.empty_steps(steps, tuple(k0.shape), torch.float32, k0.device).zero_()
    first[0] = k0                          # the codes, sent once at step 0 (exact: below max_payload)
    trains, busy = {enc.name: first}, {enc.name: core.busy_steps(first)}
    codes, spikes = {enc.name: k0}, {enc.name: int(torch.count_nonzero(k0))}
    for layer in graph.neuron_layers():
        sl = plan[layer.name]
        if layer.is_readout:               # sigma = Σ_t a_in(t), each step's current wrapped as Lava's
            sigma = torch.zeros((n,) + tuple(layer.shape), dtype=torch.int64, device=prep.device)
            for cur in core.step_inputs(prep, layer, sl.arith, trains, busy, steps, lag=1, post=sl.post):
                if cur is not None:
                    sigma.add_(cur)
            return sigma + core.layer_bias(layer, sigma), codes, spikes
        train, codes[layer.name], spikes[layer.name] = _sigma_delta_train(prep, layer, sl, trains, busy, n, steps)
        core.release_sources(prep, layer, remaining, trains, busy)
        trains[layer.name], busy[layer.name] = train, core.busy_steps(train)
        if trace is not None:
            trace[layer.name] = train.to(torch.int64)
    raise NeurodeployError("an sdnn network ends with its readout", f"layer '{graph.output.name}'")


def run_layers(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
               trace: dict | None = None) -> core.BatchResult:
    """One batch layer after layer (module docstring), a few samples at a time (`core.sample_groups`):
    the same integers as `run_sdnn`.  `trace`, if a dict, gets each hidden layer's payloads at every
    step, (steps, N, *shape) int64 (what `run_sdnn`'s trace holds, time first)."""
    graph = prep.graph
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k0 = _input_codes(graph.input, xt)
    n = k0.shape[0]
    steps = settle_steps(graph)
    plan = layer_plan(prep)
    us, codes, spikes, traces = [], {}, {}, []
    for group in core.sample_groups(graph, n):
        traces.append({} if trace is not None else None)
        u, c, s = _run_group(prep, k0[group], plan, steps, traces[-1])
        us.append(u)
        for name, v in c.items():
            codes.setdefault(name, []).append(v)
            spikes[name] = spikes.get(name, 0) + s[name]
    u = torch.cat(us).contiguous()
    out = graph.output
    value = (u.to(torch.float64) * float(out.neuron.output_scale)).to(torch.float32)
    codes = {name: torch.cat(v).contiguous() for name, v in codes.items()} if record_codes else {}
    if trace is not None:
        trace.update({name: torch.cat([t[name] for t in traces], dim=1) for name in traces[0]})
    return core.BatchResult(value.reshape(n, -1), u, codes, spikes)


RUNNERS = {"neurodeploy": run_layers, "steps": run_sdnn}


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """One batch with the engine `prep` was prepared for; with a `probe` the step engine runs
    (bit-identical; it holds every step's state to read)."""
    if probe is not None:
        return run_sdnn(prep, x, record_codes, probe=probe)
    return RUNNERS[prep.engine](prep, x, record_codes)
