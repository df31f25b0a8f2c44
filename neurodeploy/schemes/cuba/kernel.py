"""Kernels of the `cuba` scheme: Loihi's stock CUBA LIF, bit-exact with Lava's `PyLifModelBitAcc`.

Time runs in lock step like Loihi's cores (and Lava's LoihiProtocol): at step t a layer
receives a_in = sum over branches of (W_mant . s_src(t-1)) << weight_exp, what its sources
emitted one step earlier (each Dense/Conv synapse delays by one step), then updates u, v
(`schemes.cuba.neurons.CubaLIF`) and emits.  The encoder sends its graded codes k at every step
1..n_steps.  The readout is a CubaReadout (a LIF that never fires); its v after n_steps
steps minus its v after window_start steps, times output_scale, is the output.  Synaptic
currents are what Lava's Dense/Conv deliver (`sim.core.lava_branch_current`: a convolution's
output wraps at 24 bits).  Networks imported from NetX files may also reset (Lava's LIFReset),
take a frame per step, feed the input as a bias, or count the readout's spikes (see
`simulate_steps`).

Two engines, bit-identical (tests/test_cuba_engines.py):

`steps` (`--engine steps`, `simulate_steps`): that lock-step schedule literally, one step of every layer
at a time in int64; it also records traces, per-step states and probes (the Lava comparisons use it).

`neurodeploy` (default, `simulate_layers`): layer after layer over the whole run.  A layer's input at
step t is W·s_src(t−1), linear in its sources' spikes, so once a source's spike train is known for
every step, the layer's input for a chunk of steps is one synapse call over the (steps·N) batch
(`core.step_inputs`: float32 calls where exact, Lava's 24-bit wrap elementwise afterwards); only the
LIF update (decays, wrap, saturation, threshold, reset) runs step by step, in place, in float64 where
every integer it computes is below 2^53 (`layer_plan`), else int64.  An input that drives the bias of
the layers it feeds (imported NetX files) is a per-sample bias there and sends nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import neurons as cb
from ...ir.spiking import SpikingGraph
from ...sim import core


def _decay(x: torch.Tensor, d: int) -> torch.Tensor:
    """sign(x*(4096-d)) * (|x*(4096-d)| >> 12): Lava's decay, rounding toward zero."""
    p = x * (cb.DECAY_UNITY - d)
    return torch.sign(p) * (torch.abs(p) >> cb.DECAY_SHIFT)


def lif_step(u: torch.Tensor, v: torch.Tensor, a_in: torch.Tensor, bias: torch.Tensor, neuron,
             raw: list | None = None):
    """One CubaLIF / CubaReadout update on int64 tensors; returns (u, v, spikes bool).  `raw`, if a
    list, gets u before its wrap and v before its saturation (the registers' peaks)."""
    u = _decay(u, neuron.du + cb.DS_OFFSET) + (a_in << cb.ACT_SHIFT)
    if raw is not None:
        raw.append(u)
    u = torch.where(u > cb.MAX_UV, u - 2 * cb.MAX_UV, u)
    u = torch.where(u <= -cb.MAX_UV, u + 2 * cb.MAX_UV, u)
    v = _decay(v, neuron.dv + cb.DM_OFFSET) + u + bias
    if raw is not None:
        raw.append(v)
    v = torch.clamp(v, -cb.MAX_UV + 1, cb.MAX_UV - 1)
    s = v > (int(neuron.v_th_mant) << cb.VTH_SHIFT)
    v = torch.where(s, torch.zeros_like(v), v)
    return u, v, s


def reset_due(neuron, step: int) -> bool:
    """Lava's LIFReset zeroes u and v before the update of this step (time steps from 1)."""
    every = int(getattr(neuron, "reset_interval", 0))
    return every > 0 and step % every == int(neuron.reset_offset) % every


def spiking_output(graph: SpikingGraph) -> bool:
    """Does the host count the readout's spikes (an imported NetX network whose output layer fires)?"""
    return getattr(graph.output.neuron, "output", "v") == "spikes"


@dataclass
class Trace:
    """Everything a step-by-step comparison needs (IR layouts, numpy)."""
    spikes: dict          # layer -> uint8 (N, n_steps, *shape): spikes emitted at each step
    readout_v: np.ndarray  # int64 (N, n_steps, outputs): readout v after each step
    codes: np.ndarray     # int64 input codes (N, *shape)


