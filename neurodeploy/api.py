"""The Python API: the command line's commands as functions with the same options.

    import neurodeploy as nd
    net = nd.compile(model, example_input, target="loihi2", scheme="bitplane")   # neurodeploy compile
    logits = nd.simulate(net, x)               # neurodeploy simulate: bit-accurate fixed point
    result = nd.verify(net, model, x, y)       # neurodeploy verify: float vs quantised ANN vs SNN
    d = nd.report(net, x, labels=y, model=model, output="report.html")           # neurodeploy report
    table = nd.compare("m.onnx", x, y, schemes="bitplane,rate", output="cmp/")   # neurodeploy compare
    nd.export(net, "netx", "net.h5")           # neurodeploy export
    net.save("out/")                           # ir.json + params.npz + summary.md, atomically

`model` may be an `nn.Module` (exported with torch.export on `example_input`), a
`torch.export.ExportedProgram`, a path to an `.onnx` file or a `.pt2` file written by
`torch.export.save`, a NIR graph of a trained SNN (a `.nir` path or a ``nir.NIRGraph``; the
`cuba` scheme), or a Lava-DL NetX file (`.net`), a spiking network already, imported as it is.
Arrays (`x`, labels, calibration) may be numpy arrays, tensors or paths to .npy files.  Each
option has the name of its command-line flag (`--energy-model` -> `energy_model`,
`--rate-timesteps` -> `rate_timesteps`); the `neurodeploy` commands call these functions.
Every user error is a `neurodeploy.NeurodeployError`.
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

__all__ = ["CompiledNet", "compile", "simulate", "verify", "report", "compare", "export", "load"]



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
    """An array from a numpy array, a tensor, a list or a path to a .npy file (memory-mapped)."""
    if x is None:
        return None
    if isinstance(x, (str, Path)):
        from .arrays import load_npy
        return load_npy(x, what, mmap=True)
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
        # a path is refused by the scheme's checks (compile takes arrays here)
        options["calibration"] = cal if isinstance(cal, (str, Path)) else _calibration(cal)
    return get_scheme(scheme).options(options)


def _calibration(cal):
    """Calibration samples as float32 like the command line's; anything not real-valued is left
    for the scheme's checks (`arrays.check_calibration`) to refuse."""
    cal = _numpy(cal, "calibration samples")
    return cal.astype(np.float32) if getattr(cal, "dtype", None) is not None and cal.dtype.kind in "fiu" else cal


def _paths(*values) -> list:
    """The arguments given as paths: the command's input files, which no output may replace."""
    return [v for v in values if isinstance(v, (str, Path))]


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


def _float_graph(model, example_input=None, front=None, options=None, probe=None) -> tuple[fg.FloatGraph, dict, dict]:
    """(float graph, meta["model"], the front end's meta) for a path, an nn.Module, an
    ExportedProgram, or a model `front` reads (a scheme's own front end: `compiler.model_front_end`)."""
    if front is not None:
        graph, front_meta = front.load(model, options)
        if isinstance(model, (str, Path)):
            from .compiler import model_meta
            return graph, model_meta(model), front_meta
        library = type(model).__module__.split(".")[0]          # an in-memory model: nir.NIRGraph -> "nir"
        return graph, {"file": f"{type(model).__name__} ({library})", "sha256": None}, front_meta
    return (*_common_float_graph(model, example_input, probe), {})


def _common_float_graph(model, example_input, probe=None) -> tuple[fg.FloatGraph, dict]:
    """(float graph, meta["model"]) for an .onnx/.pt2 path, an nn.Module or an ExportedProgram; the
    front end proves its graph on `probe` (calibration samples; default: the example input and
    seeded inputs)."""
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


