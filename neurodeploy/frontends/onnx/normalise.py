"""ONNX normalisation: what every exporter writes, reduced to one static form before the handlers.

Exporters spell one network many ways: `torch.onnx.export(dynamo=False)` computes a Pad's
pads with ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose -> Cast, flattens with
Shape -> Gather -> Unsqueeze -> Concat -> Reshape, casts clamp bounds; `dynamo=True` without
its optimiser writes CastLike/Expand/Max/Min around every constant; both leave Identity
chains and a symbolic batch dimension.  Normalisation makes all of that constant and static:

1. the model's default-domain opset must be one this front end knows (13 up to the newest
   opset of the installed `onnx`; older models are upgraded to 13 by onnx's own version
   converter, or refused);
2. the batch dimension becomes a fixed number (`BATCH`, or the model's own fixed batch), so that
   shape arithmetic folds; every other input dimension must already be fixed;
3. model-local functions are inlined, constant subgraphs folded, Identity nodes and unused
   nodes removed -- by the constant folder of `onnxscript` (its `FoldConstantsPass`, which
   runs onnx's node-level shape inference as it goes) and the common passes of `onnx-ir`;
   QuantizeLinear/DequantizeLinear are never folded (the QDQ handlers read them exactly);
4. onnx's strict shape inference gives every tensor a static shape, which the handlers use to
   tell a flatten from a reshape that mixes samples, and a per-channel constant from one that
   broadcasts along W.

Why onnxscript's folder (and not onnxsim, which was tried): it is the folder of the PyTorch
dynamo exporter itself, pure Python on top of `onnx`/`onnx-ir`, and it only folds what is
constant -- the dynamo exporter needs `onnxscript` anyway.  onnxsim is a native extension that
folds by running onnxruntime's graph optimiser, which also fuses BatchNormalization into Conv
and merges Mul/Slice chains in float32: a different float model than the file, where ours must
be the file's (BatchNorm is folded in float64 by `passes.fold_bn`, identically for the ONNX and
PyTorch front ends).  onnxsim also left the dynamo exporter's CastLike/Expand in place.
"""
from __future__ import annotations

from ...errors import NeurodeployError, UnsupportedError

MIN_OPSET = 13           # oldest opset read as is; older models go through onnx's version converter
BATCH = 2                # the batch size shapes are folded for when the model's batch is dynamic
_NEVER_FOLD = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_SIZE_LIMIT = 1 << 26    # fold constant subgraphs up to 64 M elements (weights included)


def newest_opset() -> int:
    import onnx
    return int(onnx.defs.onnx_opset_version())


def default_opset(model) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def check_opset(model, path: str):
    """Refuse opsets this front end does not know; upgrade old ones with onnx's converter."""
    import onnx
    version = default_opset(model)
    newest = newest_opset()
    if version is None:
        raise UnsupportedError("the model imports no default-domain (ai.onnx) opset", path,
                               "export a standard ONNX model")
    if version > newest:
        raise UnsupportedError(f"opset {version} is newer than any this front end knows (onnx {onnx.__version__} "
                               f"knows up to {newest})", path, f"export with an opset between {MIN_OPSET} and {newest}")
    if version < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # the converter's errors are plain RuntimeErrors/IndexErrors
            raise UnsupportedError(f"opset {version} could not be upgraded to {MIN_OPSET} "
                                   f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ''})",
                                   path, f"export with an opset between {MIN_OPSET} and {newest}") from None
    return model


