"""From an exported program to the float graph, and the PyTorch front end's entry points.

`graph_from_program` walks an `ExportedProgram` node by node through the op handlers
(`handlers.py`) and names the graph's nodes after the modules they came from; `export_module`,
`load_torch`, `load_program` and `load_pt2` are the ways in (an nn.Module, a program, a `.pt2` file).
"""
from __future__ import annotations

import operator
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ...errors import NeurodeployError, UnsupportedError
from ...ir import float_graph as fg
from .context import Context, NodeInfo, Value, bind_args
from .handlers import HANDLERS, IDENTITY_OPS, NO_VALUE_OPS

# --- building the graph ----------------------------------------------------------------
def _op_short(target) -> str:
    if target is operator.getitem:
        return "getitem"
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(target, "__name__", str(target))


def _user_line(meta) -> str:
    trace = meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+)', trace)
    user = [(f, l) for f, l in frames if "/torch/" not in f and "/neurodeploy/nn/" not in f]
    if not user:
        return ""
    f, l = user[-1]
    return f"{Path(f).name}:{l}"


def _module_info(nodes) -> dict[str, NodeInfo]:
    stacks = {}
    all_paths = set()
    for n in nodes:
        st = n.meta.get("nn_module_stack") or {}
        entries = list(st.values())
        if entries:
            path, cls = entries[-1][0], entries[-1][1]
        else:
            path, cls = "", ""
        cls = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
        stacks[n.name] = (path, cls.rsplit(".", 1)[-1])
        all_paths.update(e[0] for e in entries)
    info, run, prev = {}, -1, None
    for n in nodes:
        path, cls = stacks[n.name]
        if path != prev:
            run, prev = run + 1, path
        leaf = bool(path) and not any(p.startswith(path + ".") for p in all_paths)
        info[n.name] = NodeInfo(path, cls, _op_short(n.target), leaf, run, _user_line(n.meta))
    return info


def _readable_names(ctx: Context) -> dict[str, str]:
    """Graph node -> module-path name: a leaf module's output node is named by its path
    (`layer1.0.conv1`, `layer1.0.act1`), other nodes `<path>.<op>` (`layer1.0.add`)."""
    by_run: dict[int, list[str]] = {}
    for name in ctx.created:
        if name in ctx.graph.g:
            by_run.setdefault(ctx.info[ctx.node_fx[name]].run, []).append(name)
    want = {}
    for run, names in by_run.items():
        for i, name in enumerate(names):
            inf = ctx.info[ctx.node_fx[name]]
            if inf.leaf and i == len(names) - 1:
                want[name] = inf.path
            else:
                want[name] = f"{inf.path}.{inf.op}" if inf.path else inf.op
    taken, out = {"input"}, {}
    for name in ctx.created:
        if name not in want:
            continue
        base, new, k = want[name], want[name], 1
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        out[name] = new
    return out


def _check_finite(name: str, t, source: str) -> None:
    import torch
    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NeurodeployError(f"parameter '{name}' holds {bad} NaN/Inf value(s)", source,
                               "retrain or repair the model; the compiler cannot quantise non-finite weights")


