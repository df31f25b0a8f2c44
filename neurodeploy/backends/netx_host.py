"""The host side of a NetX file written by `neurodeploy export --format netx`: how inputs go in and outputs come out.

A NetX file describes the network on the chip; what the host sends to `net.inp` and reads
back is a convention of whoever trained it.  neurodeploy writes its convention into the
file as root attributes (HDF5 attributes that netx ignores), so that the file is complete:

  neurodeploy_scheme              "cuba" | "sdnn"
  neurodeploy_input_shape         one frame of x, (C, H, W) or (F,) (netx's input layer may hold it flat)
  neurodeploy_input_scale / _offset / _value_step   float64, scalar or per channel:
                                  codes = clip(floor(x * scale + offset), code_min, code_max)
  neurodeploy_input_code_min / _code_max   int
  neurodeploy_input_shift         the codes are sent shifted left by this many bits (sdnn)
  neurodeploy_input_vth           sdnn: a code is sent only where |code| >= vth (host-side Delta)
  neurodeploy_input_mode          "constant": cuba sends the codes at every step, sdnn once at
                                  the first step (then 0); "sequence": x has a frame per step;
                                  "bias": the codes are the input layer neuron's bias_mant
  neurodeploy_input_message_bits  netx.hdf5.Network(input_message_bits=...) (0: binary spikes)
  neurodeploy_n_steps             steps to run (cuba: the run; sdnn: until every layer has settled)
  neurodeploy_timesteps           cuba: the T the float SNN averaged over
  neurodeploy_window_start        cuba: the output is v(n_steps) - v(window_start) (v(0) = 0)
  neurodeploy_output              "sigma" (sdnn: the readout's sigma, net.out), "v" (cuba: the last
                                  layer's voltage, read from its neuron) or "spikes" (cuba: counted)
  neurodeploy_readout_bias        int64 per output, added to sigma on the host (Lava's Sigma has none)
  neurodeploy_output_scale        float: output = (value + readout_bias) * output_scale
  neurodeploy_reset_interval / _reset_offset   cuba: netx.hdf5.Network(reset_interval=..., reset_offset=...)

`encode(path, x)` and `decode(path, values)` apply it with numpy and h5py only (no Lava, no
neurodeploy IR), for a Loihi 2 user's own Lava script; `instructions(path)` prints the recipe.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PREFIX = "neurodeploy_"


def message_bits(code_min: int, code_max: int) -> int:
    """netx's input_message_bits for values in [code_min, code_max]: 0 for binary spikes."""
    if (code_min, code_max) == (0, 1):
        return 0
    return max(int(code_max), -int(code_min)).bit_length() + (1 if code_min < 0 else 0)


def host_attrs(graph, *, n_steps: int, shift: int, mode: str, output: str, readout_bias,
               input_vth: int = 0, extra: dict | None = None) -> dict:
    """The attributes of one exported graph (values as written; see the module docstring).

    The scheme's exporter gives what only it knows: the steps to run, the input shift and
    mode, what the host reads (`output`), the bias the host adds to it, the input Delta's
    threshold, and `extra` attributes of its own (cuba: timesteps, window_start, reset)."""
    enc = graph.input
    n = enc.neuron
    lo, hi = int(n.code_min), int(n.code_max)
    out = graph.output
    attrs = {
        "scheme": graph.scheme,
        "input_shape": np.asarray(enc.shape, dtype=np.int64),
        "input_scale": np.asarray(enc.in_scale, dtype=np.float64),
        "input_offset": np.asarray(enc.offset, dtype=np.float64),
        "input_value_step": np.asarray(enc.value_step, dtype=np.float64),
        "input_code_min": np.int64(lo), "input_code_max": np.int64(hi),
        "input_shift": np.int64(shift), "input_vth": np.int64(input_vth),
        "input_mode": mode,
        "input_message_bits": np.int64(0 if mode == "bias" else message_bits(lo << shift, hi << shift)),
        "n_steps": np.int64(n_steps),
        "output": output,
        "readout_bias": np.asarray(readout_bias, dtype=np.int64).reshape(-1),
        "output_scale": np.float64(out.neuron.output_scale),
    }
    attrs.update(extra or {})
    return attrs


def write_attrs(h5file, attrs: dict) -> None:
    for key, value in attrs.items():
        h5file.attrs[PREFIX + key] = value


def read(path: str | Path) -> dict:
    """The neurodeploy_* attributes of a file (names without the prefix); {} for other NetX files."""
    import h5py
    with h5py.File(path, "r") as h:
        out = {}
        for k in h.attrs:
            if k.startswith(PREFIX):
                v = h.attrs[k]
                out[k[len(PREFIX):]] = v.decode() if isinstance(v, bytes) else v
        return out


