"""The Python API: compile a trained model, simulate it, verify it, save it.

    from neurodeploy import api as nd          # `import neurodeploy as nd` once __init__ exposes it
    net = nd.compile(model, example_input, target="loihi2", scheme="bitplane")
    logits = nd.simulate(net, x)               # bit-accurate fixed-point simulation
    report = nd.verify(net, model, x, y)       # float model vs quantised ANN vs SNN, layer by layer
    net.save("out/")                           # ir.json + params.npz + summary.md, atomically

`model` may be an `nn.Module` (exported with torch.export on `example_input`), a
`torch.export.ExportedProgram`, or a path to an `.onnx` file or a `.pt2` file written by
`torch.export.save`.  Every user error is a `neurodeploy.NeurodeployError`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NeurodeployError
from .ir import float_graph as fg
from .ir.spiking import SpikingGraph
from .registry import get_scheme

__all__ = ["CompiledNet", "compile", "simulate", "verify", "load"]



@dataclass
class CompiledNet:
    """A compiled spiking network (`graph`, the spiking IR) and the float graph it came from."""

    graph: SpikingGraph
    float_graph: fg.FloatGraph | None = None

    def save(self, out_dir: str | Path) -> Path:
        """Write ir.json, params.npz and summary.md to `out_dir` atomically (as `neurodeploy compile`)."""
        from .compiler import save_artifact
        return save_artifact(self.graph, out_dir, {"summary.md": self.summary()})

    def summary(self) -> str:
        """The compile summary (Markdown): one row per layer."""
        from .reports.summary import summary_markdown
        return summary_markdown(self.graph)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.graph.input.input_shape)

    @property
    def latency_steps(self) -> int:
        return int(self.graph.meta.get("latency_steps", 0))

    def __repr__(self) -> str:
        layers = len(self.graph.layers)
        return (f"CompiledNet(scheme={self.graph.scheme!r}, target={self.graph.target!r}, layers={layers}, "
                f"input_shape={self.input_shape}, latency_steps={self.latency_steps})")


def load(directory: str | Path) -> CompiledNet:
    """A compiled network saved with `CompiledNet.save` or `neurodeploy compile`."""
    from .ir.serialize import load as load_ir
    return CompiledNet(load_ir(directory))


# --- compile -------------------------------------------------------------------------------
def _numpy(x, what: str) -> np.ndarray:
    if x is None:
        return None
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x)


def _options(scheme: str, options: dict):
    """The scheme's options from keyword arguments (the CLI's flags with Python names), checked by
    the scheme: a name no scheme has, or an option of another scheme, is refused."""
    options = dict(options)
    if options.get("calibration") is not None:
        cal = options["calibration"]
        cal = cal if isinstance(cal, (str, Path)) else _numpy(cal, "calibration")   # a path is refused below
        # float32 like the command line's samples; anything else is refused by the scheme's checks
        options["calibration"] = cal.astype(np.float32) if getattr(cal, "dtype", None) is not None \
            and cal.dtype.kind in "fiu" else cal
    return get_scheme(scheme).options(options)


def _tensors_sha256(tensors: dict) -> str:
    """A fingerprint of named tensors (a module's parameters and buffers): names, dtypes, shapes, bytes."""
    import torch
    h = hashlib.sha256()
    for name, t in sorted(tensors.items()):
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()


def _float_graph(model, example_input=None, probe=None) -> tuple[fg.FloatGraph, dict]:
    """(float graph, meta["model"]) for a path, an nn.Module or an ExportedProgram; the front end
    proves its graph on `probe` (calibration samples; default: the example input and seeded inputs)."""
    if isinstance(model, (str, Path)):
        from .compiler import load_model, model_meta       # the command line's dispatch by suffix
        return load_model(model, probe), model_meta(model)
    import torch
    from .compiler import MODULE_LABEL, PROGRAM_LABEL
    from .frontends.torch import load_torch
    if isinstance(model, torch.export.ExportedProgram):
        graph = load_torch(model, None, probe=probe)
        return graph, {"file": PROGRAM_LABEL, "sha256": _tensors_sha256({**model.constants, **model.state_dict})}
    if isinstance(model, torch.nn.Module):
        graph = _module_graph(model, example_input, probe)
        return graph, {"file": f"{type(model).__name__} {MODULE_LABEL}",
                       "sha256": _tensors_sha256(model.state_dict())}
    raise NeurodeployError(f"cannot compile a {type(model).__name__}", "neurodeploy.compile",
                           "pass an nn.Module with an example input, an ExportedProgram, or an .onnx/.pt2 path")


def _is_qat_module(model) -> bool:
    """True for an nn.Module prepared for quantisation-aware training (holds fake-quant modules)."""
    import sys
    if "torch" not in sys.modules:
        return False
    import torch
    from torch.ao.quantization import FakeQuantizeBase
    return isinstance(model, torch.nn.Module) and any(isinstance(m, FakeQuantizeBase) for m in model.modules())


def _module_graph(model, example_input, probe=None) -> fg.FloatGraph:
    """An nn.Module -> FloatGraph, by the front end its neurons need: spiking models (ReverB
    modules, LIF neurons) get their own per-step leaves before export; ANNs go to torch.export."""
    from .frontends.per_step import spiking_front_end
    from .frontends.torch import load_torch
    front_end = spiking_front_end(model)
    if front_end is not None:
        return front_end.load_model(model, example_input)
    return load_torch(model, example_input, probe=probe)


def compile(model_or_path, example_input=None, target: str = "loihi2", scheme: str = "bitplane",
            **options) -> CompiledNet:
    """Compile a trained model into a spiking network.

    model_or_path: an `nn.Module` (then `example_input`, a tensor shaped like a batch of inputs,
    is required; a QAT model from `neurodeploy.nn.prepare_qat` is compiled through its QDQ ONNX
    export), a `torch.export.ExportedProgram`, or a path to an `.onnx` / `.pt2` file.
    target: "loihi2", "cpu" or a path to a target .toml.  scheme: "bitplane" (or any registered
    scheme, e.g. "rate").
    options: the scheme's options (the CLI's compile flags with Python names, see
    `get_scheme(scheme).Options`): calibration (samples shaped like the input, array or tensor,
    for the input quantiser when the model has none), timesteps, input_bits (default 8), chips,
    and the scheme's own (lossy, reset, payload_bits, ...); an option the scheme does not have is
    refused.  A path is compiled exactly as `neurodeploy compile` does; PyTorch models go through
    `neurodeploy.frontends.torch`, which builds the same float graph.
    """
    if _is_qat_module(model_or_path):
        # PyTorch QAT (fake-quant modules): through its QDQ ONNX export, the paper's 8-bit ANN
        import tempfile

        from .nn.qat import export_qat_onnx
        with tempfile.TemporaryDirectory() as tmp:
            path = export_qat_onnx(model_or_path, example_input, Path(tmp) / "qat.onnx")
            return compile(path, target=target, scheme=scheme, **options)
    opts = _options(scheme, options)
    graph, model_meta = _float_graph(model_or_path, example_input, opts.calibration)
    from .compiler import compile_graph
    return CompiledNet(compile_graph(graph, target, scheme, opts, model_meta), graph)


# --- simulate ------------------------------------------------------------------------------
def _spiking(net) -> SpikingGraph:
    if isinstance(net, CompiledNet):
        return net.graph
    if isinstance(net, SpikingGraph):
        return net
    if isinstance(net, (str, Path)):
        return load(net).graph
    raise NeurodeployError(f"expected a CompiledNet, got {type(net).__name__}", "neurodeploy",
                           "pass the result of neurodeploy.compile (or a compiled directory)")


def _inputs(x, graph: SpikingGraph) -> np.ndarray:
    from .arrays import check_inputs
    return check_inputs(_numpy(x, "inputs"), graph.input.input_shape, "x")


def simulate(net, x, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Run the compiled network bit-accurately on x (N, ...); returns float32 (N, outputs)."""
    from .sim.engine import simulate as run
    graph = _spiking(net)
    out, _ = run(graph, _inputs(x, graph), batch_size, device)
    return out


# --- verify --------------------------------------------------------------------------------
def _torch_logits(fn, x: np.ndarray, batch_size: int, device) -> np.ndarray:
    import torch
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            # a copy: x may be a read-only memory map (the CLI's inputs)
            xb = torch.from_numpy(np.array(x[start:start + batch_size], dtype=np.float32)).to(device)
            out = fn(xb)
            if isinstance(out, (tuple, list)):
                out = out[0]
            outs.append(out.detach().float().cpu().numpy().reshape(len(xb), -1))
    return np.concatenate(outs)


def run_torch(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The float model's outputs (N, outputs) float32: an nn.Module in eval mode (its train/eval
    flags are restored), or an ExportedProgram, run by PyTorch on its own device."""
    import torch
    x = np.asarray(x, dtype=np.float32)
    if isinstance(model, torch.export.ExportedProgram):
        mod = model.module()
        fixed = _static_batch(model)
        if fixed is None:
            return _torch_logits(mod, x, batch_size, _device_of(mod))
        # exported for a fixed batch size: run in chunks of it, zero-padding the last one
        n = len(x)
        pad = (-n) % fixed
        xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], np.float32)]) if pad else x
        return _torch_logits(mod, xp, fixed, _device_of(mod))[:n]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        param = next(iter(model.parameters()), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        return _torch_logits(lambda xb: model(xb.to(dtype)), x, batch_size, _device_of(model))
    finally:
        for m, t in modes:
            m.training = t


def _static_batch(program) -> int | None:
    """The batch size an ExportedProgram was specialised to (None when the batch is dynamic)."""
    from torch.export.graph_signature import InputKind
    user = [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    for node in program.graph.nodes:
        if node.op == "placeholder" and user and node.name == user[0]:
            val = node.meta.get("val")
            if val is not None and len(val.shape) and isinstance(val.shape[0], int):
                return int(val.shape[0])
    return None


def _device_of(module):
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else "cpu"


def verify_against(net: SpikingGraph, float_logits: np.ndarray, float_graph: fg.FloatGraph, x: np.ndarray,
                   y: np.ndarray, model_label: str, batch_size: int = 256, device: str = "cpu",
                   progress: bool = False) -> dict:
    """`neurodeploy.reports.verify.verify` with the float model's outputs and float graph given.

    Runs verify's own code, so the dict is the same; where verify would run onnxruntime on a
    file and read the file's float graph, it gets `float_logits` (the float model's outputs on
    x) and `float_graph` (the front end's graph).
    """
    from .reports import verify as verify_mod
    return verify_mod.verify(net, model_label, x, y, batch_size, device, progress,
                             float_logits=float_logits, float_graph=float_graph)


def verify(net, model, x, y, batch_size: int = 256, device: str = "cpu", progress: bool = False,
           allow_other_model: bool = False) -> dict:
    """Float model vs quantised ANN vs SNN on (x, y); the dict of `neurodeploy.reports.verify.verify`.

    model: the reference float model: an `nn.Module` or `ExportedProgram` (run by PyTorch; its
    float graph for the per-layer quantisation mismatches comes from the PyTorch front end), an
    `.onnx` path (onnxruntime, exactly `reports.verify.verify`), or a `.pt2` path.  It must be
    the model the network was compiled from (its sha256, or its tensors' digest for a module, is
    checked against the one compiled); `allow_other_model=True` compares against another one,
    and the result then holds "model_is_compiled_one": False.
    """
    from .arrays import check_labels
    from .sim.core import check_batch_size, check_device
    check_batch_size(batch_size)
    check_device(device)
    graph = _spiking(net)
    x = _inputs(x, graph)
    y = check_labels(_numpy(y, "labels"), len(x), "y", n_classes=int(np.prod(graph.output.shape)))
    same = _same_model(graph, model, allow_other_model)
    result = _verify(graph, model, x, y, batch_size, device, progress)
    if same is False:
        result["model_is_compiled_one"] = False      # only with allow_other_model: say so
    return result


def _same_model(graph: SpikingGraph, model, allow_other_model: bool) -> bool | None:
    """True / False: `model` is / is not the one compiled (False only with allow_other_model);
    None where the two cannot be compared (a network compiled from a file, verified with a module)."""
    from .compiler import MODULE_LABEL, PROGRAM_LABEL, check_same_model
    if isinstance(model, (str, Path)):
        return check_same_model(graph, model, allow_other_model)
    recorded = graph.meta.get("model") or {}
    import torch
    if isinstance(model, torch.export.ExportedProgram) and recorded.get("file") == PROGRAM_LABEL:
        digest = _tensors_sha256({**model.constants, **model.state_dict})
    elif isinstance(model, torch.nn.Module) and str(recorded.get("file", "")).endswith(MODULE_LABEL):
        digest = _tensors_sha256(model.state_dict())
    else:
        return None
    if digest == recorded.get("sha256"):
        return True
    if allow_other_model:
        return False
    raise NeurodeployError("the model's parameters are not those the network was compiled from",
                           "neurodeploy.verify", "pass the model you compiled, or allow_other_model=True")


def _verify(graph: SpikingGraph, model, x, y, batch_size: int, device: str, progress: bool) -> dict:
    if not get_scheme(graph.scheme).ann_reference:
        # a trained SNN (cuba, reverb): the reference is the float SNN itself, not a quantised ANN
        from .reports.verify import compare_accuracy
        r = compare_accuracy(model, graph, x, y, batch_size=batch_size)
        return {"scheme": graph.scheme, "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
                "samples": int(len(x)), "accuracy": {"float_snn": r["float_accuracy"],
                "fixed_point_snn": r["fixed_accuracy"]}, "agreement": {"fixed_vs_float_snn": r["agreement"]},
                "guarantee": "none: fixed point approximates the float SNN", "guarantee_holds": True}
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            from .reports.verify import verify as verify_onnx
            return verify_onnx(graph, path, x, y, batch_size, device, progress)
        if path.suffix.lower() != ".pt2":
            raise NeurodeployError(f"unsupported model format '{path.suffix}'", str(path),
                                   "pass the .onnx / .pt2 file or the nn.Module the network was compiled from")
        from .frontends.torch import graph_from_program, load_program
        program = load_program(path)
        return verify_against(graph, run_torch(program, x, batch_size), graph_from_program(program, str(path), prove=False),
                              x, y, str(path), batch_size, device, progress)
    import torch
    from .frontends.torch import load_torch
    if isinstance(model, torch.export.ExportedProgram):
        float_graph, label = load_torch(model, None, prove=False), "ExportedProgram"
    elif isinstance(model, torch.nn.Module):
        float_graph = load_torch(model, torch.from_numpy(np.array(x[:1], dtype=np.float32)), prove=False)
        label = f"{type(model).__name__} (torch.nn.Module)"
    else:
        raise NeurodeployError(f"cannot verify against a {type(model).__name__}", "neurodeploy.verify",
                               "pass the nn.Module, ExportedProgram or model file the network was compiled from")
    return verify_against(graph, run_torch(model, x, batch_size), float_graph, x, y, label,
                          batch_size, device, progress)