def graph_from_program(ep, source: str = "", probe=None, prove: bool = True) -> fg.FloatGraph:
    """An `ExportedProgram` -> `FloatGraph` (one input, one output, ops as in the ONNX front end);
    with `prove`, checked against the program itself on `probe` (samples shaped like the input;
    default: seeded random inputs) -- see `frontends.proof`."""
    import networkx as nx
    from torch.export.graph_signature import InputKind, OutputKind

    sig = ep.graph_signature
    consts, user_inputs = {}, []
    for spec in sig.input_specs:
        arg = getattr(spec.arg, "name", None)
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(arg)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            t = ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target]
            _check_finite(spec.target, t, source)
            consts[arg] = t.detach()
        else:
            raise UnsupportedError(f"the exported program has a {spec.kind.name} input '{spec.target}'", source,
                                   "export a model whose only inputs are the data and its parameters")
    if len(user_inputs) != 1:
        raise UnsupportedError(f"the model has {len(user_inputs)} inputs; exactly one is supported", source)
    bad_out = [s for s in sig.output_specs if s.kind != OutputKind.USER_OUTPUT]
    if bad_out:
        raise UnsupportedError(f"the exported program updates state ({bad_out[0].kind.name} of "
                               f"'{bad_out[0].target}'): a BatchNorm or a module in training mode?", source,
                               "call model.eval() before torch.export.export")
    user_outputs = [s for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]
    if len(user_outputs) != 1:
        raise UnsupportedError(f"the model has {len(user_outputs)} outputs; exactly one is supported", source)

    graph = fg.FloatGraph(source=source)
    ctx = Context(graph, consts, source)
    nodes = list(ep.graph.nodes)
    ctx.info = _module_info([n for n in nodes if n.op == "call_function"])
    out_node = None
    for n in nodes:
        if n.op == "placeholder":
            if n.name in consts:
                ctx.env[n.name] = consts[n.name]
            elif n.name == user_inputs[0]:
                shape = ctx.shape(n)
                if any(d is None for d in shape[1:]):
                    raise UnsupportedError(f"input '{n.name}' has a dynamic dimension other than the batch", source,
                                           "export with fixed sizes; only the batch dimension may be dynamic")
                if len(shape) not in (2, 4):
                    raise UnsupportedError(f"input '{n.name}' has shape {list(shape)}; expected (N, F) or (N, C, H, W)",
                                           source)
                graph.add("input", fg.Input(tuple(shape[1:])), origin="graph input")
                ctx.env[n.name] = Value("input")
            else:
                ctx.env[n.name] = None
            continue
        if n.op == "output":
            out_node = n
            continue
        if n.op != "call_function":
            raise UnsupportedError(f"unsupported node kind '{n.op}' ({n.target})", source)
        ctx.node = n
        ctx.env[n.name] = _convert(n, ctx)
    outs = out_node.args[0]
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    idx = sig.output_specs.index(user_outputs[0])
    result = ctx.resolve(outs[idx])
    ctx.node = out_node
    if not isinstance(result, Value):
        raise UnsupportedError("the model output is a constant (or not a tensor)", source)
    graph.output = ctx.tensor(result)
    if graph.output == "input":
        raise UnsupportedError("the model returns its input", source)
    keep = nx.ancestors(graph.g, graph.output) | {graph.output}
    graph.g.remove_nodes_from([n for n in list(graph.g) if n not in keep])
    mapping = _readable_names(ctx)
    nx.relabel_nodes(graph.g, mapping, copy=False)
    graph.origin = {mapping.get(k, k): v for k, v in graph.origin.items() if mapping.get(k, k) in graph.g}
    graph.output = mapping.get(graph.output, graph.output)
    if prove and all(type(graph.op(n)).__name__ in fg.OP_TYPES for n in graph.g):
        # (trained SNNs' graphs hold their neurons as opaque ops: their own verification covers them)
        fx_of = {}
        for n in nodes:                    # the last fx node standing for a graph node holds its value
            v = ctx.env.get(n.name)
            if isinstance(v, Value) and v.name in mapping:
                fx_of[mapping[v.name]] = n.name
        _prove_program(ep, graph, fx_of, probe)
    return graph


