"""A read NIR graph (`RawGraph`, shapes inferred) -> neurodeploy's `FloatGraph`.

One handler per NIR node type, each adding float-graph ops (PyTorch layouts, float64):

    Input       -> Input (per-sample shape; a Conv1d graph's (C, L) is held as (C, 1, L))
    Affine      -> Dense            Linear -> Dense with zero bias
    Conv2d      -> Conv             Conv1d -> Conv with a 1 x k kernel
    Flatten     -> Flatten (all per-sample dimensions; partial flattens are refused)
    AvgPool2d   -> AvgPool          SumPool2d -> AvgPool, Scale(kh kw)
    Scale       -> Scale (scalar or per channel)
    Delay       -> nothing when every delay is 0; refused otherwise
    LIF, CubaLIF, IF, Threshold -> NirNeuronAct (params.map_neuron)
    LI, I       -> the readout: Scale(gain) [Shift(leak drive)] NirReadout("final" / "sum")
    Output      -> the graph's output; after a spiking node an identity NirReadout("sum")
                   (its spike count), after anything else NirReadout("mean")

A node with several inputs sums them (NIR's rule): a chain of Adds.  In a CubaLIF the
Affine's bias enters the synaptic current, Loihi's bias the voltage: the current's steady
state b / (1 - alpha) is what the voltage gets (`_current_bias`; the first ~1/(1 - alpha)
steps differ and the summary says so).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...ir import float_graph as fg
from .conventions import NirConventions
from .ops import NirNeuronAct, NirReadout
from .params import READOUTS, SPIKING, NeuronMapping, map_neuron, per_channel
from .reader import RawGraph
from .shapes import infer_shapes, topo_order


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _pair(v, n: int = 2) -> tuple:
    t = tuple(int(x) for x in np.asarray(v).ravel())
    return t * n if len(t) == 1 else t


class _Builder:
    def __init__(self, raw: RawGraph, conv: NirConventions):
        self.raw, self.conv = raw, conv
        self.shapes, self.shape_notes = infer_shapes(raw)
        self.notes: list[str] = []               # approximations the summary states
        self.g = fg.FloatGraph(source=raw.source)
        self.value: dict[str, str] = {}          # NIR node -> float-graph node carrying its value
        self.mappings: dict[str, NeuronMapping] = {}
        self.conv1d = any(n.type == "Conv1d" for n in raw.nodes.values())

    # --- helpers ----------------------------------------------------------------------------
    def fshape(self, name: str) -> tuple:
        """A NIR shape as the float graph holds it ((C, L) -> (C, 1, L) in Conv1d graphs)."""
        s = tuple(self.shapes[name])
        return (s[0], 1, s[1]) if self.conv1d and len(s) == 2 else s

    def add(self, name: str, op, inputs: list[str], origin: str) -> str:
        return self.g.add(name, op, inputs, origin=origin)

    def summed_input(self, name: str) -> str:
        """The float node holding the sum of `name`'s inputs."""
        srcs = [self.value[i] for i in self.raw.inputs(name)]
        acc = srcs[0]
        for k, s in enumerate(srcs[1:], 1):
            acc = self.add(f"{name}/sum{k}", fg.Add(), [acc, s], "sum of a node's inputs")
        return acc

    # --- handlers ---------------------------------------------------------------------------
    def node(self, name: str) -> None:
        raw = self.raw.nodes[name]
        t, where = raw.type, self.raw.where(name)
        if t == "Input":
            self.value[name] = self.add(name, fg.Input(self.fshape(name)), [], "Input")
            return
        x = self.summed_input(name)
        if t in ("Affine", "Linear"):
            w = _f64(raw.get("weight"))
            b = _f64(raw.get("bias")) if t == "Affine" else np.zeros(w.shape[0])
            self.value[name] = self.add(name, fg.Dense(w, np.broadcast_to(b, (w.shape[0],)).copy()), [x], t)
        elif t in ("Conv2d", "Conv1d"):
            self.value[name] = self.add(name, self.conv_op(raw, where), [x], t)
        elif t == "Flatten":
            in_shape = self.shapes[self.raw.inputs(name)[0]]
            if len(self.shapes[name]) != 1:
                raise UnsupportedError(f"a partial Flatten ({in_shape} -> {self.shapes[name]})", where,
                                       "flatten all of a sample's dimensions")
            self.value[name] = x if len(in_shape) == 1 else self.add(name, fg.Flatten(), [x], t)
        elif t in ("AvgPool2d", "SumPool2d"):
            k, s, p = _pair(raw.get("kernel_size")), _pair(raw.get("stride")), _pair(raw.get("padding", 0))
            y = self.add(name, fg.AvgPool(k, s, p), [x], t)
            if t == "SumPool2d":
                y = self.add(f"{name}/sum", fg.Scale(np.float64(k[0] * k[1])), [y], "SumPool2d = AvgPool x k^2")
            self.value[name] = y
        elif t == "Scale":
            f = per_channel(raw.get("scale"), self.shapes[name], "scale", where)
            self.value[name] = self.add(name, fg.Scale(f), [x], t)
        elif t == "Delay":
            if np.any(_f64(raw.get("delay")) != 0):
                raise UnsupportedError("a Delay node: the cuba scheme's synapses have Loihi's fixed one-step "
                                       "delay and no per-synapse delay line", where,
                                       "remove the Delay (or fold it into the input timing)")
            self.value[name] = x
        elif t in ("Identity",):
            self.value[name] = x
        elif t in SPIKING:
            self.value[name] = self.neuron(name, x, where)
        elif t in READOUTS:
            self.value[name] = self.readout_neuron(name, x, where)
        elif t == "Output":
            self.output(name, x)
        else:
            raise UnsupportedError(f"NIR node type '{t}' is not supported", where)

    def conv_op(self, raw, where: str) -> fg.Conv:
        w = _f64(raw.get("weight"))
        b = _f64(raw.get("bias")) if raw.get("bias") is not None else np.zeros(w.shape[0])
        b = np.broadcast_to(b, (w.shape[0],)).copy()
        groups = int(np.asarray(raw.get("groups", 1)))
        if raw.type == "Conv1d":
            pad = _pair(raw.get("padding", 0), 1)
            return fg.Conv(w[:, :, None, :], b, (1,) + _pair(raw.get("stride", 1), 1), (0,) + pad,
                           (1,) + _pair(raw.get("dilation", 1), 1), groups)
        return fg.Conv(w, b, _pair(raw.get("stride", 1)), _pair(raw.get("padding", 0)),
                       _pair(raw.get("dilation", 1)), groups)

    def neuron(self, name: str, x: str, where: str) -> str:
        m = map_neuron(self.raw.nodes[name], self.shapes[name], self.conv, where)
        self.mappings[name] = m
        if m.alpha > 0:
            self._current_bias(name, x, 1.0 / (1.0 - m.alpha_loihi))
        act = NirNeuronAct(in_scale=np.asarray(m.gain / m.v_th), offset=np.asarray(m.leak_drive / m.v_th),
                           levels=1, out_step=np.asarray(1.0), decay=m.beta, v_th=float(np.max(m.v_th)),
                           reset=self.conv.reset or "zero", strict=self.conv.fire_on == ">",
                           du=m.du, dv=m.dv, node=name, kind=m.kind, notes=list(m.notes))
        return self.add(name, act, [x], m.kind)

    def readout_neuron(self, name: str, x: str, where: str) -> str:
        if [self.raw.nodes[c].type for c in self.raw.consumers(name)] != ["Output"]:
            raise UnsupportedError(f"a non-spiking {self.raw.nodes[name].type} that feeds other nodes", where,
                                   "the cuba scheme reads LI / I only as the network's output")
        m = map_neuron(self.raw.nodes[name], self.shapes[name], self.conv, where)
        self.mappings[name] = m
        y = x
        if np.any(m.leak_drive):
            y = self.add(f"{name}/leak", fg.Shift(np.asarray(m.leak_drive / m.gain)), [y], "v_leak drive")
        mode = "final" if m.kind == "LI" else "sum"
        return self.add(name, NirReadout(np.asarray(m.gain), mode=mode, dv=m.dv, node=name), [y], m.kind)

    def output(self, name: str, x: str) -> None:
        ins = self.raw.inputs(name)
        if len(ins) != 1:
            raise UnsupportedError(f"an Output fed by {len(ins)} nodes", self.raw.where(name),
                                   "the cuba scheme has one readout")
        op = self.g.op(x)
        if isinstance(op, NirReadout):
            self.g.output = x
        elif isinstance(op, NirNeuronAct):       # count the last layer's spikes through an identity synapse
            self.g.output = self.add(name, NirReadout(np.float64(1.0), mode="sum", node=ins[0]), [x],
                                     "spike count of the last layer")
        else:
            self.g.output = self.add(name, NirReadout(np.float64(1.0), mode="mean", node=ins[0]), [x],
                                     "mean over the time steps")

    def _current_bias(self, name: str, x: str, factor: float) -> None:
        """Scale the biases feeding CubaLIF `name`'s current by 1/(1 - alpha) (module docstring)."""
        todo = [x]
        while todo:
            n = todo.pop()
            op = self.g.op(n)
            if isinstance(op, (fg.Dense, fg.Conv)):
                if len(self.g.consumers(n)) > 1:
                    raise UnsupportedError("a layer whose bias feeds the synaptic currents of several nodes",
                                           self.raw.where(name))
                self.g.set_op(n, type(op)(**{**op.__dict__, "bias": op.bias * factor}))
            elif isinstance(op, (fg.Add, fg.Flatten, fg.AvgPool, fg.Scale)):
                todo.extend(self.g.inputs(n))
        self.notes.append(f"{name}: the bias enters the synaptic current (CubaLIF); Loihi adds it to v as its "
                          f"steady state b / (1 - alpha) = {factor:.4g} b (the first steps differ)")


def build_float_graph(raw: RawGraph, conv: NirConventions) -> tuple[fg.FloatGraph, dict]:
    """(FloatGraph, report) for a read NIR graph under `conv`; the report holds the shape notes,
    each neuron's mapping and rounding, and the conventions (`compile` puts it in the summary)."""
    b = _Builder(raw, conv)
    for name in topo_order(raw):
        b.node(name)
    if not b.g.output:
        raise UnsupportedError("the graph has no Output node", raw.source, "export the whole network")
    report = {"conventions": conv.to_dict(), "shape_notes": list(b.shape_notes), "notes": list(b.notes),
              "neurons": {n: m.rounding(conv.dt) for n, m in b.mappings.items()}}
    return b.g, report
