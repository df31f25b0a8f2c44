"""Read a Lava-DL NetX HDF5 file (`.net`) with h5py, checking every dataset netx would use.

What `lava.lib.dl.netx.hdf5.Network` (lava-dl 0.6.0, shared/docs/loihi.md §D) reads, and how
this reader checks it (every failure names the file and the layer, `layer/<i>`):

  layer/<i>            consecutive integer keys 0..n-1, read in numeric order
    type               'input' | 'conv' | 'dense' | 'flatten' (an ASCII string, scalar or (1,));
                       'pool', 'average', 'concat', 'convT', 'unpool' (netx cannot build them),
                       'dense_rec', 'dense_comp' and RF neurons (netx can, neurodeploy cannot
                       simulate them) are refused
    shape              (C, H, W) or (F,) (dense also (F, 1, 1)), positive integers
    weight             integer values (netx casts with astype(int), truncating fractions: a
                       fractional weight is refused, not truncated); conv (out, in/groups, kH, kW)
                       PyTorch correlation order, dense (out, in) or flat
    bias               integer values; conv per channel (out,), dense scalar or (out,)
    stride, padding, dilation   a scalar or (y, x); groups a positive integer
    inChannels, outChannels, kernelSize, inFeatures, outFeatures   optional, checked against weight
    delay              axonal delays: refused (not simulated)
    neuron/type        'CUBA' | 'LOIHI' (Lava LIF) | 'SDNN' (Delta / SigmaDelta / Sigma)
    neuron/vThMant     CUBA: 0 <= vth < 2^24 (Loihi 2 holds 17 bits, see `notes`); SDNN: 0..2047
                       (vth << 12 must fit the 24-bit state)
    neuron/iDecay, vDecay   CUBA: 0..4096 (netx: du = iDecay - 1, dv = vDecay)
    neuron/sigma_output     SDNN: a Sigma readout (no bias)
    neuron/messageBits      refused: netx 0.6.0 reads it as an object, not a number
  simulation/tSample   optional: samples' length in steps (the default run length of a CUBA file)
  root attributes neurodeploy_*   the host-side input/output conventions of a file written by
                       `neurodeploy export --format netx` (backends.netx_host)

Values are returned as plain numpy data (`NetxFile`); `frontends.netx.build` turns them into
the spiking IR.  Nothing here imports Lava.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import NeurodeployError, UnsupportedError

SUPPORTED_TYPES = ("input", "conv", "dense", "flatten")
NETX_CANNOT = ("pool", "average", "concat", "convT", "unpool")      # netx 0.6.0: NotImplementedError
NOT_SIMULATED = ("dense_rec", "dense_comp")
CUBA_TYPES = ("CUBA", "LOIHI")
DECAY_MAX = 4096
SDNN_VTH_MAX = ((1 << 23) - 1) >> 12      # vth << (spike_exp + state_exp) within the 24-bit state
CUBA_VTH_LIMIT = 1 << 24                  # beyond any 24-bit v << 6 comparison: never fires


@dataclass
class NetxNeuron:
    kind: str                   # "CUBA" (LIF) or "SDNN"
    vth: int
    i_decay: int = 0            # CUBA only
    v_decay: int = 0
    sigma_output: bool = False  # SDNN readout (Lava Sigma)


@dataclass
class NetxLayer:
    index: int
    type: str
    shape: tuple                # (C, H, W) or (F,) as the file holds it
    neuron: NetxNeuron | None = None
    weight: np.ndarray | None = None        # int64
    bias: np.ndarray | None = None          # int64
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    transform: dict = field(default_factory=dict)   # input layer: netx's `transform` (weight, bias)

    @property
    def where(self) -> str:
        return f"layer/{self.index} ({self.type})"


@dataclass
class NetxFile:
    path: Path
    layers: list
    t_sample: int | None = None               # simulation/tSample
    attrs: dict = field(default_factory=dict)   # root attributes written by neurodeploy's exporter


class _Reader:
    """Typed access to one layer group, every failure naming the file and the layer."""

    def __init__(self, path: Path, group, where: str):
        self.path, self.group, self.where = path, group, where

    def fail(self, what: str, hint: str = "", cls=NeurodeployError):
        raise cls(what, f"{self.path}: {self.where}", hint)

    def has(self, key: str) -> bool:
        return key in self.group

    def raw(self, key: str):
        import h5py
        obj = self.group.get(key)
        if obj is None:
            self.fail(f"missing dataset '{key}'", "the file is not a complete NetX network")
        if not isinstance(obj, h5py.Dataset):
            self.fail(f"'{key}' is a group, not a dataset")
        if obj.dtype.kind in "OSU":
            return obj[()]
        if obj.dtype.kind not in "biuf":
            self.fail(f"'{key}' has dtype {obj.dtype}, not a number")
        return np.asarray(obj[()])

    def string(self, key: str) -> str:
        v = self.raw(key)
        if isinstance(v, np.ndarray):
            if v.size != 1:
                self.fail(f"'{key}' holds {v.size} values, expected one string")
            v = v.reshape(-1)[0]
        if isinstance(v, bytes):
            try:
                return v.decode("ascii")
            except UnicodeDecodeError:
                self.fail(f"'{key}' is not an ASCII string")
        if isinstance(v, str):
            return v
        self.fail(f"'{key}' is not a string")

    def ints(self, key: str, what: str = "") -> np.ndarray:
        """Integer-valued numbers as int64 (floats must hold whole numbers; bools are refused)."""
        v = self.raw(key)
        if not isinstance(v, np.ndarray) or v.dtype.kind not in "iuf":
            self.fail(f"'{key}' is not numeric{what}")
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)):
                self.fail(f"'{key}' holds NaN or Inf")
            if np.any(v != np.round(v)):
                bad = v[v != np.round(v)].reshape(-1)[0]
                self.fail(f"'{key}' holds the non-integer {bad!r} (netx would truncate it toward zero)",
                          "write integer weights/biases (slayer's export_hdf5 does)")
            if np.max(np.abs(v), initial=0) >= 2 ** 53:
                self.fail(f"'{key}' holds values beyond exact integers")
        return v.astype(np.int64)

    def scalar(self, key: str, lo: int, hi: int) -> int:
        v = self.ints(key)
        if v.size != 1:
            self.fail(f"'{key}' holds {v.size} values, expected one")
        x = int(v.reshape(-1)[0])
        if not lo <= x <= hi:
            self.fail(f"'{key}' = {x} is outside {lo}..{hi}")
        return x

    def pair(self, key: str, default: tuple, lo: int) -> tuple:
        """netx's expand(): a scalar means (x, x); a (y, x) pair is read as it stands."""
        if not self.has(key):
            return default
        v = self.ints(key)
        if v.size == 1:
            v = np.repeat(v.reshape(-1), 2)
        if v.shape != (2,):
            self.fail(f"'{key}' has shape {v.shape}, expected a scalar or (y, x)")
        if v.min() < lo:
            self.fail(f"'{key}' = {tuple(int(a) for a in v)} must be >= {lo}")
        return tuple(int(a) for a in v)