def fix_batch(model, path: str) -> int:
    """Give the (single) graph input a fixed batch; returns it.  Other dims must be fixed already."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedError(f"the model has {len(inputs)} inputs; exactly one is supported", path)
    inp = inputs[0]
    if not inp.type.HasField("tensor_type") or not inp.type.tensor_type.HasField("shape"):
        raise UnsupportedError(f"input '{inp.name}' has no declared shape", path,
                               "export with a fixed input shape (N, C, H, W) or (N, F)")
    dims = inp.type.tensor_type.shape.dim
    if len(dims) not in (2, 4):
        raise UnsupportedError(f"input '{inp.name}' has rank {len(dims)}; expected (N, F) or (N, C, H, W)", path)
    for k, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value <= 0:
            raise UnsupportedError(
                f"input '{inp.name}' has a dynamic dimension {k} ('{d.dim_param}')", path,
                "export with a fixed input shape; only the batch dimension may be dynamic")
    if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    dims[0].Clear()
    dims[0].dim_value = BATCH
    return BATCH


def inference_mode(model) -> list[str]:
    """Training-mode exports (torch.onnx.export(training=TRAINING/PRESERVE)) as the network they
    deploy: BatchNormalization with its running statistics, Dropout as the identity.  Changes
    `model` in place; returns a note per changed node (the summary says what was done)."""
    notes = []
    read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        where = f"'{node.name or node.output[0]}'"
        if node.op_type == "BatchNormalization":
            # training mode: training_mode=1 (opset >= 14), or the running/saved statistics as
            # extra outputs (opsets 9-13, where their presence makes onnxruntime use batch statistics)
            mode = next((a for a in node.attribute if a.name == "training_mode"), None)
            training = bool(mode.i) if mode is not None else any(o for o in node.output[1:])
            if training:
                if any(o in read for o in node.output[1:]):
                    raise UnsupportedError("BatchNormalization in training mode whose running statistics are "
                                           "read by other nodes", where, "export the model in eval mode")
                if mode is not None:
                    mode.i = 0
                del node.output[1:]
                notes.append(f"BatchNormalization {where} was exported in training mode (batch statistics); "
                             "it is compiled with its running statistics, as in inference")
        elif node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            del node.input[2:]
            notes.append(f"Dropout {where} was exported in training mode; it is compiled as the identity, "
                         "as in inference")
    return notes


def _should_fold(node):
    if node.op_type in _NEVER_FOLD:
        return False
    if node.op_type == "ConstantOfShape":      # onnxscript keeps these by default (model size)
        return True
    return None


def fold(model):
    """Inline, fold constants (with node-level shape inference), drop Identity and dead nodes."""
    import onnx_ir as ir
    import onnx_ir.passes.common as common
    from onnxscript.optimizer import _constant_folding as cf

    ir_model = ir.serde.deserialize_model(model)
    passes = ir.passes.Sequential(
        common.InlinePass(),
        ir.passes.PassManager([
            cf.FoldConstantsPass(shape_inference=True, input_size_limit=_SIZE_LIMIT,
                                 output_size_limit=_SIZE_LIMIT, should_fold=_should_fold),
            common.IdentityEliminationPass(),
            common.RemoveUnusedNodesPass(),
        ], steps=4, early_stop=True),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.RemoveUnusedNodesPass(),
    )
    passes(ir_model)
    return ir.serde.serialize_model(ir_model)


def static_shapes(model, path: str) -> dict[str, tuple]:
    """Every tensor's shape (batch included) by onnx's strict shape inference."""
    import onnx
    from .qonnx import shape_stand_ins
    model = shape_stand_ins(model)          # QONNX Quant keeps its input's shape
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception:
        # a node that does not type-check (e.g. an integer tensor into Relu): infer what can be,
        # so that the handlers name the node; onnxruntime refuses such a model in the proof anyway
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise NeurodeployError(f"shape inference failed: {first}", path, "re-export the model") from None
    shapes = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
            continue
        dims = t.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def normalise(model, path: str):
    """(normalised ModelProto, tensor shapes, batch) of a checked model."""
    model = check_opset(model, path)
    batch = fix_batch(model, path)
    try:
        model = fold(model)
    except NeurodeployError:
        raise
    except Exception as exc:   # the folder evaluates nodes: a malformed one fails there
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {str(cause).strip().splitlines()[0][:120]})" if cause and str(cause).strip() else ""
        raise NeurodeployError(f"constant folding failed: {first}{detail}", path, "re-export the model") from None
    shapes = static_shapes(model, path)
    return model, shapes, batch

