"""ONNX handlers for the ops that move values without computing new ones: Flatten, Reshape,
Squeeze/Unsqueeze, Transpose, Slice, Split, Pad, Concat, and the identities (Identity, Dropout,
float Casts, Expand to the same shape).

Each works per sample: an op that would move values between the samples of a batch (a
Reshape(x, [-1, 7]) of (N, 14) values, a Transpose or Concat over axis 0) is refused.  The
static shapes of the normalised model decide what a reshape is: a flatten to (N, F) becomes
`Flatten`, anything else within a sample `Reshape`, and a reshape to the same shape nothing.
"""
from __future__ import annotations

import numpy as np

from ...errors import NeurodeployError
from ...ir import float_graph as fg
from .context import attrs, handler, ints

_FLOAT_TYPES = {1, 11}          # FLOAT, DOUBLE: a Cast between them keeps every value of a float32 model


def relabel(node, ctx, src_name: str, out_name: str) -> None:
    """ONNX tensor `out_name` holds the values of `src_name` in another per-sample layout."""
    full_in, full_out = ctx.shape(node, src_name), ctx.shape(node, out_name)
    if not full_out or full_out[0] != full_in[0]:
        target = ""
        if node.op_type == "Reshape" and ctx.is_const(node.input[1]):
            target = f" to {ctx.consts[node.input[1]].reshape(-1).tolist()}"
        raise ctx.refuse(node, f"{node.op_type}{target} moves values between samples ({list(full_in)} -> "
                         f"{list(full_out)})", "reshape each sample: keep the batch as the first dimension")
    src = ctx.tensor(src_name)
    out = tuple(full_out[1:])
    if out == tuple(full_in[1:]):
        ctx.same(node, src)
    elif len(out) == 1:
        ctx.add(node, fg.Flatten(), [src])
    else:
        ctx.add(node, fg.Reshape(out), [src])


