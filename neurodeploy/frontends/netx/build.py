"""A checked NetX file (`reader.NetxFile`) -> the spiking IR, in the neurons of the scheme that holds its family.

NetX (lava-dl 0.6.0 `netx.hdf5.Network`) builds one Lava block per `input` (with a neuron),
`conv` and `dense` layer: a synapse (Conv / Dense, one step of delay) and a neuron (LIF for
CUBA/LOIHI, SigmaDelta or Sigma for SDNN, Delta for an SDNN input layer).  The IR keeps that
network as it is, integer for integer, so that our simulator equals netx run in Lava fixed_pt.
This module builds what every family shares:

  conv      -> Conv(weight as in the file: PyTorch OIHW correlation, stride/padding/dilation (y, x))
  flatten   -> the next dense layer's branch starts with Flatten (netx: WHC -> CHW -> flat)
  dense     -> Dense(the weights Lava's Dense computes with, `dense_weights.lava_dense_weights`)

and asks the scheme whose `netx_neurons` hold the file's neuron family (`Scheme.netx_files()`, its
`netx.py`: cuba for CUBA/LOIHI, sdnn for SDNN) for the rest: the input encoder, the neuron of
each block, the bias and its exponent, the run's timing and what the summary says.

How the input enters (`meta["netx"]["input"]`), the one thing a NetX file leaves to its user:
  "bias"      an input layer with a CUBA neuron: netx leaves its port unconnected and Lava-DL
              drives it through its `bias_mant` (the PilotNet LIF tests): x holds that bias per
              neuron
  "delta"     an input layer with an SDNN neuron (Lava's Delta, fed at its a_in in Lava-DL's
              tests): x holds the integers sent to it, the first synapses see x << 6 once
  "sequence"  no input neuron, spikes at `net.inp`: x is (N, T, *shape), one frame per step
              (binary spikes unless `input_message_bits`)
  "constant"  the same frame at every step (CUBA), or once at the first step (SDNN, deltas)
A file written by `neurodeploy export --format netx` carries its own convention (root
attributes, `backends.netx_host`), so importing it gives back the network that was exported.

Options (`options.NetxOptions`): `timesteps` (CUBA run length; default the file's
simulation/tSample or the exported n_steps), `reset_interval` / `reset_offset` (netx's LIFReset
arguments: block k resets at steps t with t % interval == reset_offset + 1 + k),
`input_message_bits` (graded input into `net.inp`, netx's argument of that name) and
`input_mode` (auto / sequence / constant).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ... import __version__
from ...errors import NeurodeployError, UnsupportedError
from ...ir import synapses as syn
from ...ir.spiking import Branch, Layer, SpikingGraph
from ...ir.validate import Formats
from ...target import load_target
from .dense_weights import lava_dense_weights
from .options import INPUT_MODES
from .reader import NetxFile, NetxLayer, NetxNeuron

SPIKE_EXP = 6                               # netx's default (Network(spike_exp=6))
NETX_DEFAULT_NEURON = NetxNeuron("CUBA", vth=1 << 17, i_decay=0, v_decay=4096)   # hdf5.py: `1 << 18 - 1`


def graded_range(bits: int) -> tuple[int, int]:
    """The codes `input_message_bits` = bits carry into net.inp: (0, 1) binary spikes for 0, else signed."""
    return (0, 1) if bits == 0 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def host_input(host: dict) -> tuple:
    """(scale, offset, value step) of the input quantiser a file of our own export records (else 1, 0, 1)."""
    return tuple(np.asarray(host.get(k, 0.0 if k == "neurodeploy_input_offset" else 1.0), dtype=np.float64)
                 for k in ("neurodeploy_input_scale", "neurodeploy_input_offset", "neurodeploy_input_value_step"))


def input_mode_option(options) -> str:
    mode = options.input_mode or "auto"
    if mode not in INPUT_MODES:
        raise NeurodeployError(f"unknown input mode '{mode}'", "--input-mode", f"use one of {', '.join(INPUT_MODES)}")
    return mode


def scheme_of(kind: str, where: str):
    """The registered scheme whose neurons hold NetX neurons of this family."""
    from ...registry import all_schemes
    for scheme in all_schemes():
        if kind in scheme.netx_neurons:
            return scheme
    raise UnsupportedError(f"no scheme holds NetX {kind} neurons", where)


def build_graph(nf: NetxFile, options, target_name: str) -> SpikingGraph:
    """`options`: a checked `options.NetxOptions`."""
    where = str(nf.path)
    kinds = {l.neuron.kind for l in nf.layers if l.neuron is not None}
    if not kinds:
        raise NeurodeployError("no layer has a neuron", where, "pass a NetX network of CUBA or SDNN neurons")
    if len(kinds) > 1:
        raise UnsupportedError("the network mixes CUBA and SDNN neurons", where,
                               "neurodeploy imports networks of one neuron family")
    kind = kinds.pop()
    tgt = load_target(target_name)
    scheme = scheme_of(kind, where)
    fam = scheme.netx_files()
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
    mode, encoder, first_exp = fam.encoder(head, host, in_shape, options, nf)
    ir_layers: list = [encoder]
    netx_index = {}
    prev, prev_shape = encoder.name, in_shape
    reset = _reset(fam, options, host, notes)
    block = 0
    if head is not None and head.neuron is not None:          # a block of its own (its reset offset)
        first = fam.input_layer(head.neuron, encoder, in_shape, reset)
        if first is not None:                                 # its neuron is a layer of ours too
            ir_layers.append(first)
            netx_index[first.name] = 0
            prev = first.name
        block = 1
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
        nrn, bias, bias_exp = fam.neuron(neuron, np.array(bias, dtype=np.int64), i == last, reset, block, host,
                                         f"{where}: {l.where}", notes, name)
        formats = Formats(tgt, nrn.formats(tgt, from_input=prev == encoder.name))
        ops, wexp = fit_mantissas(ops, wexp, formats, f"{where}: {l.where}")
        ir_layers.append(Layer(name, shape, [Branch(prev, ops, wexp)], np.array(bias, dtype=np.int64), bias_exp,
                               nrn, np.asarray(1.0)))
        netx_index[name] = l.index
        prev, prev_shape, block = name, shape, block + 1
    net = SpikingGraph(scheme.name, target_name, ir_layers)
    _meta(net, nf, fam, kind, mode, options, notes, netx_index, reset, head)
    return net


def fit_mantissas(ops: list, weight_exp: int, tgt, where: str) -> tuple[list, int]:
    """(ops, weight_exp) with every weight a mantissa within `tgt.weight_mant_max` (the target's,
    or the layer's neuron's own format: `ir.validate.Formats`).

    The IR holds weights as mantissa << weight_exp (Loihi's 8-bit weights and their exponent);
    netx's weights are integers up to 254 (slayer writes even ones in [-256, 254]).  Factoring a
    power of two out of a branch is exact: ((W >> e) . s) << (weight_exp + e) = (W . s) << weight_exp
    when every W is a multiple of 2^e.  A branch whose weights cannot be written so is refused."""
    mant_max, exp_max = int(tgt.weight_mant_max), int(tgt.weight_exp_max)
    weights = [np.asarray(op.weight, dtype=np.int64) for op in ops if hasattr(op, "weight")]
    if not weights:
        return ops, weight_exp
    shift = 0
    while max(int(np.abs(w).max(initial=0)) for w in weights) > mant_max << shift:
        if weight_exp + shift + 1 > exp_max or any(np.any(w % (1 << (shift + 1))) for w in weights):
            raise UnsupportedError(f"weights up to {max(int(np.abs(w).max()) for w in weights)} are not "
                                   f"mantissas of at most {mant_max} times a power of two "
                                   f"({tgt.name}'s {tgt.weight_mant_bits}-bit weights)", where,
                                   "write even integer weights in [-254, 254], as slayer does")
        shift += 1
    if not shift:
        return ops, weight_exp
    fitted = [dataclasses.replace(op, weight=np.asarray(op.weight, dtype=np.int64) >> shift)
              if hasattr(op, "weight") else op for op in ops]
    return fitted, weight_exp + shift


def _input_shape(head: NetxLayer | None, body: list, where: str) -> tuple:
    if head is not None:
        return tuple(head.shape)
    first = next(l for l in body if l.type in ("conv", "dense", "flatten"))
    if first.type == "dense":
        return (int(first.weight.shape[1]),)
    raise NeurodeployError(f"the network starts with a {first.type} layer and no input layer, so its input "
                           "shape is unknown (netx asks for input_shape too)", where,
                           "add an 'input' layer with the (C, H, W) shape to the file")


def _reset(fam, options, host: dict, notes: list) -> tuple[int, int]:
    """(reset interval, the first block's reset step) of netx's LIFReset; (0, 0) for no reset."""
    every = options.reset_interval
    base = int(options.reset_offset or 0)
    if every is None and int(host.get("neurodeploy_reset_interval", 0)):      # as exported
        every, base = int(host["neurodeploy_reset_interval"]), int(host["neurodeploy_reset_offset"])
    if not every:
        return 0, 0
    if every < 1:
        raise NeurodeployError(f"reset interval {every} must be positive", "--reset-interval")
    if not fam.RESETS:
        notes.append(f"reset_interval ignored: netx does not reset {fam.NEURONS}")
        return 0, 0
    return int(every), base + 1                   # netx: time starts from 1, first block at base + 1


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


def _meta(net: SpikingGraph, nf: NetxFile, fam, kind: str, mode: str, options, notes: list, netx_index: dict,
          reset: tuple, head) -> None:
    from ...fsutil import file_sha256
    from ...sim.core import depth
    net.meta.update(fam.timing(net, depth(net)))
    net.meta.update({
        "neurodeploy_version": __version__,
        "model": {"file": nf.path.name, "sha256": file_sha256(nf.path)},
        "netx": {"file": nf.path.name, "neurons": kind, "input": mode, "layers": netx_index,
                 "input_message_bits": options.input_message_bits,
                 "reset_interval": reset[0], "reset_offset": int(options.reset_offset or 0),
                 "input_transform": dict(head.transform) if head is not None else {},
                 "t_sample": nf.t_sample, "spike_exp": SPIKE_EXP,
                 "from_neurodeploy": bool(nf.attrs)},
        "notes": _describe(net, fam, kind, mode, reset) + notes,
        "quantisation": {},
    })


def _describe(net: SpikingGraph, fam, kind: str, mode: str, reset: tuple) -> list[str]:
    """What a reader of the compile summary needs to feed and read the imported network."""
    from ...arrays import sample_shape
    enc = net.input.neuron
    shape = ", ".join(str(s) for s in sample_shape(net))
    rng = f"integers {int(enc.code_min)}..{int(enc.code_max)}"
    how = {"bias": f"x (N, {shape}) is the input layer's bias_mant ({rng}), added every step",
           "delta": f"x (N, {shape}) is what the input Delta receives ({rng}); the first synapses see x << 6 once",
           "sequence": f"x (N, {shape}) holds one input frame per step ({rng})",
           "constant": f"x (N, {shape}) is sent {fam.CONSTANT_INPUT} ({rng})"}[mode]
    lines = [f"imported from NetX ({kind} neurons, integers as in the file, "
             f"bit-exact with netx.hdf5.Network in Lava fixed_pt): {how}", fam.output_note(net)]
    if reset[0]:
        lines.append(f"CUBA neurons reset every {reset[0]} steps (netx reset_interval; block k at t % {reset[0]} "
                     f"== {reset[1]} + k)")
    return lines