def compile(model_or_path, example_input=None, target: str = "loihi2", scheme: str | None = None,
            **options) -> CompiledNet:
    """Compile a trained model into a spiking network.

    model_or_path: an `nn.Module` (then `example_input`, a tensor shaped like a batch of inputs,
    is required; a QAT model from `neurodeploy.nn.prepare_qat` is compiled through its QDQ ONNX
    export), a `torch.export.ExportedProgram`, a path to an `.onnx` / `.pt2` file, or a NIR graph
    of a trained SNN (a `.nir` path or an in-memory ``nir.NIRGraph`` from snnTorch, Norse, sinabs,
    SpikingJelly ...), or a Lava-DL NetX file (`.net`).
    target: "loihi2", "cpu" or a path to a target .toml.  scheme: any registered scheme (e.g.
    "rate"); None (default): "bitplane", or for a NIR graph "cuba" (`compiler.default_scheme`).
    options: the scheme's options (the CLI's compile flags with Python names, see
    `get_scheme(scheme).Options`): calibration (samples shaped like the input, array or tensor,
    for the input quantiser when the model has none), timesteps, input_bits (default 8), chips (a
    number, or "auto": as many as the network needs, in net.graph.meta["allocation"]["chips"]),
    and the scheme's own (lossy, reset, payload_bits, ...; for NIR graphs nir_from="snntorch",
    nir_reset="zero", nir_dt=..., the --nir-* flags); an option the scheme does not have is
    refused.  A path is compiled exactly as `neurodeploy compile` does; PyTorch models go through
    `neurodeploy.frontends.torch`, which builds the same float graph.  A Lava-DL NetX file is
    imported exactly as `neurodeploy compile` does (`frontends.netx`: its own scheme, the options
    of `frontends.netx.options.NetxOptions`: timesteps, reset_interval, input_mode, ...).
    """
    if _is_qat_module(model_or_path):
        # PyTorch QAT (fake-quant modules): through its QDQ ONNX export, the paper's 8-bit ANN
        import tempfile

        from .nn.qat import export_qat_onnx
        with tempfile.TemporaryDirectory() as tmp:
            path = export_qat_onnx(model_or_path, example_input, Path(tmp) / "qat.onnx")
            return compile(path, target=target, scheme=scheme, **options)
    from .frontends.netx import is_netx_path
    if is_netx_path(model_or_path):                  # a Lava-DL NetX file: imported, exactly `neurodeploy compile`
        from .compiler import compile_model
        return CompiledNet(compile_model(model_or_path, target, scheme, options))
    from .compiler import check_front_end_options, compile_graph, default_scheme, model_front_end
    scheme = scheme or default_scheme(model_or_path)
    front = model_front_end(model_or_path, scheme)      # a NIR graph: the cuba scheme's front end
    opts = _options(scheme, options)
    check_front_end_options(model_or_path, scheme, front, opts)
    graph, model_meta, front_meta = _float_graph(model_or_path, example_input, front, opts, opts.calibration)
    return CompiledNet(compile_graph(graph, target, scheme, opts, model_meta, front_meta), graph)


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


def _where(x, name: str) -> str:
    """What an error about an array names: its file, else the argument."""
    return str(x) if isinstance(x, (str, Path)) else name


def _inputs(x, graph: SpikingGraph) -> np.ndarray:
    from .arrays import check_inputs, sample_shape
    return check_inputs(_numpy(x, "inputs"), sample_shape(graph), _where(x, "x"))


def simulate(net, x, batch_size: int = 256, device: str = "cpu", engine: str = "neurodeploy", *,
             workers: int = 1, ray_address: str | None = None) -> np.ndarray:
    """Run the compiled network bit-accurately on x (N, ...); returns float32 (N, outputs).
    engine: "neurodeploy" (default) or another of the scheme's bit-identical kernels (`neurodeploy
    simulate --engine`: "planes" for bitplane, "steps" for rate, sws, reverb, sdnn and cuba).
    workers > 1: the batches as Ray tasks on a local Ray instance (or the one this process joined
    with ray.init, or the cluster at `ray_address`), the same bytes (`neurodeploy.workers`)."""
    from .sim.engine import simulate as run
    from .workers import check_workers
    check_workers(workers, ray_address, device)
    graph = _spiking(net)
    out, _ = run(graph, _inputs(x, graph), batch_size, device, engine=engine, workers=workers,
                 ray_address=ray_address)
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
                   progress: bool = False, workers: int = 1, ray_address: str | None = None) -> dict:
    """`neurodeploy.reports.verify.verify` with the float model's outputs and float graph given.

    Runs verify's own code, so the dict is the same; where verify would run onnxruntime on a
    file and read the file's float graph, it gets `float_logits` (the float model's outputs on
    x) and `float_graph` (the front end's graph).
    """
    from .reports import verify as verify_mod
    return verify_mod.verify(net, model_label, x, y, batch_size, device, progress,
                             float_logits=float_logits, float_graph=float_graph, workers=workers,
                             ray_address=ray_address)