@handler("Flatten", attrs=("axis",))
def _flatten(node, ctx):
    rank = len(ctx.shape(node, node.input[0]))
    axis = int(attrs(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        raise ctx.refuse(node, f"Flatten with axis={attrs(node).get('axis', 1)} mixes the batch with other axes",
                         "flatten with axis=1 (torch.flatten(x, 1))")
    relabel(node, ctx, node.input[0], node.output[0])


@handler("Reshape", attrs=("allowzero",))
def _reshape(node, ctx):
    relabel(node, ctx, node.input[0], node.output[0])


@handler("Squeeze", "Unsqueeze")
def _squeeze(node, ctx):
    relabel(node, ctx, node.input[0], node.output[0])


@handler("Transpose", attrs=("perm",))
def _transpose(node, ctx):
    rank = len(ctx.shape(node, node.input[0]))
    perm = ints(attrs(node).get("perm"), tuple(reversed(range(rank))))
    if sorted(perm) != list(range(rank)):
        raise NeurodeployError(f"perm {list(perm)} for rank {rank}", ctx.where(node), "re-export the model")
    if perm[0] != 0:
        # (the dynamo exporter's adaptive_avg_pool2d starts so; build_graph reads that region as one
        # pool where it computes one -- gathered_pool.py -- so a Transpose left here is something else)
        raise ctx.refuse(node, f"Transpose with perm {list(perm)} moves the batch axis",
                         "only permutations within a sample are supported (and, after such a Transpose, index "
                         "arithmetic that computes an adaptive average pooling exactly)")
    src = ctx.tensor(node.input[0])
    if list(perm) == list(range(rank)):
        ctx.same(node, src)
        return
    ctx.add(node, fg.Transpose(tuple(p - 1 for p in perm[1:])), [src])


def _slice_node(node, ctx, src: str, full: tuple, starts, stops, steps, output: int = 0) -> None:
    """One Slice node for output `output` (resolved per-axis ranges over the full shape)."""
    if (starts[0], stops[0], steps[0]) != (0, full[0], 1):
        raise ctx.refuse(node, "slicing the batch axis", "only slices within a sample are supported")
    if list(starts) == [0] * len(full) and list(stops) == list(full) and list(steps) == [1] * len(full):
        ctx.same(node, src, output)
        return
    op = fg.Slice(tuple(starts[1:]), tuple(stops[1:]), tuple(steps[1:]))
    if output == 0:
        ctx.add(node, op, [src])
    else:
        ctx.alias[node.output[output]] = ctx.add(node, op, [src], suffix=f"_{output}")


@handler("Slice")
def _slice(node, ctx):
    full = ctx.shape(node, node.input[0])
    starts = ctx.const(node, 1, "starts").reshape(-1)
    ends = ctx.const(node, 2, "ends").reshape(-1)
    axes = ctx.optional_const(node, 3, "axes")
    steps = ctx.optional_const(node, 4, "steps")
    axes = range(len(starts)) if axes is None else axes.reshape(-1)
    steps = np.ones(len(starts), np.int64) if steps is None else steps.reshape(-1)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise NeurodeployError("starts, ends, axes and steps differ in length", ctx.where(node), "re-export the model")
    lo, hi, step = [0] * len(full), list(full), [1] * len(full)
    for s, e, ax, k in zip(starts, ends, axes, steps):
        ax = int(ax) + len(full) if int(ax) < 0 else int(ax)
        if not 0 <= ax < len(full):
            raise NeurodeployError(f"axis {int(ax)} out of range", ctx.where(node), "re-export the model")
        if int(k) <= 0:
            raise ctx.refuse(node, f"Slice with step {int(k)} (reversal)", "only positive steps are supported")
        a, b, _ = slice(int(s), int(e), int(k)).indices(full[ax])
        lo[ax], hi[ax], step[ax] = a, max(a, b), int(k)
    _slice_node(node, ctx, ctx.tensor(node.input[0]), full, lo, hi, step)


@handler("Split", attrs=("axis", "num_outputs"))
def _split(node, ctx):
    full = ctx.shape(node, node.input[0])
    axis = int(attrs(node).get("axis", 0))
    axis = axis + len(full) if axis < 0 else axis
    src = ctx.tensor(node.input[0])
    start = 0
    for i, out in enumerate(node.output):
        size = ctx.shape(node, out)[axis]
        lo, hi, step = [0] * len(full), list(full), [1] * len(full)
        lo[axis], hi[axis] = start, start + size
        if out:
            _slice_node(node, ctx, src, full, lo, hi, step, output=i)
        start += size


@handler("Pad", attrs=("mode",))
def _pad(node, ctx):
    mode = attrs(node).get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        raise ctx.refuse(node, f"Pad mode '{mode}'", "only constant padding is supported")
    full = ctx.shape(node, node.input[0])
    pads = ctx.const(node, 1, "pads").reshape(-1).astype(np.int64)
    value = ctx.optional_const(node, 2, "constant value")
    value = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
    axes = ctx.optional_const(node, 3, "axes")
    axes = list(range(len(full))) if axes is None else [int(a) % len(full) for a in axes.reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise NeurodeployError(f"{len(pads)} pads for {len(axes)} axes", ctx.where(node), "re-export the model")
    per_axis = [(0, 0)] * len(full)
    for i, ax in enumerate(axes):
        per_axis[ax] = (int(pads[i]), int(pads[i + len(axes)]))
    if any(p < 0 for pair in per_axis for p in pair):
        raise ctx.refuse(node, f"Pad with negative pads {pads.tolist()} (cropping)", "crop with a Slice")
    if per_axis[0] != (0, 0):
        raise ctx.refuse(node, "padding the batch axis", "only padding within a sample is supported")
    src = ctx.tensor(node.input[0])
    if all(pair == (0, 0) for pair in per_axis):
        ctx.same(node, src)
        return
    ctx.add(node, fg.Pad(tuple(per_axis[1:]), value), [src])


@handler("Concat", attrs=("axis",))
def _concat(node, ctx):
    rank = len(ctx.shape(node, node.output[0]))
    axis = ctx.per_sample_axis(node, attrs(node).get("axis"), rank)
    if any(ctx.is_const(i) for i in node.input):
        raise ctx.refuse(node, "Concat of a constant with computed tensors", "concatenate activations only")
    srcs = [ctx.tensor(i) for i in node.input]
    if len(srcs) == 1:
        ctx.same(node, srcs[0])
        return
    ctx.add(node, fg.Concat(axis), srcs)


@handler("Identity")
def _identity(node, ctx):
    src = node.input[0]
    if ctx.is_const(src):
        ctx.consts[node.output[0]] = ctx.consts[src]
    elif src in ctx.pending:
        ctx.pending[node.output[0]] = ctx.pending[src]
    else:
        ctx.same(node, ctx.tensor(src))


@handler("Dropout", attrs=("seed",))
def _dropout(node, ctx):
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1], 0):
        raise ctx.refuse(node, "Dropout with a mask output", "export the model in eval mode")
    if len(node.input) > 2 and node.input[2]:    # normalise.inference_mode removes these first
        raise ctx.refuse(node, "Dropout in training mode", "export the model in eval mode")
    ctx.same(node, ctx.tensor(node.input[0]))


@handler("Cast", "CastLike", attrs=("saturate", "to", "round_mode"))
def _cast(node, ctx):
    import onnx
    if node.op_type == "Cast":
        to = int(attrs(node)["to"])
    else:
        like = node.input[1]
        to = int(onnx.helper.np_dtype_to_tensor_dtype(ctx.consts[like].dtype)) if ctx.is_const(like) else 1
    if to not in _FLOAT_TYPES:
        raise ctx.refuse(node, f"Cast of an activation to {onnx.TensorProto.DataType.Name(to)}",
                         "keep activations in float32")
    ctx.same(node, ctx.tensor(node.input[0]))


@handler("Expand")
def _expand(node, ctx):
    if ctx.shape(node, node.output[0]) != ctx.shape(node, node.input[0]):
        raise ctx.refuse(node, f"Expand from {list(ctx.shape(node, node.input[0]))} to "
                         f"{list(ctx.shape(node, node.output[0]))}", "only elementwise ops on activations are supported")
    ctx.same(node, ctx.tensor(node.input[0]))


@handler("Constant", attrs=("value", "value_float", "value_floats", "value_int", "value_ints"))
def _constant(node, ctx):
    """(normalise.fold lifts Constant nodes to initializers; this reads any it left)"""
    import onnx
    a = node.attribute[0]
    value = onnx.numpy_helper.to_array(a.t) if a.name == "value" else np.asarray(onnx.helper.get_attribute_value(a))
    ctx.consts[node.output[0]] = np.asarray(value)
