"""Random QCFS networks written as ONNX graphs with onnx.helper (for tests).

Every hidden activation is the QCFS chain exactly as PyTorch exports it:
Div(lam) -> Mul(Q) -> Add(0.5) -> Floor -> Div(Q) -> Clip(0, 1) -> Mul(lam)
(or, with clamp_first, the clamp-before-floor order).  The input gets a QCFS quantiser too.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class NetBuilder:
    def __init__(self, input_shape: tuple, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.count = 0
        self.input_shape = tuple(input_shape)
        self.cur = "input"
        self.shape = tuple(input_shape)

    # -- plumbing -----------------------------------------------------------------------
    def _name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value, base="c") -> str:
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op, inputs, **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    # -- layers -------------------------------------------------------------------------
    def qcfs(self, x: str, levels: int, lam: float, clamp_first: bool = False) -> str:
        lam_c = self.const(np.float32(lam), "lam")
        y = self.node("Div", [x, lam_c])
        if clamp_first:
            y = self.node("Clip", [y, self.const(0.0), self.const(1.0)])
        y = self.node("Mul", [y, self.const(float(levels))])
        y = self.node("Add", [y, self.const(0.5)])
        y = self.node("Floor", [y])
        y = self.node("Div", [y, self.const(float(levels))])
        if not clamp_first:
            y = self.node("Clip", [y, self.const(0.0), self.const(1.0)])
        return self.node("Mul", [y, lam_c])

    def conv(self, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1, pad: int = 1,
             bn: bool = False, scale: float = 1.0) -> str:
        w = self.rng.normal(0, scale / np.sqrt(c_in * k * k), (c_out, c_in, k, k))
        b = self.rng.normal(0, 0.1, c_out)
        y = self.node("Conv", [x, self.const(w, "w"), self.const(b, "b")], kernel_shape=[k, k],
                      strides=[stride, stride], pads=[pad] * 4)
        if bn:
            y = self.batchnorm(y, c_out)
        return y

    def batchnorm(self, x: str, c: int) -> str:
        r = self.rng
        return self.node("BatchNormalization", [x, self.const(r.uniform(0.5, 1.5, c)), self.const(r.normal(0, 0.2, c)),
                                                self.const(r.normal(0, 0.2, c)), self.const(r.uniform(0.5, 2, c))],
                         epsilon=1e-5)

    def gemm(self, x: str, f_in: int, f_out: int, scale: float = 1.0) -> str:
        w = self.rng.normal(0, scale / np.sqrt(f_in), (f_out, f_in))
        b = self.rng.normal(0, 0.1, f_out)
        return self.node("Gemm", [x, self.const(w, "w"), self.const(b, "b")], transB=1)

    def avgpool(self, x: str, k: int = 2) -> str:
        return self.node("AveragePool", [x], kernel_shape=[k, k], strides=[k, k])

    def maxpool(self, x: str, k: int = 2, stride: int | None = None, pads=(0, 0, 0, 0), ceil_mode: int = 0) -> str:
        s = k if stride is None else stride
        return self.node("MaxPool", [x], kernel_shape=[k, k], strides=[s, s], pads=list(pads), ceil_mode=ceil_mode)

    def gap(self, x: str) -> str:
        return self.node("GlobalAveragePool", [x])

    def flatten(self, x: str) -> str:
        return self.node("Flatten", [x], axis=1)

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b])

    def concat(self, *xs: str) -> str:
        """Join activations along channels (SqueezeNet's Fire, Inception, DenseNet)."""
        return self.node("Concat", list(xs), axis=1)

    def model(self, output: str, n_out: int) -> onnx.ModelProto:
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *self.input_shape])
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", n_out])
        graph = helper.make_graph(self.nodes, "random_qcfs", [inp], [out], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def random_inputs(shape: tuple, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def dense_net(seed: int, levels=(7, 8, 15)) -> onnx.ModelProto:
    b = NetBuilder((12,), seed)
    x = b.qcfs("input", 15, 1.0)
    f = 12
    for q in levels:
        x = b.qcfs(b.gemm(x, f, 16, scale=2.0), q, float(b.rng.uniform(0.5, 2.0)))
        f = 16
    return b.model(b.gemm(x, f, 5), 5)


# the first pool of conv_net, 8x8 -> 4x4: "max_padded" is ResNet's stem pool (3x3/2, padding 1),
# "max_ceil" a 3x3/2 pool with ceil_mode (a partial last row of windows) and one column of left padding
POOLS = {"avg": lambda b, x: b.avgpool(x), "max": lambda b, x: b.maxpool(x),
         "max_padded": lambda b, x: b.maxpool(x, 3, 2, (1, 1, 1, 1)),
         "max_ceil": lambda b, x: b.maxpool(x, 3, 2, (0, 1, 0, 0), ceil_mode=1)}


def conv_net(seed: int, levels=(3, 8), bn=True, clamp_first=False, pool="avg") -> onnx.ModelProto:
    b = NetBuilder((2, 8, 8), seed)
    x = b.qcfs("input", 31, 1.0)
    x = b.qcfs(b.conv(x, 2, 6, bn=bn, scale=2.0), levels[0], 1.5, clamp_first)
    x = POOLS[pool](b, x)
    x = b.qcfs(b.conv(x, 6, 8, bn=bn, scale=2.0), levels[1], 1.0, clamp_first)
    x = b.flatten(b.avgpool(x))
    return b.model(b.gemm(x, 8 * 2 * 2, 4), 4)


def residual_net(seed: int, levels=(15, 8, 7)) -> onnx.ModelProto:
    b = NetBuilder((3, 8, 8), seed)
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 3, 8, bn=True, scale=2.0), levels[0], 2.0)
    # identity shortcut
    h = b.qcfs(b.conv(x, 8, 8, bn=True, scale=2.0), levels[1], 1.5)
    x = b.qcfs(b.add(b.conv(h, 8, 8, bn=True), x), levels[2], 2.0)
    # projection shortcut (1x1 conv, stride 2)
    h = b.qcfs(b.conv(x, 8, 12, stride=2, bn=True, scale=2.0), levels[0], 1.5)
    s = b.conv(x, 8, 12, k=1, stride=2, pad=0, bn=True)
    x = b.qcfs(b.add(b.conv(h, 12, 12, bn=True), s), levels[1], 2.0)
    x = b.flatten(b.gap(x))
    return b.model(b.gemm(x, 12, 6), 6)