def verify(net, model, x, y=None, batch_size: int = 256, device: str = "cpu", progress: bool = False,
           allow_other_model: bool = False, *, workers: int = 1, ray_address: str | None = None) -> dict:
    """Float model vs quantised ANN vs SNN on (x, y); the dict of `neurodeploy.reports.verify.verify`.

    model: the reference float model: an `nn.Module` or `ExportedProgram` (run by PyTorch; its
    float graph for the per-layer quantisation mismatches comes from the PyTorch front end), an
    `.onnx` path (onnxruntime, exactly `reports.verify.verify`), or a `.pt2` path.  It must be
    the model the network was compiled from (its sha256, or its tensors' digest for a module, is
    checked against the one compiled); `allow_other_model=True` compares against another one,
    and the result then holds "model_is_compiled_one": False.  Or the NetX file a network was
    imported from, which Lava itself runs as the reference (`frontends.netx.verify`: bit-exact,
    layer by layer; labels optional; only that very file).
    workers > 1: the batches as Ray tasks, as `simulate` (the same result; a network of a scheme
    without a quantised ANN, or a NetX reference, runs here).
    """
    from .arrays import check_labels
    from .frontends.netx import is_netx_path
    from .sim.core import check_batch_size, check_device
    from .workers import check_workers
    check_batch_size(batch_size)
    check_device(device)
    check_workers(workers, ray_address, device)
    graph = _spiking(net)
    x = _inputs(x, graph)
    n_classes = int(np.prod(graph.output.shape))
    if is_netx_path(model):
        from .frontends.netx.verify import verify_netx
        y = None if y is None else check_labels(_numpy(y, "labels"), len(x), _where(y, "y"), n_classes=n_classes)
        return verify_netx(graph, model, x, y, progress)
    if y is None:
        raise NeurodeployError("verify needs labels", "neurodeploy.verify", "pass y (integer labels)")
    y = check_labels(_numpy(y, "labels"), len(x), _where(y, "y"), n_classes=n_classes)
    same = _same_model(graph, model, allow_other_model)
    result = _verify(graph, model, x, y, batch_size, device, progress, workers, ray_address)
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


def _verify(graph: SpikingGraph, model, x, y, batch_size: int, device: str, progress: bool, workers: int = 1,
            ray_address: str | None = None) -> dict:
    if not get_scheme(graph.scheme).ann_reference:
        # a trained SNN (cuba, reverb): the reference is the float SNN itself, not a quantised ANN
        from .reports.verify import compare_accuracy, snn_verdict
        r = compare_accuracy(model, graph, x, y, batch_size=batch_size)
        scheme = get_scheme(graph.scheme)
        verdict = snn_verdict(scheme, r["agreement"], len(x))
        return {"scheme": graph.scheme, "model": str(model) if isinstance(model, (str, Path)) else type(model).__name__,
                "samples": int(len(x)), "accuracy": {"float_snn": r["float_accuracy"],
                "fixed_point_snn": r["fixed_accuracy"]}, "agreement": {"fixed_vs_float_snn": r["agreement"]},
                "guarantee": scheme.guarantee, "verdict": verdict.to_dict(), "guarantee_holds": verdict.holds}
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            from .reports.verify import verify as verify_onnx
            return verify_onnx(graph, path, x, y, batch_size, device, progress, workers=workers,
                               ray_address=ray_address)
        if path.suffix.lower() != ".pt2":
            raise NeurodeployError(f"unsupported model format '{path.suffix}'", str(path),
                                   "pass the .onnx / .pt2 file or the nn.Module the network was compiled from")
        from .frontends.torch import graph_from_program, load_program
        program = load_program(path)
        return verify_against(graph, run_torch(program, x, batch_size), graph_from_program(program, str(path), prove=False),
                              x, y, str(path), batch_size, device, progress, workers, ray_address)
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
                          batch_size, device, progress, workers, ray_address)