def read_netx(path: str | Path) -> NetxFile:
    """Parse and check a NetX file (see the module docstring); raises NeurodeployError."""
    import h5py
    path = Path(path)
    if not path.is_file():
        raise NeurodeployError("file not found", str(path), "pass a NetX HDF5 file (.net)")
    try:
        h = h5py.File(path, "r")
    except OSError as exc:
        raise NeurodeployError(f"not a readable HDF5 file ({exc})", str(path),
                               "pass a NetX file written by slayer's export_hdf5 or neurodeploy export") from None
    with h:
        group = h.get("layer")
        if not isinstance(group, h5py.Group):
            raise NeurodeployError("no 'layer' group: not a Lava-DL NetX network", str(path),
                                   "pass a NetX file written by slayer's export_hdf5 or neurodeploy export")
        keys = list(group.keys())
        if not keys:
            raise NeurodeployError("the 'layer' group is empty", str(path))
        if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
            raise NeurodeployError(f"layer keys {sorted(keys)} are not 0..{len(keys) - 1}", str(path),
                                   "netx reads layer/0, layer/1, ... in order")
        layers = [_layer(path, i, group[str(i)]) for i in range(len(keys))]
        t_sample = None
        sim = h.get("simulation")
        if isinstance(sim, h5py.Group) and "tSample" in sim:
            t_sample = _Reader(path, sim, "simulation").scalar("tSample", 1, 1 << 30)
        attrs = {k: _attr(h.attrs[k]) for k in h.attrs if k.startswith("neurodeploy_")}
    return NetxFile(path, layers, t_sample, attrs)


