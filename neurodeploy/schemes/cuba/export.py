"""Lava-DL NetX HDF5 export of `cuba` networks (`lava.lib.dl.netx.hdf5.Network(net_config=path)`)."""
from __future__ import annotations

import numpy as np

from ...backends.netx_layers import NetxLayers, write_str
from ...errors import NeurodeployError, UnsupportedError
from ...ir.spiking import SpikingGraph
from . import neurons as cb


def _netx_neuron(g, neuron) -> None:
    write_str(g, "neuron/type", "CUBA")
    g.create_dataset("neuron/iDecay", data=int(neuron.du) + 1)        # netx: du = iDecay - 1
    g.create_dataset("neuron/vDecay", data=int(neuron.dv))
    g.create_dataset("neuron/vThMant", data=int(neuron.v_th_mant))
    g.create_dataset("neuron/refDelay", data=1)                      # ignored by netx
    g.create_dataset("neuron/gradedSpike", data=False)


def export_netx(graph: SpikingGraph, path) -> dict:
    """Write a compiled sequential cuba network as a Lava-DL NetX HDF5 file (loihi.md §D).

    Layers: `input` (shape only), then per layer one `conv` (kernel W_mant << weight_exp in
    PyTorch OIHW layout, pooling folded in by `backends.lava.mapping.map_branch`) or
    `dense` (weights 2 W_mant, i.e. weight_exp must be 1; preceded by a `flatten` when the
    source is (C, H, W)), each with its CUBA neuron group and `bias` = bias_mant (netx uses
    bias_exp 6).  Load with ``netx.hdf5.Network(net_config=path, input_message_bits=B)``
    with B >= the input codes' bits (graded input).  The host feeds the input codes at every
    one of `n_steps` steps and reads the last layer's v after step window_start and n_steps.
    Returns {"input_message_bits", "n_steps", "window_start", "output_scale"}.
    """
    from ...backends.lava.mapping import ConvStage, DenseStage, map_branch

    if graph.scheme != "cuba":
        raise NeurodeployError(f"a '{graph.scheme}' network cannot be exported to NetX", "export_netx",
                               "compile with --scheme cuba")
    enc = graph.input
    prev, shape = enc.name, tuple(enc.shape)
    from ...fsutil import atomic_hdf5
    with atomic_hdf5(path) as h:
        layers = NetxLayers(h)
        layers.input(shape)
        for layer in graph.neuron_layers():
            if len(layer.branches) != 1 or layer.branches[0].source != prev:
                raise UnsupportedError("NetX holds sequential networks only", f"layer '{layer.name}'")
            plan = map_branch(layer.branches[0], shape)
            if len(plan.stages) != 1:
                raise UnsupportedError("the synapses do not fold into one Conv/Dense", f"layer '{layer.name}'")
            st = plan.stages[0]
            if isinstance(st, ConvStage):
                w = np.asarray(st.weight, dtype=np.int64) << int(st.shift)
                g = layers.conv(layer.shape, shape[0], st.stride, st.padding, st.dilation, st.groups, w)
            elif isinstance(st, DenseStage):
                w = np.asarray(st.weight, dtype=np.int64) << int(st.shift)
                if np.any(w % 2) or w.max(initial=0) > 254 or w.min(initial=0) < -256:
                    raise UnsupportedError("Dense weights are not even integers in [-256, 254] (weight_exp != 1)",
                                           f"layer '{layer.name}'", "compile with Cuba(netx=True)")
                if len(shape) == 3:
                    layers.flatten(int(np.prod(shape)))
                g = layers.dense(w.reshape(int(np.prod(layer.shape)), -1))
            else:
                raise UnsupportedError(f"{type(st).__name__} has no NetX layer", f"layer '{layer.name}'")
            g.create_dataset("bias", data=np.asarray(layer.bias_mant, dtype=np.int64))
            if layer.bias_exp != cb.NETX_BIAS_EXP:
                raise UnsupportedError(f"bias_exp {layer.bias_exp} (NetX uses 6)", f"layer '{layer.name}'")
            _netx_neuron(g, layer.neuron)
            prev, shape = layer.name, tuple(layer.shape)
    return {"input_message_bits": max(1, int(enc.neuron.code_max).bit_length()) if enc.neuron.code_max > 1 else 0,
            "n_steps": int(enc.neuron.n_steps), "window_start": int(getattr(graph.output.neuron, "window_start", 0)),
            "output_scale": float(graph.output.neuron.output_scale)}