def _program_values(ep, x: np.ndarray, names: set) -> dict:
    """The program's value of every fx node in `names` on x (batch first), in chunks of a fixed
    batch size where the program was exported with one."""
    import torch
    from torch.export.graph_signature import InputKind
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT][0]
    val = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user).meta.get("val")
    fixed = int(val.shape[0]) if val is not None and isinstance(val.shape[0], int) else None
    dtype = val.dtype if val is not None else torch.float32
    module = ep.module()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in names and isinstance(out, torch.Tensor):
                self.values.setdefault(n.name, []).append(out.detach().to("cpu", torch.float64).numpy())
            return out
    rec = Recorder(module)
    rec.values = {}
    step = fixed or len(x)
    with torch.no_grad():
        for start in range(0, len(x), step):
            xb = np.asarray(x[start:start + step], dtype=np.float32)
            n = len(xb)
            if fixed and n < fixed:
                xb = np.concatenate([xb, np.zeros((fixed - n,) + xb.shape[1:], np.float32)])
            before = {k: len(v) for k, v in rec.values.items()}
            rec.run(torch.from_numpy(xb).to(device=device, dtype=dtype))
            for k, v in rec.values.items():
                if len(v) > before.get(k, 0):
                    v[-1] = v[-1][:n]
    return {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in rec.values.items()}, dtype


def _prove_program(ep, graph: fg.FloatGraph, fx_of: dict, probe) -> None:
    import torch

    from ..proof import probe_inputs, prove
    (inp,) = graph.input_nodes()
    x = probe_inputs(graph.op(inp).shape, None if probe is None else np.asarray(probe, dtype=np.float32))
    try:
        values, dtype = _program_values(ep, x, set(fx_of.values()))
    except Exception as exc:
        raise NeurodeployError(f"the exported program cannot run on {len(x)} probe samples "
                               f"({type(exc).__name__}: {_first_line(exc)[:160]})", graph.source,
                               "export with a dynamic batch dimension, or pass calibration samples") from None
    reference = {node: values[fx] for node, fx in fx_of.items() if fx in values}
    unit = float(torch.finfo(dtype).eps) / 2 if dtype.is_floating_point else 2.0 ** -24
    prove(graph, x, reference, fx_of, "the exported program", unit_roundoff=unit)


def _has_graph_value(v) -> bool:
    if isinstance(v, Value):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_graph_value(x) for x in v)
    if isinstance(v, dict):
        return any(_has_graph_value(x) for x in v.values())
    return False


def _convert(n, ctx: Context):
    import torch
    op = _op_short(n.target)
    if not n.users and op in NO_VALUE_OPS | {"sym_size", "sym_numel", "sym_stride"}:
        return None
    if n.target is operator.getitem:
        seq, i = ctx.resolve(n.args[0]), n.args[1]
        return seq[i] if isinstance(seq, (list, tuple)) else None
    args = ctx.resolve(list(n.args))
    kwargs = {k: ctx.resolve(v) for k, v in n.kwargs.items()}
    if op.startswith("sym_") or op in NO_VALUE_OPS:
        return n.meta.get("val")
    if not _has_graph_value(args) and not _has_graph_value(kwargs):
        # everything is constant (weights, numbers): fold by running the op
        try:
            with torch.no_grad():
                return n.target(*args, **kwargs)
        except Exception as exc:
            raise UnsupportedError(f"could not evaluate the constant expression aten.{op} "
                                   f"({type(exc).__name__})", ctx.where(n)) from None
    if not hasattr(n.target, "_schema"):
        raise ctx.unsupported(f"unsupported function {getattr(n.target, '__name__', n.target)}")
    if op in IDENTITY_OPS:
        a = bind_args(n)
        if op in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout") \
                and a.get("train"):
            raise ctx.unsupported("dropout in training mode", "call model.eval() before exporting / compiling")
        val = n.meta.get("val")
        if op in ("_to_copy", "to", "type_as") and val is not None and not val.is_floating_point():
            raise ctx.unsupported("conversion to a non-float dtype")
        first = ctx.resolve(n.args[0])
        return (first, None) if op == "native_dropout" else first
    fn = HANDLERS.get(op)
    if fn is None:
        raise ctx.unsupported(f"unsupported op aten.{op}")
    return fn(n, ctx, bind_args(n))


# --- entry points ------------------------------------------------------------------------
def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


