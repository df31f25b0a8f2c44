"""The layer groups of a Lava-DL NetX HDF5 file, shared by the sdnn and cuba exporters.

NetX (lava-dl 0.6.0 `netx.hdf5.Network`, loihi.md §D) reads `layer/0`, `layer/1`, ... in
order; each group has a fixed-length ASCII `type` ('input', 'conv', 'dense', 'flatten') and
the fields of its kind, integers as int64, shapes as (C, H, W) or (F,).  The neuron group
(`neuron/...`) and `bias` depend on the scheme and are written by the caller on the group
that `conv` / `dense` return.
"""
from __future__ import annotations

import numpy as np


def write_str(g, key: str, value: str) -> None:
    """A fixed-length ASCII string dataset, as NetX reads its `type` fields."""
    g.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _ints(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


class NetxLayers:
    """Appends numbered layer groups to the `layer` group of an open h5py file."""

    def __init__(self, h5file):
        self.group = h5file.create_group("layer")
        self.count = 0

    def new(self, kind: str):
        g = self.group.create_group(str(self.count))
        self.count += 1
        write_str(g, "type", kind)
        return g

    def input(self, shape):
        g = self.new("input")
        g.create_dataset("shape", data=_ints(shape))
        return g

    def flatten(self, features: int):
        g = self.new("flatten")
        g.create_dataset("shape", data=_ints((int(features), 1, 1)))
        return g

    def conv(self, out_shape, in_channels: int, stride, padding, dilation, groups: int, weight):
        """A 'conv' layer; `weight` in PyTorch OIHW layout (kernel size and out channels from it)."""
        w = np.asarray(weight, dtype=np.int64)
        g = self.new("conv")
        g.create_dataset("shape", data=_ints(out_shape))
        g.create_dataset("inChannels", data=np.int64(in_channels))
        g.create_dataset("outChannels", data=np.int64(w.shape[0]))
        g.create_dataset("kernelSize", data=_ints(w.shape[2:]))
        g.create_dataset("stride", data=_ints(stride))
        g.create_dataset("padding", data=_ints(padding))
        g.create_dataset("dilation", data=_ints(dilation))
        g.create_dataset("groups", data=np.int64(groups))
        g.create_dataset("weight", data=w)
        return g

    def dense(self, weight):
        """A 'dense' layer; `weight` (out, in)."""
        w = np.asarray(weight, dtype=np.int64)
        g = self.new("dense")
        g.create_dataset("shape", data=_ints((w.shape[0],)))
        g.create_dataset("inFeatures", data=np.int64(w.shape[1]))
        g.create_dataset("outFeatures", data=np.int64(w.shape[0]))
        g.create_dataset("weight", data=w)
        return g