# --- report, compare, export ------------------------------------------------------------------
def report(net, x, *, labels=None, model=None, format: str | None = None, output: str | Path | None = None,
           energy_model=None, index_bits: int = 0, batch_size: int = 256, device: str = "cpu",
           allow_other_model: bool = False, progress: bool = False) -> dict:
    """`neurodeploy report`: the verdict (with `model` and `labels`), whether the network can go to
    Loihi 2, and its costs (energy, memory, cores, latency, activity, per-layer dynamics).

    net: a CompiledNet, SpikingGraph or compiled directory.  x: inputs (N, *input shape).
    labels (N,): adds accuracies.  model: the model it was compiled from (.onnx/.pt2 path or the
    nn.Module): adds the verdict, the per-layer conversion and quantisation mismatches and the float
    model's accuracy (needs labels); another model is refused unless `allow_other_model`.
    energy_model: a name or list of names in targets/energy/ or .toml paths (default all).
    index_bits: bits stored per synapse beside the weight mantissa.  output: write the report
    there, atomically, in `format` ("md", "json" or "html"; default: from output's suffix, else md);
    the place is checked before any work, and no input file is ever the output.  Returns the report
    dict (schema: reports/schema.json).
    """
    from .arrays import check_labels
    from .fsutil import write_text_atomic
    from .reports.build import FORMATS, build_report, render
    from .sim.core import check_batch_size, check_device
    if format is not None and format not in FORMATS:
        raise NeurodeployError(f"unknown report format '{format}'", "--format", f"use one of {', '.join(FORMATS)}")
    if model is not None and labels is None:
        raise NeurodeployError("--model needs --labels (the verdict and the float model's accuracy need them)",
                               "--model", "pass --labels Y.npy too, or drop --model")
    check_batch_size(batch_size)
    check_device(device)
    models = [energy_model] if isinstance(energy_model, (str, Path)) else energy_model
    out = None
    if output is not None:          # before the work: a place we may not write stops here
        from .outputs import check_output_file
        out = check_output_file(output, _paths(net, x, labels, model, *(models or [])))
    graph = _spiking(net)
    xs = _inputs(x, graph)
    y = None if labels is None else check_labels(_numpy(labels, "labels"), len(xs), _where(labels, "labels"),
                                                 n_classes=int(np.prod(graph.output.shape)))
    if model is not None:
        _same_model(graph, model, allow_other_model)      # before the work, as verify does
    d = build_report(graph, xs, labels=y, model=model, batch_size=batch_size, device=device,
                     energy_models=[str(m) for m in models] if models else None, index_bits=index_bits,
                     allow_other_model=allow_other_model, progress=progress)
    if out is not None:
        suffix = {"htm": "html", "markdown": "md"}.get(out.suffix.lower().lstrip("."), out.suffix.lower().lstrip("."))
        write_text_atomic(out, render(d, format or (suffix if suffix in FORMATS else "md")))
    return d


def _sweep_flags() -> dict:
    """Python name -> (scheme name, flag) of every scheme's compare sweep (rate_timesteps, ...)."""
    from .registry import all_schemes
    return {s.compare_sweep[0].lstrip("-").replace("-", "_"): (s.name, s.compare_sweep[0])
            for s in all_schemes() if s.compare_sweep is not None}