def simulate_steps(prep: core.Prepared, x: np.ndarray, trace: bool = False, probe: core.Probe | None = None,
                   on_step=None):
    """Run the whole sample (n_steps steps); returns (readout value v(R) - v(window_start), spike
    counts per layer, input codes, Trace or None).  A readout whose `output` is "spikes" is
    counted (and traced) like a hidden layer.  `probe` gets each layer's peak |u|, |v| and the
    readout's value after every step (v(t) - v(window_start) once the window has started, else v(t)).
    `on_step(step, u, v)`, if given, sees every layer's u and v (dicts of int64 tensors) after each
    step (the golden-file tests compare them with Lava-DL's).

    Inputs of imported NetX networks (`CubaEncoder`): `sequence` takes x (N, n_steps, *shape),
    one frame per step; `drive` "bias" adds the codes to the bias of the layers the encoder
    feeds instead of sending them through the synapses."""
    graph: SpikingGraph = prep.graph
    enc = graph.input
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k = core.input_codes(enc, xt)
    n = xt.shape[0]
    layers = graph.neuron_layers()
    dev = prep.device
    zeros = {l.name: torch.zeros((n,) + tuple(l.shape), dtype=torch.int64, device=dev) for l in layers}
    u = dict(zeros)
    v = dict(zeros)
    bias = {l.name: core.layer_bias(l, zeros[l.name]) for l in layers}
    prev = {l.name: torch.zeros_like(zeros[l.name], dtype=torch.uint8) for l in layers}
    sequence = bool(enc.neuron.sequence)                              # x: (N, n_steps, *shape)
    prev[enc.name] = torch.zeros_like(k[:, 0] if sequence else k)
    by_bias = getattr(enc.neuron, "drive", "spikes") == "bias"       # the codes are the fed layers' bias
    for l in layers:
        if by_bias and any(b.source == enc.name for b in l.branches):
            bias[l.name] = bias[l.name] + (k << int(l.bias_exp))
    counted = [l for l in layers if not l.is_readout or spiking_output(graph)]
    counts = {l.name: torch.zeros_like(zeros[l.name]) for l in counted}
    rec = {l.name: [] for l in counted} if trace else None
    rv = [] if trace else None
    out = graph.output.name
    start = int(getattr(graph.output.neuron, "window_start", 0))
    v_start = zeros[out]
    for step in range(1, enc.neuron.n_steps + 1):
        now = {enc.name: k[:, step - 1] if sequence else k}
        for layer in layers:
            a_in = sum(core.lava_branch_current(pb, prev[pb.source]) for pb in prep.branches[layer.name]
                       if not (by_bias and pb.source == enc.name))
            if reset_due(layer.neuron, step):
                u[layer.name], v[layer.name] = zeros[layer.name], zeros[layer.name]
            raw = [] if probe is not None else None
            u[layer.name], v[layer.name], s = lif_step(u[layer.name], v[layer.name], a_in, bias[layer.name],
                                                       layer.neuron, raw)
            if probe is not None:
                probe.peak(layer.name, *raw)
            if layer.name in counts:
                counts[layer.name] += s
                if trace:
                    rec[layer.name].append(s.to(torch.uint8))
            if layer.is_readout:
                if step == start:
                    v_start = v[layer.name].clone()
                if probe is not None:
                    probe.readout(v[layer.name] - (v_start if step > start else 0), graph.output.neuron.output_scale)
                if trace:
                    rv.append(v[layer.name].clone())
                continue
            now[layer.name] = s.to(torch.uint8)
        if on_step is not None:
            on_step(step, u, v)
        prev = now
    tr = None
    if trace:
        tr = Trace({name: torch.stack(p, 1).cpu().numpy() for name, p in rec.items()},
                   torch.stack(rv, 1).reshape(n, enc.neuron.n_steps, -1).cpu().numpy(), k.cpu().numpy())
    return v[out] - v_start, counts, k, tr


# ---------------------------------------------------------------------------- layer after layer

