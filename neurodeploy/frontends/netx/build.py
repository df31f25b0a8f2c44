"""A checked NetX file (`reader.NetxFile`) -> the spiking IR, in the `cuba` or `sdnn` scheme's neurons.

NetX (lava-dl 0.6.0 `netx.hdf5.Network`) builds one Lava block per `input` (with a neuron),
`conv` and `dense` layer: a synapse (Conv / Dense, one step of delay) and a neuron (LIF for
CUBA/LOIHI, SigmaDelta or Sigma for SDNN, Delta for an SDNN input layer).  The IR keeps that
network as it is, integer for integer, so that our simulator equals netx run in Lava fixed_pt:

  conv      -> Conv(weight as in the file: PyTorch OIHW correlation, stride/padding/dilation (y, x))
  flatten   -> the next dense layer's branch starts with Flatten (netx: WHC -> CHW -> flat)
  dense     -> Dense(the weights Lava's Dense computes with, `dense_weights.lava_dense_weights`)
  CUBA      -> CubaLIF(du = iDecay - 1, dv = vDecay, v_th_mant = vThMant), bias_mant = bias,
               bias_exp 6 (netx's); the last layer a CubaReadout with the same parameters
  SDNN      -> SigmaDelta(vth = vThMant, spike_exp = state_exp = 6) with bias << 12; the last
               layer must be a Sigma readout (`sigma_output`)

How the input enters (`meta["netx"]["input"]`), the one thing a NetX file leaves to its user:
  "bias"      an input layer with a CUBA neuron: netx leaves its port unconnected and Lava-DL
              drives it through its `bias_mant` (the PilotNet LIF tests): x holds that bias per
              neuron; the input layer is a CubaLIF fed by `CubaEncoder(drive="bias")`
  "delta"     an input layer with an SDNN neuron (Lava's Delta, fed at its a_in in Lava-DL's
              tests): x holds the integers sent to it, the first synapses see x << 6 once
              (DeltaEncoder with the Delta's vth, first branch weight_exp 6)
  "sequence"  no input neuron, spikes at `net.inp`: x is (N, T, *shape), one frame per step
              (binary spikes unless `input_message_bits`)
  "constant"  the same frame at every step (CUBA), or once at the first step (SDNN, deltas)
A file written by `neurodeploy export --format netx` carries its own convention (root
attributes, `backends.netx_host`), so importing it gives back the network that was exported.

Options (CompileOptions): `timesteps` (CUBA run length; default the file's simulation/tSample
or the exported n_steps), `reset_interval` / `reset_offset` (netx's LIFReset arguments: block k
resets at steps t with t % interval == reset_offset + 1 + k), `input_message_bits` (graded
input into `net.inp`, netx's argument of that name) and `input_mode` (auto / sequence / constant).
"""
from __future__ import annotations

import numpy as np

from ... import __version__
from ...errors import NeurodeployError, UnsupportedError
from ...ir import cuba as cb
from ...ir import sdnn as sd
from ...ir import synapses as syn
from ...ir.spiking import Branch, InputEncoder, Layer, SpikingGraph
from .dense_weights import lava_dense_weights
from .reader import NetxFile, NetxLayer, NetxNeuron

SPIKE_EXP = STATE_EXP = 6                   # netx's defaults (Network(spike_exp=6)); state_exp is fixed
SDNN_CODE_MAX = ((1 << 23) - 1) >> STATE_EXP
DELTA_INPUT_RANGE = (-(1 << 9), (1 << 9) - 1)      # x << 6 within a 16-bit graded spike (netx's SDNN messages)
BIAS_INPUT_RANGE = (-(1 << 12), (1 << 12) - 1)     # Lava LIF bias_mant: signed 13 bits
NETX_DEFAULT_NEURON = NetxNeuron("CUBA", vth=1 << 17, i_decay=0, v_decay=4096)   # hdf5.py: `1 << 18 - 1`
INPUT_MODES = ("auto", "sequence", "constant")
SCHEME_OF = {"CUBA": "cuba", "SDNN": "sdnn"}       # the neuron family -> the scheme whose neurons hold it