def compare(model, x, labels, *, schemes="bitplane,rate", output: str | Path, target: str = "loihi2",
            calibration=None, batch_size: int = 256, progress: bool = False, workers: int = 1,
            ray_address: str | None = None, **sweeps) -> dict:
    """`neurodeploy compare`: compile `model` (an .onnx path) under several schemes, simulate `x`,
    and write one table: scheme, parameters, accuracy, delta vs the float ANN, latency, energy,
    memory, cores.  Writes each compiled network and compare.md / compare.json / compare.html to
    the directory `output` (built beside it and swapped in whole, with our manifest: an existing
    folder is replaced only when it is empty or our unchanged output); returns the table as a dict.

    schemes: comma-separated names or a list.  Each scheme's own sweep, by its flag's name:
    `rate_timesteps=[4, 16]` (rate's T values), `bitplane_lossy=[3]` (lossy bitplane step counts).
    A Lava-DL NetX file (`.net`) has one configuration, its own network as imported, and no float
    model; its import options go by their flags' names too (`input_mode="sequence"`, ...).
    workers > 1: each configuration a Ray task, as `simulate` (the same tables and files; the
    workers read `model` by its path).
    """
    from .arrays import check_inputs, check_labels, sample_shape
    from .frontends.netx import import_netx, is_netx_path
    from .frontends.netx.options import netx_fields
    from .frontends.onnx import load_onnx
    from .schemes.base import flag
    from .outputs import check_output_dir, output_folder
    from .reports.compare import run_compare, write_outputs
    from .sim.core import check_batch_size
    from .target import load_target
    flags = _sweep_flags()
    netx_names = {f.name for f in netx_fields()}
    netx_options = {k: sweeps.pop(k) for k in list(sweeps) if k in netx_names}
    unknown = [k for k in sweeps if k not in flags]
    if unknown:
        raise NeurodeployError(f"unknown option(s) {', '.join(unknown)}", "neurodeploy.compare",
                               f"the sweeps are {', '.join(flags)}")
    from .workers import check_workers
    check_batch_size(batch_size)
    check_workers(workers, ray_address)
    load_target(target)
    inputs = _paths(model, target, x, labels, calibration)
    out = check_output_dir(output, inputs)      # before the work: a folder we may not replace stops here
    if is_netx_path(model):
        shape = sample_shape(import_netx(model, target, None, netx_options))
    else:
        if netx_options:
            name = next(iter(netx_options))
            raise NeurodeployError(f"{flag(name)} applies to Lava-DL NetX files (.net) only", str(model),
                                   f"drop {flag(name)}; compare sweeps each scheme's own parameters")
        graph = load_onnx(model, prove=False)
        (inp,) = graph.input_nodes()
        shape = graph.op(inp).shape
    xs = check_inputs(_numpy(x, "inputs"), shape, _where(x, "x"))
    y = check_labels(_numpy(labels, "labels"), len(xs), _where(labels, "labels"))
    cal = None if calibration is None else _calibration(calibration)
    names = [s.strip() for s in (schemes.split(",") if isinstance(schemes, str) else schemes) if s.strip()]
    values = {flags[k][0]: [int(v) for v in (vals if isinstance(vals, (list, tuple)) else [vals])]
              for k, vals in sweeps.items()}
    # the whole folder (each configuration's network + compare.{md,json,html}) is built beside `out`
    # and replaces it in one rename: an error or a signal half-way leaves `out` as it was
    with output_folder(out, "compare", inputs) as tmp:
        d = run_compare(str(model), target, xs, y, names, str(tmp), cal, values, batch_size, progress,
                        netx_options=netx_options, workers=workers, ray_address=ray_address)
        write_outputs(d, tmp)
    return d


def export(net, format: str, output: str | Path, *, v_init: str = "bias", readout: str = "integrator",
           delays: bool = False) -> str:
    """`neurodeploy export`: write the network in another tool's format, atomically.

    format: "nir" (rate networks; v_init, readout and delays say how NIR holds what it lacks: see
    `neurodeploy export --help`) or "netx" (Lava-DL NetX HDF5 of sdnn and cuba networks).  The
    output file is checked before any work (never a folder, never an input).  Returns the line the
    command prints (what was written)."""
    from types import SimpleNamespace

    from .backends.export_cli import FORMATS, export as write
    from .outputs import check_output_file
    if format not in FORMATS:
        raise NeurodeployError(f"unknown export format '{format}'", "--format", f"use one of {', '.join(sorted(FORMATS))}")
    out = check_output_file(output, _paths(net))        # before the work
    label = str(net) if isinstance(net, (str, Path)) else "the network"
    options = SimpleNamespace(compiled=label, format=format, output=str(output), v_init=v_init, readout=readout,
                              delays=bool(delays))
    return write(_spiking(net), out, format, options, label)