def layer_plan(prep: core.Prepared) -> dict[str, core.LavaStepLayer]:
    """Per layer, the arithmetic in which `simulate_layers` is exact (cached on `prep`).

    With A = max |a_in| over the sources' payloads (`core.branch_bound` summed over the branches; a wrapped
    current is smaller still), u after its single wrap stays within 2^23 + 64·A (it only grows by the
    input, and the wrap brings anything past 2^23 back by 2^24 as long as 64·A < 2^24; beyond, the
    bound grows by 64·A per step: 2^23 + steps·64·A), v within 2^23 (saturated); the largest integer
    computed is a decay product |u|·4096 or v + u + bias before saturation.  Below 2^53 every state is
    float64 (the decays then are exact: trunc(x·(4096 − d)/4096) of integers, a product below 2^53 and
    a power-of-two division), else int64.  The synapse calls run in the float type exact for Σ|W|·payload
    (float32 on channel groups or limbs where float64 would be needed, `core.layer_arith`)."""
    if "cuba.layers" in prep.cache:
        return prep.cache["cuba.layers"]
    graph = prep.graph
    steps = int(graph.input.neuron.n_steps)
    p_max = {l.name: float(l.neuron.max_payload) for l in graph.layers}
    plan = {}
    for layer in graph.neuron_layers():
        bias = float(np.max(np.abs(layer.bias.astype(np.float64)), initial=0.0))
        if _by_bias(graph) and any(pb.source == graph.input.name for pb in prep.branches[layer.name]):
            bias += p_max[graph.input.name] * (1 << int(layer.bias_exp))
        a = float(np.max(sum(core.branch_bound(prep, pb, p_max[pb.source], pb.weight_exp)
                             for pb in prep.branches[layer.name])))
        drive = 64.0 * a
        u_top = cb.MAX_UV + (drive if drive < 2 * cb.MAX_UV else steps * drive)
        top = max(u_top * cb.DECAY_UNITY, 2.0 * cb.MAX_UV + u_top + bias, float(core.FLOAT32_EXACT))
        plan[layer.name] = core.lava_step_layer(prep, layer, p_max, top)     # arith.dtype: that of u, v
    prep.cache["cuba.layers"] = plan
    return plan


def _decay_(x: torch.Tensor, d: int) -> None:
    """`_decay` in place: trunc(x·(4096 − d)/4096), exact in float64 for the bounds of `layer_plan`."""
    keep = cb.DECAY_UNITY - d
    if keep == cb.DECAY_UNITY:
        return
    if x.dtype == torch.int64:
        x.copy_(_decay(x, d))
    elif keep == 0:
        x.zero_()
    else:
        x.mul_(keep / cb.DECAY_UNITY).trunc_()


def _by_bias(graph: SpikingGraph) -> bool:
    """Does the input drive the bias of the layers it feeds (`CubaEncoder.drive`)?"""
    return getattr(graph.input.neuron, "drive", "spikes") == "bias"


def _lif_train(prep, layer, cl: core.LavaStepLayer, trains: dict, busy: dict, n: int, steps: int, start: int,
               codes: torch.Tensor):
    """`lif_step` of one layer over all steps, in place: (spikes (steps, N, *shape) float32, v after the last
    step, v after step `start` (zeros for 0)).  codes: the input codes, added to the bias of a layer the
    input feeds where it drives biases."""
    neuron, la = layer.neuron, cl.arith
    shape = (n,) + tuple(layer.shape)
    u = core.nhwc(torch.zeros(shape, dtype=la.dtype, device=prep.device))
    v = torch.zeros_like(u)
    b = core.layer_bias(layer, torch.zeros(shape, dtype=torch.int64, device=prep.device))
    if _by_bias(prep.graph) and any(pb.source == prep.graph.input.name for pb in prep.branches[layer.name]):
        b = core.nhwc(b + (codes << int(layer.bias_exp)))
    b = b.to(la.dtype)
    theta = int(neuron.v_th_mant) << cb.VTH_SHIFT
    floats = la.dtype != torch.int64
    fired = torch.empty_like(u) if floats else torch.empty_like(u, dtype=torch.bool)
    train = core.empty_steps(steps, shape, torch.float32, prep.device)
    v_start = torch.zeros_like(v)
    for t, cur in enumerate(core.step_inputs(prep, layer, la, trains, busy, steps, lag=1, post=cl.post)):
        if reset_due(neuron, t + 1):
            u.zero_()
            v.zero_()
        _decay_(u, neuron.du + cb.DS_OFFSET)
        if cur is not None:
            u.add_(cur, alpha=1 << cb.ACT_SHIFT)
        if float(u.amax()) > cb.MAX_UV:                    # Lava's single 24-bit wrap of u
            u.sub_((u > cb.MAX_UV).to(u.dtype), alpha=2 * cb.MAX_UV)
        if float(u.amin()) <= -cb.MAX_UV:
            u.add_((u <= -cb.MAX_UV).to(u.dtype), alpha=2 * cb.MAX_UV)
        _decay_(v, neuron.dv + cb.DM_OFFSET)
        v.add_(u).add_(b).clamp_(-cb.MAX_UV + 1, cb.MAX_UV - 1)
        if floats:      # v > θ as 1.0 / 0.0: clamp(v − θ, 0, 1) of integers; v − v·s resets (4x faster than a bool mask)
            torch.sub(v, theta, out=fired).clamp_(0, 1)
            v.addcmul_(v, fired, value=-1)
        else:
            torch.gt(v, theta, out=fired)
            v.masked_fill_(fired, 0)
        train[t].copy_(fired)
        if t + 1 == start:
            v_start.copy_(v)
    return train, v, v_start


