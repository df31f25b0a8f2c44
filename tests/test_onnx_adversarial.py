"""Small ONNX models, one per odd or hostile construct: each compiles exactly or is refused.

Every model is a QCFS network written with onnx.helper (tests/netgen.py): a quantised input,
a convolution and a QCFS activation (4 x 6 x 6), then the construct under test, a QCFS, a
flatten and a Gemm readout.  Outcomes:
- "exact":    compile (bitplane) and verify: every layer equals the integer reference;
- "frontend": the front end refuses (a NeurodeployError: exit status 2, one line);
- "scheme":   the front end reads and proves it, and the scheme's lowering refuses it, naming
              the node and the scheme.
"""
import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from neurodeploy import api
from neurodeploy.errors import NeurodeployError
from neurodeploy.frontends.onnx import load_onnx
from neurodeploy.frontends.proof import ProofError
from netgen import NetBuilder, random_inputs

C, H = 4, 6                    # the activation the construct reads: (N, 4, 6, 6)


def _i64(b, values) -> str:
    name = b._name("i")
    b.inits.append(onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return name


def _head(b, y, shape) -> tuple[str, int]:
    """QCFS, flatten and a Gemm readout after the construct's output y of per-sample `shape`."""
    y = b.qcfs(y, 7, 1.0)
    if len(shape) > 1:
        y = b.flatten(y)
    f = int(np.prod(shape))
    return b.gemm(y, f, 3), 3


# name -> (construct(b, x) -> (y, per-sample shape), expected outcome, needles of the message)
CASES = {
    "mul_channel_constant": (lambda b, x: (b.node("Mul", [b.conv(x, C, C), b.const(np.linspace(0.5, 1.5, C)
                                                                                  .reshape(C, 1, 1))]), (C, H, H)),
                             "exact", []),
    "mul_w_broadcast": (lambda b, x: (b.node("Mul", [x, b.const(np.linspace(0.5, 1.5, H))]), (C, H, H)),
                        "scheme", ["varies along H or W", "scheme 'bitplane'"]),
    "avgpool_dilations": (lambda b, x: (b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[1, 1],
                                               dilations=[2, 2]), (C, 4, 4)), "scheme", ["dilated"]),
    "avgpool_count_include_pad": (lambda b, x: (b.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                                       count_include_pad=1), (C, H, H)), "scheme", ["padded or dilated"]),
    "avgpool_exclude_pad": (lambda b, x: (b.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                                          (C, H, H)), "scheme", ["padded or dilated"]),
    "avgpool_ceil_mode": (lambda b, x: (b.node("AveragePool", [x], kernel_shape=[4, 4], strides=[4, 4], ceil_mode=1),
                                        (C, 2, 2)), "frontend", ["ceil_mode=1 adds partial windows"]),
    "maxpool_ceil_mode": (lambda b, x: (b.node("MaxPool", [x], kernel_shape=[4, 4], strides=[4, 4], ceil_mode=1),
                                        (C, 2, 2)), "exact", []),
    "maxpool_padded": (lambda b, x: (b.node("MaxPool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), (C, H, H)),
                       "exact", []),
    "maxpool_asymmetric_pads": (lambda b, x: (b.node("MaxPool", [x], kernel_shape=[3, 2], strides=[2, 1],
                                                     pads=[0, 1, 2, 0]), (C, 3, H)), "exact", []),
    "maxpool_ceil_mode_padded": (lambda b, x: (b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2],
                                                      pads=[1, 1, 1, 1], ceil_mode=1), (C, 4, 4)), "exact", []),
    "maxpool_dilated": (lambda b, x: (b.node("MaxPool", [x], kernel_shape=[2, 2], dilations=[2, 2]), (C, 4, 4)),
                        "scheme", ["dilated max pooling cannot be lowered"]),
    "global_max_pool": (lambda b, x: (b.node("GlobalMaxPool", [x]), (C, 1, 1)), "exact", []),
    "reshape_across_samples": (lambda b, x: (b.node("Reshape", [x, _i64(b, [-1, 12])]), (12,)),
                               "frontend", ["Reshape to [-1, 12] moves values between samples"]),
    "reshape_flatten": (lambda b, x: (b.node("Reshape", [x, _i64(b, [-1, C * H * H])]), (C * H * H,)), "exact", []),
    "shape_gather_flatten": (lambda b, x: (b.node("Reshape", [x, b.node("Concat", [
        b.node("Unsqueeze", [b.node("Gather", [b.node("Shape", [x]), _i64(b, 0)], axis=0), _i64(b, [0])]),
        _i64(b, [-1])], axis=0)]), (C * H * H,)), "exact", []),
    "reshape_channel_shuffle": (lambda b, x: (b.node("Reshape", [b.node("Transpose", [b.node(
        "Reshape", [x, _i64(b, [-1, 2, 2, H, H])])], perm=[0, 2, 1, 3, 4]), _i64(b, [-1, C, H, H])]), (C, H, H)),
        "exact", []),              # a fixed 1x1 permutation conv (select_as_conv), composed into the next conv
    "conv_same_upper": (lambda b, x: (b.node("Conv", [x, b.const(b.rng.normal(0, 0.5, (C, C, 3, 3)), "w")],
                                             kernel_shape=[3, 3], auto_pad="SAME_UPPER"), (C, H, H)), "exact", []),
    "conv_same_upper_stride2": (lambda b, x: (b.node("Conv", [x, b.const(b.rng.normal(0, 0.5, (C, C, 3, 3)), "w")],
                                                     kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
                                              (C, 3, 3)), "scheme", ["Pad cannot be lowered"]),
    "depthwise_conv": (lambda b, x: (b.node("Conv", [x, b.const(b.rng.normal(0, 0.5, (C, 1, 3, 3)), "w")],
                                            kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C), (C, H, H)), "exact", []),
    "concat_channels": (lambda b, x: (b.node("Concat", [x, x], axis=1), (2 * C, H, H)), "scheme",
                        ["Concat reaches a quantised activation without a Conv/Gemm in between"]),
    "concat_channels_conv": (lambda b, x: (b.conv(b.node("Concat", [x, x], axis=1), 2 * C, C), (C, H, H)),
                             "exact", []),
    "split_channels_add": (lambda b, x: (lambda s: (b.node("Add", s), (2, H, H)))(
        _split(b, x)), "exact", []),
    "option_a_shortcut": (lambda b, x: (b.node("Pad", [b.node("Slice", [x, _i64(b, [0, 0]), _i64(b, [H, H]),
                                                                       _i64(b, [2, 3]), _i64(b, [2, 2])]),
                                                      _i64(b, [0, 2, 0, 0, 0, 2, 0, 0])]), (C + 4, 3, 3)), "exact", []),
    "slice_spatial_offset": (lambda b, x: (b.node("Slice", [x, _i64(b, [1]), _i64(b, [H]), _i64(b, [2])]),
                                           (C, H - 1, H)), "scheme", ["Slice cannot be lowered"]),
    "slice_batch": (lambda b, x: (b.node("Slice", [x, _i64(b, [0]), _i64(b, [1]), _i64(b, [0])]), (C, H, H)),
                    "frontend", ["slicing the batch axis"]),
    "pad_reflect": (lambda b, x: (b.node("Pad", [x, _i64(b, [0, 0, 1, 1, 0, 0, 1, 1])], mode="reflect"),
                                  (C, H + 2, H + 2)), "frontend", ["Pad mode 'reflect'"]),
    "transpose_batch": (lambda b, x: (b.node("Transpose", [x], perm=[1, 0, 2, 3]), (C, H, H)), "frontend",
                        ["moves the batch axis"]),
    "relu6_before_qcfs": (lambda b, x: (b.node("Clip", [b.conv(x, C, C), b.const(0.0), b.const(6.0)]), (C, H, H)),
                          "exact", []),
    "max_zero_before_qcfs": (lambda b, x: (b.node("Max", [b.conv(x, C, C), b.const(0.0)]), (C, H, H)), "exact", []),
    "relu6_between_qcfs": (lambda b, x: (b.node("Clip", [x, b.const(0.0), b.const(6.0)]), (C, H, H)), "scheme",
                           ["quantiser does not map its lowest code to 0"]),
    "sub_of_activations": (lambda b, x: (b.node("Sub", [b.conv(x, C, C), x]), (C, H, H)), "exact", []),
    "reduce_mean": (lambda b, x: (b.node("ReduceMean", [x], axes=[2, 3], keepdims=0), (C,)), "exact", []),
    "flatten_axis_2": (lambda b, x: (b.node("Flatten", [x], axis=2), (C * H * H,)), "frontend", ["axis=2"]),
    "sigmoid": (lambda b, x: (b.node("Sigmoid", [x]), (C, H, H)), "frontend", ["Sigmoid", "a non-linearity"]),
    "hard_swish": (lambda b, x: (b.node("HardSwish", [x]), (C, H, H)), "frontend", ["hard swish"]),
    "leaky_relu": (lambda b, x: (b.node("LeakyRelu", [x]), (C, H, H)), "frontend", ["leaky ReLU"]),
    "mul_of_activations": (lambda b, x: (b.node("Mul", [x, x]), (C, H, H)), "frontend",
                           ["Mul of two computed tensors"]),
    "matmul_of_activations": (lambda b, x: (b.node("MatMul", [x, x]), (C, H, H)), "frontend",
                              ["MatMul of two computed tensors"]),
    "cast_to_int": (lambda b, x: (b.node("Cast", [x], to=TensorProto.INT64), (C, H, H)), "frontend",
                    ["Cast of an activation to INT64"]),
    "expand_grows": (lambda b, x: (b.node("Expand", [b.node("GlobalAveragePool", [x]), _i64(b, [1, C, H, H])]),
                                   (C, H, H)), "frontend", ["Expand from [2, 4, 1, 1] to [2, 4, 6, 6]"]),
    "reduce_mean_channels": (lambda b, x: (b.node("ReduceMean", [x], axes=[1], keepdims=1), (1, H, H)), "frontend",
                             ["ReduceMean over axes [1]"]),
    "attribute_outside_its_op": (lambda b, x: (b.node("Relu", [x], alpha=0.5), (C, H, H)), "frontend",
                                 ["Unrecognized attribute: alpha for operator Relu"]),
    "add_of_itself": (lambda b, x: (b.node("Add", [x, x]), (C, H, H)), "exact", []),
}