def _graded_range(bits: int) -> tuple[int, int]:
    return (0, 1) if bits == 0 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def build_graph(nf: NetxFile, options, target_name: str) -> SpikingGraph:
    where = str(nf.path)
    kinds = {l.neuron.kind for l in nf.layers if l.neuron is not None}
    if not kinds:
        raise NeurodeployError("no layer has a neuron", where, "pass a NetX network of CUBA or SDNN neurons")
    if len(kinds) > 1:
        raise UnsupportedError("the network mixes CUBA and SDNN neurons", where,
                               "neurodeploy imports networks of one neuron family")
    kind = kinds.pop()
    notes: list[str] = []
    layers = list(nf.layers)
    head = layers[0] if layers[0].type == "input" else None
    body = layers[1:] if head is not None else layers
    for l in body:
        if l.type == "input":
            raise UnsupportedError("an input layer after the first layer", f"{where}: {l.where}")
    if not any(l.type in ("conv", "dense") for l in body):
        raise NeurodeployError("no conv or dense layer", where)
    in_shape = _input_shape(head, body, where)
    host = nf.attrs                                           # neurodeploy's own export, else {}
    flatten = False
    if "neurodeploy_input_shape" in host:                     # the exported frame, which netx may hold flat
        frame = tuple(int(v) for v in np.asarray(host["neurodeploy_input_shape"]).reshape(-1))
        if int(np.prod(frame)) != int(np.prod(in_shape)):
            raise NeurodeployError(f"neurodeploy_input_shape {frame} does not match the input layer {in_shape}", where)
        flatten = len(frame) == 3 and len(in_shape) == 1       # an image flattened into the first dense layer
        in_shape = frame
    mode, encoder, first_exp = _encoder(kind, head, host, in_shape, options, nf, notes)
    ir_layers: list = [encoder]
    netx_index = {}
    prev, prev_shape = encoder.name, in_shape
    reset = _reset(kind, options, host, notes)
    block = 0
    if head is not None and head.neuron is not None and kind == "CUBA":
        # the input LIF itself: fed one to one by the codes, which it adds to its bias_mant
        c = in_shape[0]
        ops = [syn.ChannelScale(np.ones(c, dtype=np.int64))]
        ir_layers.append(Layer("input0", in_shape, [Branch(encoder.name, ops, 0)],
                               np.zeros(c, dtype=np.int64), cb.NETX_BIAS_EXP,
                               _lif(head.neuron, reset, block), np.asarray(1.0)))
        netx_index["input0"] = 0
        prev, block = "input0", 1
    elif head is not None and head.neuron is not None:
        block = 1                                             # the Delta is a block too (its reset offset)
    last = max(i for i, l in enumerate(body) if l.type in ("conv", "dense"))
    for i, l in enumerate(body):
        if l.type == "flatten":
            if len(prev_shape) != 3 or flatten:
                raise UnsupportedError("a flatten layer must follow a (C, H, W) layer", f"{where}: {l.where}")
            flatten = True
            continue
        if i > last:
            raise UnsupportedError("a flatten layer at the end of the network", f"{where}: {l.where}")
        name = f"{l.type}{l.index}"
        ops, shape = _ops(l, prev_shape, flatten, f"{where}: {l.where}", notes)
        flatten = False
        neuron = l.neuron
        if neuron is None:
            notes.append(f"{name}: no neuron group: netx's default non-leaky CUBA integrator "
                         "(iDecay 0, vDecay 4096, vThMant 131072)")
            neuron = NETX_DEFAULT_NEURON
        bias = np.zeros(shape[0], dtype=np.int64) if l.bias is None else np.broadcast_to(l.bias, (shape[0],))
        wexp = first_exp if prev == encoder.name else 0
        is_last = i == last
        if is_last and kind == "SDNN" and "neurodeploy_readout_bias" in host:     # added by the host
            bias = np.asarray(host["neurodeploy_readout_bias"], dtype=np.int64).reshape(shape[0])
        nrn, bias_exp = _neuron(kind, neuron, is_last, reset, block, host, f"{where}: {l.where}", notes, name)
        ir_layers.append(Layer(name, shape, [Branch(prev, ops, wexp)], np.array(bias, dtype=np.int64), bias_exp,
                               nrn, np.asarray(1.0)))
        netx_index[name] = l.index
        prev, prev_shape, block = name, shape, block + 1
    net = SpikingGraph(SCHEME_OF[kind], target_name, ir_layers)
    _meta(net, nf, kind, mode, options, notes, netx_index, reset, head)
    return net