def _attr(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return np.asarray(v) if isinstance(v, np.ndarray) else v


def _layer(path: Path, index: int, g) -> NetxLayer:
    import h5py
    where = f"layer/{index}"
    r = _Reader(path, g, where)
    if not isinstance(g, h5py.Group):
        r.fail("is not a group")
    kind = r.string("type")
    r.where = f"layer/{index} ({kind})"
    if kind in NETX_CANNOT:
        r.fail(f"netx cannot build a '{kind}' layer (lava-dl 0.6.0 raises NotImplementedError)",
               "export the network without it (e.g. fold pooling into the next convolution)", UnsupportedError)
    if kind in NOT_SIMULATED:
        r.fail(f"'{kind}' layers (recurrent / complex-valued synapses) are not supported",
               "neurodeploy imports feed-forward CUBA and SDNN networks", UnsupportedError)
    if kind not in SUPPORTED_TYPES:
        r.fail(f"unknown layer type '{kind}'", f"netx knows {', '.join(SUPPORTED_TYPES + NETX_CANNOT)}")
    if r.has("delay"):
        r.fail("axonal delays are not supported", "export the network without delays", UnsupportedError)
    layer = NetxLayer(index, kind, ())
    if kind == "flatten":
        return layer
    layer.shape = _shape(r, kind)
    if "neuron" in g:
        layer.neuron = _neuron(r, g["neuron"], input_layer=kind == "input")
    elif kind == "conv":
        r.fail("has no neuron group (netx reads layer['neuron'] for every conv layer)")
    if kind == "input":
        for key in ("weight", "bias"):         # netx's Input.transform: host-side input scaling
            if r.has(key):
                layer.transform[key] = _number(r, key)
        return layer
    if kind == "conv":
        _conv(r, layer)
    else:
        _dense(r, layer)
    if r.has("bias"):
        layer.bias = r.ints("bias")
        n_out = layer.shape[0]
        if kind == "conv" and layer.bias.shape != (n_out,):
            r.fail(f"bias has shape {layer.bias.shape}, expected one value per output channel ({n_out},)",
                   "netx broadcasts a conv bias per channel")
        if kind == "dense" and layer.bias.shape not in ((), (n_out,)):
            r.fail(f"bias has shape {layer.bias.shape}, expected a scalar or ({n_out},)")
        if layer.neuron is not None and layer.neuron.sigma_output:
            r.fail("a Sigma readout (sigma_output) has a bias, which Lava's Sigma cannot hold")
    return layer


def _number(r: _Reader, key: str) -> float | int:
    v = r.raw(key)
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iuf" or v.size != 1 or not np.all(np.isfinite(v)):
        r.fail(f"'{key}' is not one finite number")
    x = v.reshape(-1)[0]
    return int(x) if v.dtype.kind in "iu" else float(x)


def _shape(r: _Reader, kind: str) -> tuple:
    s = r.ints("shape")
    if s.ndim != 1 or s.size not in (1, 3) or s.min() < 1:
        r.fail(f"shape {tuple(s.tolist())} is not (C, H, W) or (F,) of positive sizes")
    if kind == "dense":
        return (int(np.prod(s)),)              # netx: np.prod(shape) neurons (slayer writes (F, 1, 1))
    return tuple(int(v) for v in s)


def _neuron(r: _Reader, g, input_layer: bool) -> NetxNeuron:
    import h5py
    if not isinstance(g, h5py.Group):
        r.fail("'neuron' is not a group")
    n = _Reader(r.path, g, f"{r.where} neuron")
    kind = n.string("type")
    if "RF" in kind:
        n.fail(f"resonate-and-fire neurons ('{kind}') are not supported", "", UnsupportedError)
    if n.has("messageBits"):
        n.fail("'messageBits' is set: netx 0.6.0 reads it as an object, not a number, and builds a broken "
               "network", "remove neuron/messageBits (graded input is a netx.hdf5.Network argument)",
               UnsupportedError)
    if kind in CUBA_TYPES:
        return NetxNeuron("CUBA", vth=n.scalar("vThMant", 0, CUBA_VTH_LIMIT - 1),
                          i_decay=n.scalar("iDecay", 0, DECAY_MAX), v_decay=n.scalar("vDecay", 0, DECAY_MAX))
    if kind == "SDNN":
        sigma = bool(n.has("sigma_output")) and not input_layer
        vth = 0 if sigma and not n.has("vThMant") else n.scalar("vThMant", 0, SDNN_VTH_MAX)
        return NetxNeuron("SDNN", vth=vth, sigma_output=sigma)
    n.fail(f"unknown neuron type '{kind}'", "netx knows CUBA, LOIHI, SDNN and RF neurons")


def _conv(r: _Reader, layer: NetxLayer) -> None:
    w = r.ints("weight")
    if w.ndim != 4:
        r.fail(f"weight has shape {w.shape}, expected (out, in/groups, kH, kW)")
    layer.weight = w
    layer.stride = r.pair("stride", (1, 1), 1)
    layer.padding = r.pair("padding", (0, 0), 0)
    layer.dilation = r.pair("dilation", (1, 1), 1)
    layer.groups = r.scalar("groups", 1, 1 << 20) if r.has("groups") else 1
    if len(layer.shape) != 3 or layer.shape[0] != w.shape[0]:
        r.fail(f"shape {layer.shape} does not match {w.shape[0]} output channels of the weight")
    for key, want in (("outChannels", w.shape[0]), ("kernelSize", None)):
        if r.has(key):
            got = r.ints(key).reshape(-1)
            want = np.array(w.shape[2:]) if want is None else np.array([want])
            if got.size == 1 and want.size == 2:
                got = np.repeat(got, 2)
            if not np.array_equal(got, want):
                r.fail(f"{key} {got.tolist()} does not match the weight {w.shape}")
    if r.has("inChannels") and r.scalar("inChannels", 1, 1 << 30) != w.shape[1] * layer.groups:
        r.fail(f"inChannels does not match the weight {w.shape} with {layer.groups} groups")
    if w.shape[0] % layer.groups:
        r.fail(f"{w.shape[0]} output channels are not divisible by groups = {layer.groups}")


def _dense(r: _Reader, layer: NetxLayer) -> None:
    w = r.ints("weight")
    n_out = layer.shape[0]
    if w.ndim == 1:                            # netx reshapes a flat weight to (shape[0], -1)
        if w.size % n_out:
            r.fail(f"a flat weight of {w.size} values does not split into {n_out} rows")
        w = w.reshape(n_out, -1)
    if w.ndim != 2 or w.shape[0] != n_out:
        r.fail(f"weight has shape {w.shape}, expected ({n_out}, inputs)")
    if r.has("outFeatures") and r.scalar("outFeatures", 1, 1 << 30) != n_out:
        r.fail(f"outFeatures does not match the layer's {n_out} neurons")
    if r.has("inFeatures") and r.scalar("inFeatures", 1, 1 << 30) != w.shape[1]:
        r.fail(f"inFeatures does not match the weight's {w.shape[1]} inputs")
    layer.weight = w
