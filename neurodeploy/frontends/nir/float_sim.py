"""The float reference of our reading of a NIR graph: step it in float64 under the conventions.

This is the discrete model of `conventions.py` exactly as the producer's simulator runs it
(no quantisation, no pipeline: every edge is instantaneous, the bias of a CubaLIF's input
enters its current), fed the sample as a constant input at every one of T steps.  Comparing
it with the producer library's own simulation checks that neurodeploy read the graph the way
the library meant it (tests/test_nir_libraries.py); comparing it with the fixed-point
simulator shows what Loihi's formats and the pipeline cost (`neurodeploy verify` on a
network compiled from NIR).

The returned value per sample is what the compiled network's readout reports: the mean over
the T steps of the Output's input (an Affine), the spike count of a spiking last layer, an
Integrator's state after T steps, or a leaky integrator's v after the last step.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .conventions import NirConventions
from .params import READOUTS, SPIKING, map_neuron
from .reader import RawGraph
from .shapes import infer_shapes, topo_order


def _channel(a, ndim: int) -> torch.Tensor:
    """A scalar or per-channel parameter, broadcastable over (N, C, ...) of `ndim` dims."""
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    return t if t.ndim == 0 else t.reshape((1, -1) + (1,) * (ndim - 2))


def _pair(v, n: int = 2) -> tuple:
    t = tuple(int(x) for x in np.asarray(v).ravel())
    return t * n if len(t) == 1 else t


def _linear(node, x: torch.Tensor) -> torch.Tensor:
    t = node.type
    w = torch.as_tensor(np.asarray(node.get("weight"), dtype=np.float64))
    if t in ("Affine", "Linear"):
        b = torch.as_tensor(np.asarray(node.get("bias"), dtype=np.float64)) if t == "Affine" else None
        return F.linear(x, w, b)
    if t in ("Conv2d", "Conv1d"):
        b = node.get("bias")
        if b is not None:
            b = torch.as_tensor(np.broadcast_to(np.asarray(b, dtype=np.float64), (w.shape[0],)).copy())
        n = 2 if t == "Conv2d" else 1
        fn = F.conv2d if n == 2 else F.conv1d
        return fn(x, w, b, _pair(node.get("stride", 1), n), _pair(node.get("padding", 0), n),
                  _pair(node.get("dilation", 1), n), int(np.asarray(node.get("groups", 1))))
    if t in ("AvgPool2d", "SumPool2d"):
        k = _pair(node.get("kernel_size"))
        y = F.avg_pool2d(x, k, _pair(node.get("stride")), _pair(node.get("padding", 0)), count_include_pad=True)
        return y * (k[0] * k[1]) if t == "SumPool2d" else y
    if t == "Flatten":
        return x.reshape(x.shape[0], -1)
    if t == "Scale":        # NIR's scale has the node's shape (or is a scalar): it broadcasts over the batch
        return x * torch.as_tensor(np.asarray(node.get("scale"), dtype=np.float64))
    if t in ("Delay", "Identity"):
        return x
    raise ValueError(f"no float step for {t}")


def simulate(raw: RawGraph, conv: NirConventions, x: np.ndarray, timesteps: int) -> np.ndarray:
    """float64 (N, outputs): the graph run for `timesteps` steps on the constant input x (N, ...)."""
    shapes, _ = infer_shapes(raw)
    order = topo_order(raw)
    maps = {n: map_neuron(raw.nodes[n], shapes[n], conv, raw.where(n)) for n in order
            if raw.nodes[n].type in SPIKING + READOUTS}
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape((len(x),) + tuple(shapes[order[0]]))
    state: dict = {}
    (out,) = [n for n in order if raw.nodes[n].type == "Output"]
    (last,) = raw.inputs(out)
    acc = None
    for _ in range(timesteps):
        val = {}
        for name in order:
            node = raw.nodes[name]
            if node.type == "Input":
                val[name] = xt
                continue
            ins = [val[i] for i in raw.inputs(name)]
            s = ins[0]
            for extra in ins[1:]:
                s = s + extra
            if name in maps:
                val[name] = _neuron_step(maps[name], s, state, name, conv)
            elif node.type == "Output":
                val[name] = s
            else:
                val[name] = _linear(node, s)
        y = val[out]
        mode = _mode(raw, last, maps)
        acc = y.clone() if acc is None or mode == "final" else acc + y
    mode = _mode(raw, last, maps)
    res = acc / timesteps if mode == "mean" else acc
    return res.reshape(len(x), -1).numpy()


def _mode(raw: RawGraph, last: str, maps: dict) -> str:
    if last in maps:
        return "final" if maps[last].kind == "LI" else "sum"
    return "mean"


def _neuron_step(m, x: torch.Tensor, state: dict, name: str, conv: NirConventions) -> torch.Tensor:
    gain, leak = _channel(m.gain, x.ndim), _channel(m.leak_drive, x.ndim)
    cur, v = state.get(name, (torch.zeros_like(x), torch.zeros_like(x)))
    if m.alpha > 0:                              # CubaLIF: the input (bias included) enters the current
        cur = m.alpha * cur + gain * x
        v = m.beta * v + cur + leak
    else:
        v = m.beta * v + gain * x + leak
    if not m.spiking:
        state[name] = (cur, v)
        return v
    th = _channel(m.v_th, x.ndim)
    s = (v >= th) if conv.fire_on == ">=" else (v > th)
    v = torch.where(s, torch.zeros_like(v), v)
    state[name] = (cur, v)
    return s.to(x.dtype)