def _input_shape(head: NetxLayer | None, body: list, where: str) -> tuple:
    if head is not None:
        return tuple(head.shape)
    first = next(l for l in body if l.type in ("conv", "dense", "flatten"))
    if first.type == "dense":
        return (int(first.weight.shape[1]),)
    raise NeurodeployError(f"the network starts with a {first.type} layer and no input layer, so its input "
                           "shape is unknown (netx asks for input_shape too)", where,
                           "add an 'input' layer with the (C, H, W) shape to the file")


def _encoder(kind: str, head, host: dict, in_shape: tuple, options, nf: NetxFile, notes: list):
    """(input mode, InputEncoder, weight_exp of the synapses it feeds)."""
    one = np.asarray(1.0)
    scale, offset, step = (np.asarray(host.get(k, 1.0 if k != "neurodeploy_input_offset" else 0.0), dtype=np.float64)
                           for k in ("neurodeploy_input_scale", "neurodeploy_input_offset",
                                     "neurodeploy_input_value_step"))
    mode_opt = getattr(options, "input_mode", "auto") or "auto"
    if mode_opt not in INPUT_MODES:
        raise NeurodeployError(f"unknown input mode '{mode_opt}'", "--input-mode", f"use one of {', '.join(INPUT_MODES)}")
    bits_opt = getattr(options, "input_message_bits", None)
    if kind == "CUBA":
        steps = _steps(options, host, nf)
        if head is not None and head.neuron is not None:
            lo, hi = BIAS_INPUT_RANGE
            neuron = cb.CubaEncoder(code_max=hi, n_steps=steps, timesteps=steps, code_min=lo, drive="bias")
            return "bias", InputEncoder("input", in_shape, one, np.asarray(0.0), one, neuron), 0
        if host:
            mode = str(host["neurodeploy_input_mode"])
            lo, hi = int(host["neurodeploy_input_code_min"]), int(host["neurodeploy_input_code_max"])
        else:
            mode = "sequence" if mode_opt == "auto" else mode_opt
            lo, hi = _graded_range(int(bits_opt or 0))
        neuron = cb.CubaEncoder(code_max=hi, n_steps=steps, timesteps=int(host.get("neurodeploy_timesteps", steps)),
                                code_min=lo, sequence=mode == "sequence")
        return mode, InputEncoder("input", in_shape, scale, offset, step, neuron), 0
    # SDNN: a static input, sent once (the Delta sends a constant input's change once)
    if mode_opt == "sequence":
        raise UnsupportedError("sequence input into an SDNN network is not supported", "--input-mode",
                               "SDNN inputs are static frames, sent once as deltas")
    if head is not None and head.neuron is not None:
        lo, hi = DELTA_INPUT_RANGE
        neuron = sd.DeltaEncoder(code_max=hi, vth=head.neuron.vth, code_min=lo)
        return "delta", InputEncoder("input", in_shape, one, np.asarray(0.0), one, neuron), SPIKE_EXP
    if host:
        lo, hi = int(host["neurodeploy_input_code_min"]), int(host["neurodeploy_input_code_max"])
        neuron = sd.DeltaEncoder(code_max=hi, vth=int(host.get("neurodeploy_input_vth", 0)), code_min=lo)
        return "constant", InputEncoder("input", in_shape, scale, offset, step, neuron), \
            int(host["neurodeploy_input_shift"])
    lo, hi = _graded_range(int(bits_opt or 0))
    return "constant", InputEncoder("input", in_shape, one, np.asarray(0.0), one, sd.DeltaEncoder(hi, 0, lo)), 0


