"""Lava-DL NetX HDF5 export of `sdnn` networks, used the standard way:

    net = netx.hdf5.Network(net_config=path, input_message_bits=B)   # B: the file's attribute
    RingBuffer source -> net.inp ;  net.out -> RingBuffer sink       # Loihi2SimCfg fixed_pt or the chip

What we write (lava-dl 0.6.0's reader, docs/loihi.md §D):

  layer/0      type 'input' with the shape (C,H,W) or (F,) and no neuron, so that netx makes
               `net.inp` the first synapses' own port, taking graded input of
               `input_message_bits` bits.  (An input layer with a neuron would make netx build
               a Delta whose port it leaves unconnected: a source on net.inp then fails in Lava's
               compiler.)  The host sends each input code shifted left by the first synapses'
               weight_exp (`neurodeploy_input_shift`) at the first step and 0 afterwards: the
               change of a static input, as a Delta encoder would send it.
  per layer    its branch ops in order:
               SumPool  -> folded into the next Conv / Flatten+Dense (`fold_pool`: a strided
                           convolution with the kernel repeated over the window; exact, no
                           extra layer) when the pool does not overlap and divides its input;
                           otherwise a 'conv' layer with weight 64 on the channel diagonal,
                           stride = the pool's, SDNN vThMant 0, no bias: act = 64 * window
                           sum, forwarded one step later (NetX has no pooling layer); exact
                           while the pooled layer's running payload sums stay >= 0 (its
                           ReLU), which holds whenever that layer's codes are exact.
               Flatten  -> 'flatten' (NetX connects the next dense through WHC -> CHW, i.e.
                           PyTorch's flatten order); an input flattened straight into a dense
                           layer is written as a flat input instead (NetX's Input -> flatten ->
                           dense connection fails at run time in Lava 0.10)
               Conv     -> 'conv' (weight OIHW, kernelSize/stride/padding/dilation (y, x),
                           groups), Dense -> 'dense' (weight (out, in))
               the weighted op carries the neuron: SDNN with vThMant = vth and `bias`
               (integer, scaled by 2^12 in Lava; left out when all 0); the readout is a
               dense/conv with neuron/sigma_output -> Lava `Sigma`, whose sigma `net.out`
               sends every step; Sigma has no bias: the host adds `neurodeploy_readout_bias`.
  root attributes   the host side (input codes, shift, steps, output decoding): netx_host.
Weights are the IR's integers: even numbers in [-254, 254], which NetX's
`optimize_weight_bits` (dense) round-trips unchanged and the fixed-point Conv uses raw.
Residual adds (a layer with more than one branch, or fed by a layer other than the one
before it) and max pooling cannot be expressed in NetX: NeurodeployError.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...backends.netx_host import host_attrs, write_attrs
from ...backends.netx_layers import NetxLayers, write_str
from ...errors import NeurodeployError
from ...ir import synapses as syn
from ...ir.spiking import SpikingGraph
from . import neurons as sd

POOL_WEIGHT = 64            # 1 << state_exp: a pool layer's act is 64 x its window sum


def cli_export(net: SpikingGraph, out, args=None) -> str:
    """`neurodeploy export DIR --format netx -o FILE` for sdnn networks: a readable summary."""
    from ...backends.netx_host import instructions
    check_expressible(net, str(getattr(args, "compiled", "netx export")))
    n = export_netx(net, out)
    return f"wrote {out}: Lava-DL NetX HDF5, {n} layers of sigma-delta neurons\n" + instructions(out)


def check_expressible(graph: SpikingGraph, where: str = "netx export") -> None:
    if graph.scheme != "sdnn":
        raise NeurodeployError(f"NetX export supports the sdnn scheme, not '{graph.scheme}'", where,
                               "compile with --scheme sdnn")
    prev = graph.input.name
    for layer in graph.neuron_layers():
        if len(layer.branches) != 1 or layer.branches[0].source != prev:
            raise NeurodeployError("a layer with several source layers (a residual add / skip connection, or a "
                                   "Concat's parts) cannot be expressed in NetX (its networks are chains of layers)",
                                   f"layer '{layer.name}'",
                                   "export a chain of layers without residual connections or Concat, or use the "
                                   "Lava back end")
        b = layer.branches[0]
        if b.weight_exp and b.source != graph.input.name:
            raise NeurodeployError("a hidden weight exponent cannot be expressed in NetX", f"layer '{layer.name}'")
        for op in b.ops:
            if isinstance(op, syn.MaxPool):
                raise NeurodeployError("max pooling cannot be expressed in NetX", f"layer '{layer.name}'")
            if isinstance(op, syn.ChannelScale):
                raise NeurodeployError("a channel scale (identity path) cannot be expressed in NetX",
                                       f"layer '{layer.name}'")
            if isinstance(op, syn.SumPool) and any(op.padding):
                raise NeurodeployError("padded pooling cannot be expressed in NetX", f"layer '{layer.name}'")
            if isinstance(op, syn.WEIGHTED):
                w = np.asarray(op.weight, dtype=np.int64)
                if isinstance(op, syn.Dense) and (np.any(w % 2) or w.min() < -256 or w.max() > 254):
                    raise NeurodeployError("dense weights must be even integers in [-256, 254] for NetX's "
                                           "optimize_weight_bits", f"layer '{layer.name}'")
        if not layer.is_readout and not isinstance(layer.neuron, sd.SigmaDelta):
            raise NeurodeployError(f"{type(layer.neuron).__name__} has no NetX neuron", f"layer '{layer.name}'")
        if not layer.is_readout and np.any(np.abs(layer.bias) > (1 << 15) - 1):
            raise NeurodeployError("bias beyond Lava's 16-bit SigmaDelta bias", f"layer '{layer.name}'")
        prev = layer.name


def input_shift(graph: SpikingGraph) -> int:
    return int(graph.neuron_layers()[0].branches[0].weight_exp)


def _neuron(g, vth: int, sigma_output: bool = False) -> None:
    write_str(g, "neuron/type", "SDNN")
    g.create_dataset("neuron/vThMant", data=np.int64(vth))
    if sigma_output:
        g.create_dataset("neuron/sigma_output", data=True)


def fold_pool(ops: list, in_shape: tuple) -> list:
    """Fold a leading non-overlapping SumPool (kernel == stride, input divisible by it) into the
    weighted op after it: SumPool(k) -> Conv(W, stride t, padding p) is Conv(W', stride t*k,
    padding p*k) with W' = W repeated k x k times (each pooled tap becomes a k x k block of
    the same weight); SumPool(k) -> Flatten -> Dense(W) is Flatten -> Dense(W') with each
    column repeated over its window.  The weights keep their values (even, <= 254): exact,
    and no extra layer or time step.  Anything else is returned unchanged."""
    if len(ops) < 2 or not isinstance(ops[0], syn.SumPool):
        return ops
    pool = ops[0]
    (kh, kw), (sh, sw) = pool.kernel, pool.stride
    c, hh, ww = in_shape
    if (kh, kw) != (sh, sw) or any(pool.padding) or hh % kh or ww % kw:
        return ops
    nxt = ops[1]
    if isinstance(nxt, syn.Conv) and tuple(nxt.dilation) == (1, 1):
        w = np.repeat(np.repeat(np.asarray(nxt.weight), kh, axis=2), kw, axis=3)
        conv = syn.Conv(w, (nxt.stride[0] * kh, nxt.stride[1] * kw), (nxt.padding[0] * kh, nxt.padding[1] * kw),
                        (1, 1), nxt.groups)
        return [conv] + list(ops[2:])
    if isinstance(nxt, syn.Flatten) and len(ops) > 2 and isinstance(ops[2], syn.Dense):
        w = np.asarray(ops[2].weight).reshape(-1, c, hh // kh, ww // kw)
        w = np.repeat(np.repeat(w, kh, axis=2), kw, axis=3).reshape(w.shape[0], -1)
        return [syn.Flatten(), syn.Dense(w)] + list(ops[3:])
    return ops


def _write(graph: SpikingGraph, h) -> int:
    layers = NetxLayers(h)
    shape = tuple(graph.input.shape)
    first_ops = fold_pool(graph.neuron_layers()[0].branches[0].ops, shape)
    flat_input = isinstance(first_ops[0], syn.Flatten)
    if flat_input:      # the input Delta is silent anyway: give it the flat shape, no flatten layer
        shape = (int(np.prod(shape)),)
    layers.input(shape)                 # no neuron: net.inp is the first synapses' port
    for li, layer in enumerate(graph.neuron_layers()):
        ops = fold_pool(layer.branches[0].ops, shape) if li else first_ops
        if li == 0 and flat_input:
            ops = ops[1:]
        for i, op in enumerate(ops):
            last_weighted = isinstance(op, syn.WEIGHTED)
            if isinstance(op, syn.SumPool):
                c, hh, ww = shape
                kh, kw = op.kernel
                sh, sw = op.stride
                shape = (c, (hh - kh) // sh + 1, (ww - kw) // sw + 1)
                w = np.zeros((c, c, kh, kw), dtype=np.int64)
                w[np.arange(c), np.arange(c)] = POOL_WEIGHT
                _neuron(layers.conv(shape, c, (sh, sw), (0, 0), (1, 1), 1, w), 0)
            elif isinstance(op, syn.Flatten):
                shape = (int(np.prod(shape)),)
                layers.flatten(shape[0])
            elif isinstance(op, syn.Conv):
                w = np.asarray(op.weight, dtype=np.int64)
                c, hh, ww = shape
                kh, kw = w.shape[2:]
                (ph, pw), (sh, sw), (dh, dw) = op.padding, op.stride, op.dilation
                shape = (w.shape[0], (hh + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
                         (ww + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
                g = layers.conv(shape, c, op.stride, op.padding, op.dilation, op.groups, w)
            elif isinstance(op, syn.Dense):
                g = layers.dense(op.weight)
                shape = (int(np.asarray(op.weight).shape[0]),)
            if last_weighted:
                assert i == len(ops) - 1, "the weighted op must end the branch"
                if tuple(shape) != tuple(layer.shape):
                    raise NeurodeployError(f"shape {shape} != {layer.shape}", f"layer '{layer.name}'")
                if layer.is_readout:
                    _neuron(g, 0, sigma_output=True)
                else:
                    if np.any(layer.bias):
                        g.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.int64))
                    _neuron(g, int(layer.neuron.vth))
    from .kernel import settle_steps
    write_attrs(h, host_attrs(graph, n_steps=settle_steps(graph) + extra_delay(graph), shift=input_shift(graph),
                              mode="constant", output="sigma", readout_bias=graph.output.bias,
                              input_vth=graph.input.neuron.vth))
    return layers.count


def export_netx(graph: SpikingGraph, path: str | Path) -> int:
    """Write `graph` (scheme sdnn, a chain) as a NetX HDF5 file, atomically; returns the
    number of NetX layers (pool layers included)."""
    check_expressible(graph)
    from ...fsutil import atomic_hdf5
    with atomic_hdf5(path) as h:
        n = _write(graph, h)
    return n


def netx_ops(graph: SpikingGraph) -> dict:
    shapes = {l.name: tuple(l.shape) for l in graph.layers}
    return {l.name: fold_pool(l.branches[0].ops, shapes[l.branches[0].source]) for l in graph.neuron_layers()}


def extra_delay(graph: SpikingGraph) -> int:
    """Steps NetX's chain is longer than our graph: one per pooling layer not folded."""
    return sum(isinstance(op, syn.SumPool) for ops in netx_ops(graph).values() for op in ops)


def block_index(graph: SpikingGraph) -> dict:
    """Our layer name -> index of the NetX block (`net.layers[i]`) that holds its neuron."""
    out, i = {}, 0                      # the input layer has no neuron: no block
    for name, ops in netx_ops(graph).items():
        for op in ops:
            if isinstance(op, (syn.SumPool, syn.Conv, syn.Dense)):
                i += 1
        out[name] = i - 1
    return out