def simulate_layers(prep: core.Prepared, x: np.ndarray, spikes: dict | None = None):
    """`simulate_steps` (without trace, probe or on_step) layer after layer (module docstring), a few
    samples at a time (`core.sample_groups`): the same (readout value, counts, input codes, None).
    `spikes`, if a dict, gets every counted layer's spikes at each step, uint8 (N, n_steps, *shape)
    (what `Trace.spikes` holds)."""
    graph = prep.graph
    enc = graph.input
    xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
    k = core.input_codes(enc, xt)
    steps = int(enc.neuron.n_steps)
    plan = layer_plan(prep)
    counted = {l.name for l in graph.neuron_layers() if not l.is_readout or spiking_output(graph)}
    start = int(getattr(graph.output.neuron, "window_start", 0))
    outs, counts = [], {}
    for group in core.sample_groups(graph, k.shape[0]):
        kg = k[group]
        frame = tuple(kg.shape[2:]) if enc.neuron.sequence else tuple(kg.shape[1:])
        first = core.empty_steps(steps, (kg.shape[0],) + frame, torch.float32, prep.device)
        for t in range(steps):             # the codes (or step t's frame), sent at every step, unless they are biases
            first[t] = 0 if _by_bias(graph) else kg[:, t] if enc.neuron.sequence else kg
        trains, busy = {enc.name: first}, {enc.name: core.busy_steps(first)}
        remaining = core.consumers(prep)
        for layer in graph.neuron_layers():
            train, v, v_start = _lif_train(prep, layer, plan[layer.name], trains, busy, kg.shape[0], steps, start, kg)
            if layer.name in counted:
                counts.setdefault(layer.name, []).append(core.sum_steps(train).to(torch.int64))
                if spikes is not None:
                    spikes.setdefault(layer.name, []).append(train.to(torch.uint8).transpose(0, 1))
            if layer.is_readout:
                outs.append((v - v_start).to(torch.int64))
                break
            core.release_sources(prep, layer, remaining, trains, busy)
            trains[layer.name], busy[layer.name] = train, core.busy_steps(train)
    if spikes is not None:
        spikes.update({name: torch.cat(s).contiguous() for name, s in spikes.items()})
    return (torch.cat(outs).contiguous(), {name: torch.cat(c).contiguous() for name, c in counts.items()}, k, None)


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """The `cuba` kernel (sim.engine.run_batch) with the engine `prep` was prepared for (with a `probe`,
    the step engine): output = readout v (or, for `output` "spikes",
    its spike count) * output_scale; codes = spike counts."""
    graph = prep.graph
    by_layers = probe is None and prep.engine == "neurodeploy"
    vout, counts, k, _ = simulate_layers(prep, x) if by_layers else simulate_steps(prep, x, probe=probe)
    n = vout.shape[0]
    if graph.output.name in counts:
        vout = counts.pop(graph.output.name)
    value = (vout.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
    codes = {}
    if record_codes:
        codes = {graph.input.name: k, **counts}
    spikes = {name: int(c.sum()) for name, c in counts.items()}
    enc = graph.input.neuron
    sent = int((k != 0).sum())                                 # graded messages sent (or input spikes)
    if getattr(enc, "drive", "spikes") == "bias":
        sent = 0                                               # the codes are biases: no messages
    spikes[graph.input.name] = sent if enc.sequence else sent * enc.n_steps
    return core.BatchResult(value.reshape(n, -1), vout, codes, spikes)


def trace(graph: SpikingGraph, x: np.ndarray, device: str = "cpu") -> Trace:
    """Per-step spikes of every layer and the readout's v after every step."""
    prep = core.prepare(graph, device)
    return simulate_steps(prep, x, trace=True)[3]


def simulate(graph: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Outputs (N, outputs) float32, without going through sim.engine's dispatch."""
    prep = core.prepare(graph, device)
    outs = [run_batch(prep, x[i:i + batch_size], record_codes=False).output.cpu().numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0)
