"""The `cuba` side of Lava-DL NetX files: networks of CUBA (LOIHI) LIF neurons in our neurons, and
what to compare with Lava when such a file runs there.

`frontends.netx.build` walks the file's layers and asks this module (`Cuba.netx_files()`) for:

  encoder      the `CubaEncoder` of the input: "bias" (an input layer with a CUBA neuron: the
               codes are its bias_mant, signed 13 bits), "sequence" (a frame per step into
               net.inp, the default) or "constant" (the same frame every step); graded
               (`input_message_bits`) or binary; a file of our own export says which
  input_layer  the input layer's LIF as a layer of ours ("input0"), fed one to one by the codes
  neuron       CubaLIF(du = iDecay - 1, dv = vDecay, v_th_mant = vThMant) with bias_mant = bias,
               bias_exp 6 (netx's); the last layer a CubaReadout with the same parameters, read
               as v (threshold at the maximum: it never fires) or as its spike count
  timing, output_note   the meta and the summary's lines

and `frontends.netx.verify` / `backends.netx_run` for `run_steps`, `trace`, `readout_values`
and `reset_arguments`.
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import synapses as syn
from ...ir.spiking import Branch, InputEncoder, Layer
from . import neurons as cb

NEURONS = "CUBA LIF neurons"
RESETS = True                              # netx's reset_interval resets LIF neurons (LIFReset)
CONSTANT_INPUT = "every step"
BIAS_INPUT_RANGE = (-(1 << 12), (1 << 12) - 1)     # Lava LIF bias_mant: signed 13 bits


def encoder(head, host: dict, in_shape: tuple, options, nf):
    """(input mode, InputEncoder, weight_exp of the synapses it feeds)."""
    from ...frontends.netx.build import graded_range, host_input, input_mode_option
    one = np.asarray(1.0)
    mode_opt = input_mode_option(options)
    steps = _steps(options, host, nf)
    if head is not None and head.neuron is not None:
        lo, hi = BIAS_INPUT_RANGE
        neuron = cb.CubaEncoder(code_max=hi, n_steps=steps, timesteps=steps, code_min=lo, drive="bias")
        return "bias", InputEncoder("input", in_shape, one, np.asarray(0.0), one, neuron), 0
    scale, offset, step = host_input(host)
    if host:
        mode = str(host["neurodeploy_input_mode"])
        lo, hi = int(host["neurodeploy_input_code_min"]), int(host["neurodeploy_input_code_max"])
    else:
        mode = "sequence" if mode_opt == "auto" else mode_opt
        lo, hi = graded_range(int(options.input_message_bits or 0))
    neuron = cb.CubaEncoder(code_max=hi, n_steps=steps, timesteps=int(host.get("neurodeploy_timesteps", steps)),
                            code_min=lo, sequence=mode == "sequence")
    return mode, InputEncoder("input", in_shape, scale, offset, step, neuron), 0


def _steps(options, host: dict, nf) -> int:
    t = options.timesteps
    if t is None and host:
        t = int(host["neurodeploy_n_steps"])
    if t is None:
        t = nf.t_sample
    if t is None or t < 1:
        raise NeurodeployError("a CUBA network runs for a number of steps the file does not give (no "
                               "simulation/tSample)", str(nf.path), "pass --timesteps T")
    return int(t)


def _lif(n, reset: tuple, block: int) -> cb.CubaLIF:
    every, base = reset
    return cb.CubaLIF(du=n.i_decay - 1, dv=n.v_decay, v_th_mant=n.vth, reset_interval=every,
                      reset_offset=(base + block) if every else 0)


def input_layer(n, encoder: InputEncoder, in_shape: tuple, reset: tuple) -> Layer:
    """The input layer's LIF: fed one to one by the codes, which it adds to its bias_mant."""
    c = in_shape[0]
    ops = [syn.ChannelScale(np.ones(c, dtype=np.int64))]
    return Layer("input0", in_shape, [Branch(encoder.name, ops, 0)], np.zeros(c, dtype=np.int64),
                 cb.NETX_BIAS_EXP, _lif(n, reset, 0), np.asarray(1.0))


def neuron(n, bias: np.ndarray, is_last: bool, reset: tuple, block: int, host: dict, where: str, notes: list,
           name: str):
    """(IR neuron, bias_mant, bias_exp) of one conv/dense block."""
    if n.vth > cb.VTH_MAX:
        notes.append(f"{name}: vThMant {n.vth} is beyond Loihi 2's 17-bit threshold (Lava's CPU model runs it)")
    lif = _lif(n, reset, block)
    if not is_last:
        return lif, bias, cb.NETX_BIAS_EXP
    output = str(host.get("neurodeploy_output", "v" if n.vth >= cb.VTH_MAX else "spikes"))
    return cb.CubaReadout(output_scale=float(host.get("neurodeploy_output_scale", 1.0)), du=lif.du, dv=lif.dv,
                          v_th_mant=lif.v_th_mant, window_start=int(host.get("neurodeploy_window_start", 0)),
                          reset_interval=lif.reset_interval, reset_offset=lif.reset_offset,
                          output=output), bias, cb.NETX_BIAS_EXP


def timing(net, depth: int) -> dict:
    steps = int(net.input.neuron.n_steps)
    return {"latency_steps": steps, "throughput_steps": steps, "timesteps": steps, "depth": depth,
            "time_steps_per_layer": {l.name: steps for l in net.layers[:-1]}}


def output_note(net) -> str:
    out = net.output.neuron
    what = "spike count" if getattr(out, "output", "v") == "spikes" else "voltage v"
    return f"output: the last layer's {what} after {int(net.input.neuron.n_steps)} steps, x {out.output_scale:g}"


# --------------------------------------------------------------------------- the file run in Lava
def run_steps(graph) -> int:
    """Steps to run the file for: the whole run."""
    return int(graph.input.neuron.n_steps)


def reset_arguments(graph) -> dict:
    """netx's reset_interval / reset_offset for a graph whose LIF neurons reset (the first block
    resets at reset_offset + 1)."""
    for layer in graph.neuron_layers():
        every = int(getattr(layer.neuron, "reset_interval", 0))
        if every:
            return {"reset_interval": every, "reset_offset": int(layer.neuron.reset_offset) - 1}
    return {}


def trace(graph, x: np.ndarray, n_steps: int) -> tuple[dict, np.ndarray]:
    """Per layer what it sent each step (N, n_steps, *shape) (a spiking readout included), and the
    readout's v after each step (N, n_steps, outputs)."""
    from .kernel import trace as run_trace
    tr = run_trace(graph, x)
    return dict(tr.spikes), tr.readout_v


def readout_values(graph, readout: np.ndarray, sent: np.ndarray | None, lava_sent: np.ndarray,
                   lava_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ours, Lava's) of one sample's readout: v after every step, and its spikes when it fires."""
    ours, ref = readout, lava_v
    if sent is not None:                                  # a spiking output layer: its spikes too
        ours = np.concatenate([ours.reshape(-1), sent.reshape(-1)])
        ref = np.concatenate([ref.reshape(-1), lava_sent.reshape(-1)])
    return ours, ref