def _chan(a, ndim: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a if a.ndim == 0 else a.reshape((1, -1) + (1,) * (ndim - 2))


def codes(path: str | Path, x: np.ndarray) -> np.ndarray:
    """The integer codes of x (N, *input shape) as the file's convention defines them (int64)."""
    a = read(path)
    x = np.asarray(x, dtype=np.float64)
    frame = tuple(int(v) for v in a["input_shape"])
    if tuple(x.shape[-len(frame):]) != frame:
        raise ValueError(f"inputs shaped {x.shape} do not end in the file's input shape {frame}")
    k = np.floor(x * _chan(a["input_scale"], x.ndim) + _chan(a["input_offset"], x.ndim))
    k = np.clip(k, int(a["input_code_min"]), int(a["input_code_max"])).astype(np.int64)
    if int(a.get("input_vth", 0)):
        k = np.where(np.abs(k) >= int(a["input_vth"]), k, 0)
    return k << int(a["input_shift"])


def encode(path: str | Path, x: np.ndarray, n_steps: int | None = None) -> np.ndarray:
    """RingBuffer data for `net.inp`, one array per sample: int32 (N, *Lava shape, n_steps),
    Lava's (W, H, C) layout, flattened in PyTorch's (C, H, W) order when net.inp is flat.
    `n_steps` (default: the file's) sets how long a constant input lasts.

    For mode "bias" the result is (N, *Lava shape): the input neuron's bias_mant per sample."""
    a = read(path)
    k = codes(path, x)
    mode, steps = str(a["input_mode"]), int(n_steps or a["n_steps"])
    flat = _inp_is_flat(path)

    def lava(frame):                  # (C, H, W) -> (W, H, C); flat inputs in (C, H, W) order
        return frame.reshape(len(frame), -1) if flat else (frame.transpose(0, 3, 2, 1) if frame.ndim == 4 else frame)

    if mode == "bias":
        return lava(k).astype(np.int32)
    if mode == "sequence":
        frames = np.stack([lava(k[:, t]) for t in range(k.shape[1])], axis=-1)
        return frames.astype(np.int32)
    frame = lava(k)
    data = np.zeros(frame.shape + (steps,), dtype=np.int32)
    if sends_changes(path):
        data[..., 0] = frame             # sigma-delta: the input's change, once
    else:
        data[...] = frame[..., None]      # CUBA: the same codes at every step
    return data


def _text(value) -> str:
    value = value.reshape(-1)[0] if isinstance(value, np.ndarray) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _layers(path):
    """(type, neuron type or None) of every layer of the file, in order."""
    import h5py
    with h5py.File(path, "r") as h:
        g = h["layer"]
        out = []
        for i in range(len(g)):
            layer = g[str(i)]
            neuron = layer.get("neuron/type")
            out.append((_text(layer["type"][()]), None if neuron is None else _text(neuron[()])))
        return out


def _inp_is_flat(path) -> bool:
    """net.inp is flat when the first synapse is a dense layer (shape-only input, maybe flattened)."""
    for kind, _ in _layers(path):
        if kind in ("conv", "dense"):
            return kind == "dense"
    return False


def sends_changes(path) -> bool:
    """True for a network of sigma-delta (SDNN) neurons, which take a static input's change once;
    CUBA LIF neurons take the input as a current at every step."""
    return any(neuron == "SDNN" for _, neuron in _layers(path))


def decode(path: str | Path, values: np.ndarray) -> np.ndarray:
    """Outputs in the model's units from what the host read: the readout's sigma (sdnn), v or
    spike count (cuba), shaped (N, outputs): (values + readout_bias) * output_scale."""
    a = read(path)
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return ((v + np.asarray(a["readout_bias"], dtype=np.float64)) * float(a["output_scale"])).astype(np.float32)


def instructions(path: str | Path, n_layers: int | None = None) -> str:
    """How to run the file with lava-dl's netx (a short, printable recipe)."""
    a = read(path)
    bits, steps, mode = int(a["input_message_bits"]), int(a["n_steps"]), str(a["input_mode"])
    args = f"net_config={str(path)!r}"
    if mode != "bias":
        args += f", input_message_bits={bits}"
    if int(a.get("reset_interval", 0)):
        args += f", reset_interval={int(a['reset_interval'])}, reset_offset={int(a['reset_offset'])}"
    feed = {"bias": "set net.in_layer.neuron.bias_mant.init = encode(...)[i] (the input neuron's bias)",
            "sequence": "connect RingBuffer(data=encode(...)[i]) to net.inp: one frame per step",
            "constant": "connect RingBuffer(data=encode(...)[i]) to net.inp"
                        + (": the codes at the first step, then 0" if sends_changes(path) else ": the codes every step"),
            }[mode]
    if a["output"] == "sigma":
        read_out = "connect net.out to a RingBuffer sink; its value at the last step is the readout's sigma"
    elif a["output"] == "v":
        read_out = (f"read net.out_layer.neuron.v after step {int(a.get('window_start', 0))} and after step {steps} "
                    "(a Monitor); their difference is the value")
    else:
        read_out = "count the spikes of net.out over the run"
    lines = [
        f"netx.hdf5.Network({args})" + (f"  ({n_layers} layers)" if n_layers else ""),
        f"input: codes = clip(floor(x * input_scale + input_offset), {int(a['input_code_min'])}, "
        f"{int(a['input_code_max'])})" + (f" << {int(a['input_shift'])}" if int(a["input_shift"]) else "")
        + f"; {feed}",
        f"run {steps} steps (Loihi2SimCfg(select_tag='fixed_pt') on a CPU, Loihi2HwCfg on the chip)",
        f"output: {read_out}; y = (value + readout_bias) * {float(a['output_scale']):.6g}",
        "neurodeploy.backends.netx_host.encode / decode do both host steps with numpy + h5py",
    ]
    return "\n".join(lines)