OPSET = {"avgpool_dilations": 19}      # AveragePool has dilations from opset 19 on


def _split(b, x):
    outs = [b._name("split"), b._name("split")]
    b.nodes.append(helper.make_node("Split", [x, _i64(b, [2, 2])], outs, name=outs[0], axis=1))
    return outs


def build(name: str, opset: int | None = None, bn: bool = True) -> onnx.ModelProto:
    construct, _, _ = CASES[name]
    opset = opset or OPSET.get(name, 17)
    b = NetBuilder((2, H, H), seed=sum(map(ord, name)))
    x = b.qcfs("input", 15, 1.0)
    x = b.qcfs(b.conv(x, 2, C, bn=bn, scale=2.0), 7, 1.5)
    y, shape = construct(b, x)
    out, n_out = _head(b, y, shape)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 2, H, H])
    outv = helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", n_out])
    m = helper.make_model(helper.make_graph(b.nodes, name, [inp], [outv], b.inits),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


OUTCOMES = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _outcome_counts():
    """A summary line of the outcomes (shown with -s)."""
    yield
    print(f"\nonnx constructs by outcome: {dict(sorted(OUTCOMES.items()))}")


def outcome(path, x) -> tuple[str, str]:
    try:
        graph = load_onnx(path, probe=x)
    except NeurodeployError as exc:
        return "frontend", str(exc)
    try:
        net = api.compile(path, calibration=x)
    except NeurodeployError as exc:
        return "scheme", str(exc)
    r = api.verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    exact = r["guarantee_holds"] and all(l["conversion_mismatches"] == 0 for l in r["layers"])
    return ("exact" if exact else "inexact"), str(graph.notes)


@pytest.mark.parametrize("name", sorted(CASES))
def test_construct(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(build(name), path)
    x = random_inputs((2, H, H), 16)
    got, message = outcome(path, x)
    OUTCOMES[got] += 1
    want, needles = CASES[name][1], CASES[name][2]
    assert got == want, (got, message)
    if got != "exact":
        assert len(message.splitlines()) == 1 and "Traceback" not in message
        assert str(path) in message, message
        for n in needles:
            assert n in message, (n, message)


def test_softmax_output_is_dropped_and_noted(tmp_path):
    m = build("reshape_flatten")
    out = m.graph.output[0].name
    m.graph.node.append(helper.make_node("Softmax", [out], ["probs"], name="softmax", axis=-1))
    m.graph.output[0].name = "probs"
    path = tmp_path / "softmax.onnx"
    onnx.save(m, path)
    x = random_inputs((2, H, H), 16)
    net = api.compile(path)
    assert any("Softmax was dropped" in n for n in net.graph.meta["front_end_notes"])
    assert "Softmax was dropped" in net.summary()
    r = api.verify(net, path, x, np.zeros(len(x), dtype=np.int64))
    assert r["guarantee_holds"] and r["agreement"]["snn_vs_quantised_ann"] == 1.0
    assert all(l["conversion_mismatches"] == 0 for l in r["layers"])


@pytest.mark.parametrize("opset, outcome_", [(11, "exact"), (13, "exact"), (21, "exact"), (99, "frontend")])
def test_opsets(tmp_path, opset, outcome_):
    m = build("reshape_flatten", opset=min(opset, 21), bn=False)       # opset 11: upgraded to 13 on reading
    m.opset_import[0].version = opset
    path = tmp_path / f"op{opset}.onnx"
    onnx.save(m, path)
    got, message = outcome(path, random_inputs((2, H, H), 8))
    assert got == outcome_, message
    if opset == 99:
        assert "opset 99" in message and "newer than any" in message


def test_dynamic_spatial_input_is_refused(tmp_path):
    m = build("reshape_flatten")
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    path = tmp_path / "dyn.onnx"
    onnx.save(m, path)
    with pytest.raises(NeurodeployError, match="dynamic dimension 2"):
        load_onnx(path)


def test_the_proof_catches_a_misread_broadcast(tmp_path, monkeypatch):
    """The proof is what stops a silent miscompile.  The issue's model: an ONNX Mul by a constant of
    shape (4,) on an (N, 4, 4, 4) tensor, which broadcasts over W; read as per-channel (the old front
    end's reading; the SNN then agreed with onnxruntime on 14% of predictions), the proof names the node."""
    from neurodeploy.frontends.onnx import handlers
    b = NetBuilder((2, 4, 4), seed=7)
    x = b.qcfs(b.conv(b.qcfs("input", 15, 1.0), 2, 4, scale=2.0), 7, 1.5)
    y = b.node("Mul", [b.conv(x, 4, 4), b.const(np.asarray([0.5, 1.0, 1.5, 2.0]))])
    out = b.gemm(b.flatten(b.qcfs(y, 7, 1.0)), 64, 3)
    m = helper.make_model(helper.make_graph(b.nodes, "w", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["N", 2, 4, 4])], [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3])],
        b.inits), opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "w.onnx"
    onnx.save(m, path)
    g = load_onnx(path)                     # read right: a (1, 1, 4) constant along W
    assert [np.shape(g.op(n).factor) for n in g.g if type(g.op(n)).__name__ == "Scale" and np.ndim(g.op(n).factor) > 1] \
        == [(1, 1, 4)]
    monkeypatch.setattr(handlers, "_operand", lambda node, ctx, c, x: np.asarray(c, np.float64).reshape(-1)
                        if np.size(c) > 1 else np.asarray(c, np.float64).reshape(()))
    with pytest.raises(ProofError, match=r"node 'mul_\d+' \(Mul\): the float graph differs from onnxruntime"):
        load_onnx(path)


