"""PyTorch front end: an `nn.Module` (or a `.pt2` file from `torch.export.save`) -> `FloatGraph`.

The result is the same float graph the ONNX front end builds from the model's ONNX export
(same ops, same float64 parameters; only node names differ): BatchNorm stays a `BatchNorm`
node (the `fold_bn` pass folds it, as for ONNX), a QCFS activation comes out as its
elementwise chain Scale(1/λ) Scale(Q) Shift(½) Floor Scale(1/Q) Clip(0, 1) Scale(λ), which
the `fuse_quant_act` pass turns into one quantiser, exactly as it does for the ONNX chain
Div Mul Add Floor Div Clip Mul.

Why torch.export and not torch.fx.symbolic_trace
-----------------------------------------------
- One small, closed op set.  torch.export lowers everything a user can write (modules,
  `F.relu`, `torch.relu`, `x.relu()`, `x.view`, `torch.flatten`, operators, slicing) to
  ATen ops, so the front end has one handler per ATen op (like the ONNX front end has one per
  ONNX op) instead of one per module class *and* per function *and* per tensor method.
- Complete and sound capture.  fx's symbolic tracing silently bakes in Python control flow
  and fails on shape arithmetic (`x.view(x.size(0), -1)`); export either traces the exact
  computation for the example input's shapes (every tensor has a known shape in
  `node.meta["val"]`, which the handlers use to recognise flattens and global pools) or
  refuses with a reason.  Custom autograd functions (QCFS's straight-through floor) are
  inlined to their forward ops.
- Readable names survive: every node carries `nn_module_stack`, the module path
  (`layer2.0.conv1`) and class it came from.  We name float-graph nodes after it and
  name it in every error.
- Parameters are lifted to named inputs (`graph_signature`), so weights are read as
  constants without executing the model, and everything computed from constants only
  (e.g. a transposed weight after `run_decompositions`) is folded by running the op.
- A program can be saved (`torch.export.save`, `.pt2`), which is what the command line
  compiles; fx graphs have no file format.
Both the default (training) ATen IR of `torch.export.export` and the core ATen IR after
`run_decompositions()` are accepted (conv2d/convolution, linear/addmm/mm, batch_norm/
_native_batch_norm_legit_no_training, adaptive_avg_pool2d/mean, flatten/view, ...).

Supported (see `SUPPORTED_MODULES`, `SUPPORTED_FUNCTIONS`, `supported_ops()`)
-----------------------------------------------------------------------------
Conv2d (grouped, depthwise), Linear, BatchNorm1d/2d (eval mode), ReLU, ReLU6 / Hardtanh / clamp
(Clip), `neurodeploy.nn.QCFS` (via its ops), AvgPool2d, AdaptiveAvgPool2d (any output size;
non-uniform windows are folded into the Linear after them by `passes.fold_adaptive_pool`), MaxPool2d (padding, dilation, ceil_mode), Flatten / view / reshape / squeeze /
unsqueeze / permute / transpose within a sample, `x.mean((2, 3))`, slicing `x[:, c0:c1, a::s]`,
F.pad (constant), torch.cat, split/chunk, softmax/log_softmax, residual `+` and `-`,
multiplication, division, addition and subtraction by constants (broadcast as numpy does:
aligned on the last axis), `torch.floor`, Identity, Dropout (eval).  These become the float-graph
ops the ONNX front end makes of the same network's export (`frontends/onnx`), so both give one
graph; the option-A shortcut of CIFAR ResNets, `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`,
is Slice, Slice, Pad here as there, and the `select_as_conv` pass makes it a fixed 1x1 conv.
After conversion the graph is proven against the exported program itself (`frontends.proof`).

Errors
------
Anything else raises `neurodeploy.errors.UnsupportedError` (one line) naming the source, the
module path and class (or "top-level forward"), the user's source line, the ATen op, and the
supported modules and functions, e.g.
``Net: module 'layer2.0.act' (GELU) at net.py:12: unsupported op aten.gelu -- supported modules: ...``.
A model that torch.export cannot trace raises `UnsupportedError` with export's first line.
"""
from .context import SUPPORTED_FUNCTIONS, SUPPORTED_MODULES
from .handlers import handler, supported_ops
from .program import export_module, graph_from_program, load_program, load_pt2, load_torch

__all__ = ["SUPPORTED_FUNCTIONS", "SUPPORTED_MODULES", "export_module", "graph_from_program", "handler",
           "load_program", "load_pt2", "load_torch", "supported_ops"]