def _steps(options, host: dict, nf: NetxFile) -> int:
    t = getattr(options, "timesteps", None)
    if t is None and host:
        t = int(host["neurodeploy_n_steps"])
    if t is None:
        t = nf.t_sample
    if t is None or t < 1:
        raise NeurodeployError("a CUBA network runs for a number of steps the file does not give (no "
                               "simulation/tSample)", str(nf.path), "pass --timesteps T")
    return int(t)


def _reset(kind: str, options, host: dict, notes: list) -> tuple[int, int]:
    every = getattr(options, "reset_interval", None)
    base = int(getattr(options, "reset_offset", 0) or 0)
    if every is None and int(host.get("neurodeploy_reset_interval", 0)):      # as exported
        every, base = int(host["neurodeploy_reset_interval"]), int(host["neurodeploy_reset_offset"])
    if not every:
        return 0, 0
    if every < 1:
        raise NeurodeployError(f"reset interval {every} must be positive", "--reset-interval")
    if kind == "SDNN":
        notes.append("reset_interval ignored: netx does not reset sigma-delta neurons")
        return 0, 0
    return int(every), base + 1                   # netx: time starts from 1, first block at base + 1


def _lif(n: NetxNeuron, reset: tuple, block: int) -> cb.CubaLIF:
    every, base = reset
    return cb.CubaLIF(du=n.i_decay - 1, dv=n.v_decay, v_th_mant=n.vth, reset_interval=every,
                      reset_offset=(base + block) if every else 0)


def _neuron(kind, n: NetxNeuron, is_last: bool, reset, block: int, host: dict, where: str, notes: list, name: str):
    """(IR neuron, bias_exp) of one conv/dense block."""
    if kind == "SDNN":
        if n.sigma_output and not is_last:
            raise UnsupportedError("a Sigma (sigma_output) layer before the last layer", where,
                                   "only the readout may be a Sigma")
        if is_last:
            if not n.sigma_output:
                raise UnsupportedError("the last SDNN layer is not a Sigma readout (no neuron/sigma_output)", where,
                                       "end the network with slayer's sigma-delta Output block")
            return sd.Sigma(output_scale=float(host.get("neurodeploy_output_scale", 1.0))), 0
        return sd.SigmaDelta(vth=n.vth, code_max=SDNN_CODE_MAX, spike_exp=SPIKE_EXP, state_exp=STATE_EXP), 0
    if n.vth > cb.VTH_MAX:
        notes.append(f"{name}: vThMant {n.vth} is beyond Loihi 2's 17-bit threshold (Lava's CPU model runs it)")
    lif = _lif(n, reset, block)
    if not is_last:
        return lif, cb.NETX_BIAS_EXP
    output = str(host.get("neurodeploy_output", "v" if n.vth >= cb.VTH_MAX else "spikes"))
    return cb.CubaReadout(output_scale=float(host.get("neurodeploy_output_scale", 1.0)), du=lif.du, dv=lif.dv,
                          v_th_mant=lif.v_th_mant, window_start=int(host.get("neurodeploy_window_start", 0)),
                          reset_interval=lif.reset_interval, reset_offset=lif.reset_offset,
                          output=output), cb.NETX_BIAS_EXP