def export_module(model, example_input, source: str = ""):
    """torch.export the model in eval mode (its train/eval flags are restored afterwards)."""
    import torch
    source = source or _module_source(model)
    if not isinstance(model, torch.nn.Module):
        raise NeurodeployError(f"expected a torch.nn.Module, got {type(model).__name__}", source)
    if example_input is None:
        raise NeurodeployError("a PyTorch model needs an example input", source,
                               "pass example_input, a tensor shaped like a batch of inputs (N, C, H, W) or (N, F)")
    if isinstance(example_input, (tuple, list)):
        if len(example_input) != 1:
            raise UnsupportedError(f"{len(example_input)} example inputs; exactly one is supported", source)
        example_input = example_input[0]
    if not isinstance(example_input, torch.Tensor):
        example_input = torch.as_tensor(np.asarray(example_input, dtype=np.float32))
    param = next(iter(model.parameters()), None)
    if param is not None:
        example_input = example_input.to(param.device)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if example_input.is_floating_point() and example_input.dtype != dtype:
        example_input = example_input.to(dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return torch.export.export(model, (example_input,))
    except NeurodeployError:
        raise
    except Exception as exc:
        raise UnsupportedError(f"torch.export could not trace the model ({type(exc).__name__}: {_first_line(exc)})",
                               source, "make forward() traceable by torch.export (no data-dependent Python "
                               "control flow, one tensor in and one tensor out)") from None
    finally:
        for m, t in modes:
            m.training = t


def _module_source(model) -> str:
    return f"{type(model).__name__} (torch.nn.Module)"


def load_torch(model, example_input, source: str = "", probe=None, prove: bool = True) -> fg.FloatGraph:
    """An `nn.Module` (exported with torch.export on `example_input`) -> `FloatGraph`, proven against
    the exported program on `probe` (default: the example input and seeded random inputs)."""
    import torch
    if isinstance(model, torch.export.ExportedProgram):
        return graph_from_program(model, source or "ExportedProgram", probe, prove)
    source = source or _module_source(model)
    if probe is None and example_input is not None:
        probe = example_input.detach().cpu().numpy() if isinstance(example_input, torch.Tensor) else example_input
    return graph_from_program(export_module(model, example_input, source), source, probe, prove)


@contextmanager
def weights_only_loads():
    """Every `torch.load` inside runs with weights_only=True, whatever its call site asks.

    `torch.export.load` unpickles archive members marked `use_pickle` and retries a failed
    sample-input load with weights_only=False: a crafted `.pt2` runs its own code there.  PyTorch
    reads TORCH_FORCE_WEIGHTS_ONLY_LOAD on every `torch.load` call, so setting it for the duration
    of the load turns each of those into the restricted unpickler (tensors, containers, numbers)."""
    saved = {key: os.environ.pop(key, None)
             for key in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def load_program(path: str | Path):
    """Read a `.pt2` file written by `torch.export.save`, with clear errors; never unpickles
    Python objects (see `weights_only_loads`)."""
    import pickle

    import torch

    from ..per_step import register_spiking_ops
    path = str(path)
    if not Path(path).is_file():
        raise NeurodeployError("file not found", path, "check the path to the model")
    register_spiking_ops()          # a trained SNN's program calls neurodeploy's custom ops
    try:
        with weights_only_loads():
            return torch.export.load(path)
    except pickle.UnpicklingError as exc:
        raise NeurodeployError(f"the archive holds pickled Python objects, which neurodeploy never loads "
                               f"({_first_line(exc)[:120]})", path,
                               "save a plain model: torch.export.save(torch.export.export(model.eval(), (x,)), path) "
                               "with ordinary tensors as weights, constants and sample inputs") from None
    except Exception as exc:
        raise NeurodeployError(f"not a readable .pt2 program ({type(exc).__name__}: {_first_line(exc)[:120]})", path,
                               "save the model with torch.export.save(torch.export.export(model.eval(), (x,)), path)") \
            from None


def load_pt2(path: str | Path, probe=None, prove: bool = True) -> fg.FloatGraph:
    """A `.pt2` file (torch.export.save) -> `FloatGraph`, proven against the program."""
    return graph_from_program(load_program(path), str(path), probe, prove)
