"""The `sdnn` side of Lava-DL NetX files: networks of SDNN (sigma-delta) neurons in our neurons, and
what to compare with Lava when such a file runs there.

`frontends.netx.build` walks the file's layers and asks this module (`Sdnn.netx_files()`) for:

  encoder      the `DeltaEncoder` of the input, a static frame sent once: "delta" (an input
               layer with an SDNN neuron, Lava's Delta: x holds what its a_in receives, the first
               synapses see x << 6 once, below the Delta's threshold nothing) or "constant" (no
               input neuron: the codes into net.inp at the first step; a file of our own export
               gives its quantiser, shift and threshold)
  input_layer  none: the input Delta is the encoder itself
  neuron       SigmaDelta(vth = vThMant, spike_exp = state_exp = 6) with bias << 12; the last
               layer must be a Sigma readout (`sigma_output`), whose bias the host adds
  timing, output_note   the meta and the summary's lines

and `frontends.netx.verify` / `backends.netx_run` for `run_steps`, `trace`, `readout_values`
and `reset_arguments`.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...ir.spiking import InputEncoder
from . import neurons as sd

NEURONS = "sigma-delta neurons"
RESETS = False                                     # netx does not reset sigma-delta neurons
CONSTANT_INPUT = "once, at the first step"
SPIKE_EXP = STATE_EXP = 6                          # netx's defaults (Network(spike_exp=6)); state_exp is fixed
SDNN_CODE_MAX = ((1 << 23) - 1) >> STATE_EXP
DELTA_INPUT_RANGE = (-(1 << 9), (1 << 9) - 1)      # x << 6 within a 16-bit graded spike (netx's SDNN messages)


def encoder(head, host: dict, in_shape: tuple, options, nf):
    """(input mode, InputEncoder, weight_exp of the synapses it feeds): a static input, sent once
    (the Delta sends a constant input's change once)."""
    from ...frontends.netx.build import graded_range, host_input, input_mode_option
    one = np.asarray(1.0)
    if input_mode_option(options) == "sequence":
        raise UnsupportedError("sequence input into an SDNN network is not supported", "--input-mode",
                               "SDNN inputs are static frames, sent once as deltas")
    if head is not None and head.neuron is not None:
        lo, hi = DELTA_INPUT_RANGE
        neuron = sd.DeltaEncoder(code_max=hi, vth=head.neuron.vth, code_min=lo)
        return "delta", InputEncoder("input", in_shape, one, np.asarray(0.0), one, neuron), SPIKE_EXP
    if host:
        scale, offset, step = host_input(host)
        lo, hi = int(host["neurodeploy_input_code_min"]), int(host["neurodeploy_input_code_max"])
        neuron = sd.DeltaEncoder(code_max=hi, vth=int(host.get("neurodeploy_input_vth", 0)), code_min=lo)
        return "constant", InputEncoder("input", in_shape, scale, offset, step, neuron), \
            int(host["neurodeploy_input_shift"])
    lo, hi = graded_range(int(options.input_message_bits or 0))
    return "constant", InputEncoder("input", in_shape, one, np.asarray(0.0), one, sd.DeltaEncoder(hi, 0, lo)), 0


def input_layer(n, encoder: InputEncoder, in_shape: tuple, reset: tuple):
    """None: the input Delta is the encoder (`DeltaEncoder` with its threshold)."""
    return None


def neuron(n, bias: np.ndarray, is_last: bool, reset: tuple, block: int, host: dict, where: str, notes: list,
           name: str):
    """(IR neuron, bias_mant, bias_exp) of one conv/dense block."""
    if n.sigma_output and not is_last:
        raise UnsupportedError("a Sigma (sigma_output) layer before the last layer", where,
                               "only the readout may be a Sigma")
    if is_last:
        if not n.sigma_output:
            raise UnsupportedError("the last SDNN layer is not a Sigma readout (no neuron/sigma_output)", where,
                                   "end the network with slayer's sigma-delta Output block")
        if "neurodeploy_readout_bias" in host:                   # Sigma has none: the host adds it
            bias = np.asarray(host["neurodeploy_readout_bias"], dtype=np.int64).reshape(bias.shape[0])
        return sd.Sigma(output_scale=float(host.get("neurodeploy_output_scale", 1.0))), bias, 0
    return sd.SigmaDelta(vth=n.vth, code_max=SDNN_CODE_MAX, spike_exp=SPIKE_EXP, state_exp=STATE_EXP), bias, 0


def timing(net, depth: int) -> dict:
    return {"latency_steps": depth + 1, "throughput_steps": depth + 1}


def output_note(net) -> str:
    return f"output: the Sigma readout's sigma once settled, x {net.output.neuron.output_scale:g}"


# --------------------------------------------------------------------------- the file run in Lava
def run_steps(graph) -> int:
    """Steps to run the file for: until every layer has settled."""
    from .kernel import settle_steps
    return settle_steps(graph)


def reset_arguments(graph) -> dict:
    return {}


def trace(graph, x: np.ndarray, n_steps: int) -> tuple[dict, np.ndarray]:
    """Per layer what it sent each step (N, n_steps, *shape), and the readout's settled
    sigma + bias (N, 1, outputs)."""
    import torch

    from ...sim import core
    from .kernel import run_sdnn
    steps: list = []
    r = run_sdnn(core.prepare(graph), x, n_steps=n_steps, trace=steps)
    sent = {name: torch.stack([s[name] for s in steps], 1).numpy() for name in steps[0] if name != graph.input.name}
    return sent, r.output_state.numpy().reshape(len(x), 1, -1)


def readout_values(graph, readout: np.ndarray, sent, lava_sent: np.ndarray, lava_v) -> tuple[np.ndarray, np.ndarray]:
    """(ours, Lava's) of one sample's readout: Sigma sends sigma, the host adds the bias."""
    ours = readout[-1]
    ref = lava_sent[-1].reshape(-1) + np.asarray(graph.output.bias, dtype=np.int64).reshape(-1)
    return ours, ref
