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


def run_batch(prep: core.Prepared, x: np.ndarray, record_codes: bool = True,
              probe: core.Probe | None = None) -> core.BatchResult:
    """The `cuba` kernel (sim.engine.run_batch): output = readout v (or, for `output` "spikes", its
    spike count) * output_scale; codes = spike counts."""
    graph = prep.graph
    vout, counts, k, _ = simulate_steps(prep, x, probe=probe)
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