def test_attributes_a_handler_does_not_read_are_refused(tmp_path, monkeypatch):
    """An attribute the ONNX checker accepts but no handler reads (e.g. one of a newer opset) is refused."""
    from neurodeploy.frontends.onnx import context
    path = tmp_path / "m.onnx"
    onnx.save(build("depthwise_conv"), path)
    conv = context.HANDLERS["Conv"]
    monkeypatch.setitem(context.HANDLERS, "Conv", context.Handler(conv.fn, conv.attrs - {"group"}))
    with pytest.raises(NeurodeployError, match=r"unknown attribute\(s\) group on Conv"):
        load_onnx(path)


def test_training_mode_dropout_is_read_as_inference(tmp_path):
    m = build("reshape_flatten")
    out = m.graph.output[0].name
    m.graph.initializer.extend([onnx.numpy_helper.from_array(np.float32(0.5), "ratio"),
                                onnx.numpy_helper.from_array(np.bool_(True), "training")])
    m.graph.node.append(helper.make_node("Dropout", [out, "ratio", "training"], ["dropped"], name="drop"))
    m.graph.output[0].name = "dropped"
    path = tmp_path / "drop.onnx"
    onnx.save(m, path)
    x = random_inputs((2, H, H), 8)
    got, notes = outcome(path, x)
    assert got == "exact" and "Dropout 'drop' was exported in training mode" in notes