def _ops(l: NetxLayer, prev_shape: tuple, flatten: bool, where: str, notes: list) -> tuple[list, tuple]:
    if l.type == "conv":
        if flatten or len(prev_shape) != 3:
            raise UnsupportedError(f"a conv layer needs a (C, H, W) input, not {prev_shape}", where)
        w = l.weight
        c, hh, ww = prev_shape
        if w.shape[1] * l.groups != c:
            raise NeurodeployError(f"the weight {w.shape} with groups={l.groups} expects {w.shape[1] * l.groups} "
                                   f"input channels, the layer before has {c}", where)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = w.shape[2:], l.stride, l.padding, l.dilation
        shape = (w.shape[0], (hh + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (ww + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
        if shape != tuple(l.shape):
            raise NeurodeployError(f"shape {tuple(l.shape)} does not match the convolution's output {shape} of "
                                   f"a {prev_shape} input", where)
        return [syn.Conv(w, l.stride, l.padding, l.dilation, l.groups)], shape
    if len(prev_shape) == 3 and not flatten:
        raise UnsupportedError(f"a dense layer after a {prev_shape} layer without a flatten layer", where,
                               "netx connects a (C, H, W) layer to a dense one only through 'flatten'")
    w, more = lava_dense_weights(l.weight, where)
    notes += more
    if w.shape[1] != int(np.prod(prev_shape)):
        raise NeurodeployError(f"the weight has {w.shape[1]} inputs, the layer before has "
                               f"{int(np.prod(prev_shape))} neurons", where)
    ops = [syn.Flatten(), syn.Dense(w)] if len(prev_shape) == 3 else [syn.Dense(w)]
    return ops, (int(w.shape[0]),)


def _depth(net: SpikingGraph) -> int:
    hops = {net.input.name: 0}
    for l in net.neuron_layers():
        hops[l.name] = 1 + max(hops[b.source] for b in l.branches)
    return hops[net.output.name]


def _meta(net: SpikingGraph, nf: NetxFile, kind: str, mode: str, options, notes: list, netx_index: dict,
          reset: tuple, head) -> None:
    import hashlib
    depth = _depth(net)
    if kind == "CUBA":
        steps = int(net.input.neuron.n_steps)
        timing = {"latency_steps": steps, "throughput_steps": steps, "timesteps": steps, "depth": depth,
                  "time_steps_per_layer": {l.name: steps for l in net.layers[:-1]}}
    else:
        timing = {"latency_steps": depth + 1, "throughput_steps": depth + 1}
    net.meta.update(timing)
    net.meta.update({
        "neurodeploy_version": __version__,
        "model": {"file": nf.path.name, "sha256": hashlib.sha256(nf.path.read_bytes()).hexdigest()},
        "netx": {"file": nf.path.name, "neurons": kind, "input": mode, "layers": netx_index,
                 "input_message_bits": getattr(options, "input_message_bits", None),
                 "reset_interval": reset[0], "reset_offset": int(getattr(options, "reset_offset", 0) or 0),
                 "input_transform": dict(head.transform) if head is not None else {},
                 "t_sample": nf.t_sample, "spike_exp": SPIKE_EXP,
                 "from_neurodeploy": bool(nf.attrs)},
        "notes": _describe(net, kind, mode, reset) + notes,
        "quantisation": {},
    })


def _describe(net: SpikingGraph, kind: str, mode: str, reset: tuple) -> list[str]:
    """What a reader of the compile summary needs to feed and read the imported network."""
    from ...arrays import sample_shape
    enc = net.input.neuron
    shape = ", ".join(str(s) for s in sample_shape(net))
    rng = f"integers {int(getattr(enc, 'code_min', 0))}..{int(enc.code_max)}"
    how = {"bias": f"x (N, {shape}) is the input layer's bias_mant ({rng}), added every step",
           "delta": f"x (N, {shape}) is what the input Delta receives ({rng}); the first synapses see x << 6 once",
           "sequence": f"x (N, {shape}) holds one input frame per step ({rng})",
           "constant": f"x (N, {shape}) is sent " + ("every step" if net.scheme == "cuba" else "once, at the first step")
                       + f" ({rng})"}[mode]
    lines = [f"imported from NetX ({kind} neurons, integers as in the file, "
             f"bit-exact with netx.hdf5.Network in Lava fixed_pt): {how}"]
    out = net.output.neuron
    if net.scheme == "cuba":
        what = "spike count" if getattr(out, "output", "v") == "spikes" else "voltage v"
        lines.append(f"output: the last layer's {what} after {int(enc.n_steps)} steps, x {out.output_scale:g}")
    else:
        lines.append(f"output: the Sigma readout's sigma once settled, x {out.output_scale:g}")
    if reset[0]:
        lines.append(f"CUBA neurons reset every {reset[0]} steps (netx reset_interval; block k at t % {reset[0]} "
                     f"== {reset[1]} + k)")
    return lines
