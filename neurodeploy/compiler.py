"""The compile step as an API: model file (.onnx, .pt2) or float graph -> SpikingGraph -> artifact directory."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import NeurodeployError, UnsupportedError
from .fsutil import public_mode
from .frontends.onnx import load_onnx, model_sha256
from .ir import float_graph as fg
from .ir import serialize
from .ir.spiking import SpikingGraph
from .passes import FRONT_END_PASSES, run_passes
from .schemes import CompileOptions, get_scheme
from .target import load_target

MANIFEST_KEYS = ("neurodeploy_version", "model", "options")


MODEL_FORMATS = (".onnx", ".pt2")


def load_model(model_path: str | Path, probe=None) -> fg.FloatGraph:
    """The float graph of a model file: .onnx (ONNX front end) or .pt2 (torch.export.save; PyTorch
    front end), proven against the source framework on `probe` (calibration samples) or seeded inputs."""
    model_path = Path(model_path)
    suffix = model_path.suffix.lower()
    if suffix == ".pt2":
        from .frontends.torch_frontend import load_pt2
        return load_pt2(model_path, probe=probe)
    if suffix == ".onnx":
        return load_onnx(model_path, probe=probe)
    raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                           "pass an .onnx file or a .pt2 file saved with torch.export.save")


def compile_graph(graph: fg.FloatGraph, target: str = "loihi2", scheme: str = "bitplane",
                  options: CompileOptions | None = None, model_meta: dict | None = None) -> SpikingGraph:
    """Compile a float graph from any front end; `model_meta` ({"file", "sha256"}) names its source."""
    options = options or CompileOptions()
    tgt = load_target(target)
    sch = get_scheme(scheme)
    graph = run_passes(graph, FRONT_END_PASSES)
    try:
        net = sch.compile(graph, tgt, options)
    except UnsupportedError as exc:      # name the scheme that cannot take the op
        raise UnsupportedError(f"{exc.what} (scheme '{sch.name}')", exc.where, exc.hint) from None
    if graph.notes:
        net.meta["front_end_notes"] = list(graph.notes)
    net.meta.update({
        "neurodeploy_version": __version__,
        "model": dict(model_meta or {}),
        "options": {"target": tgt.name, "scheme": sch.name, "timesteps": options.timesteps,
                    "input_bits": options.input_bits, "lossy": options.lossy, "reset": options.reset,
                    "percentile": options.percentile,
                    "coding_steps": getattr(options, "coding_steps", None),
                    "silent_steps": getattr(options, "silent_steps", None),
                    "payload_bits": getattr(options, "payload_bits", None),
                    "calibration_samples": None if options.calibration is None else int(len(options.calibration))},
        "target_spec": tgt.to_dict(),
    })
    # a network larger than the chip(s) stops here, naming the largest layers
    from .reports.costs import check_fits
    net.meta["allocation"] = check_fits(net, options.chips)
    net.meta["options"]["chips"] = options.chips
    return net


def compile_model(model_path: str | Path, target: str = "loihi2", scheme: str = "bitplane",
                  options: CompileOptions | None = None) -> SpikingGraph:
    return compile_model_graph(model_path, target, scheme, options)[0]


def compile_model_graph(model_path: str | Path, target: str = "loihi2", scheme: str = "bitplane",
                        options: CompileOptions | None = None) -> tuple[SpikingGraph, fg.FloatGraph]:
    """`compile_model`, also returning the (proven) float graph it compiled."""
    model_path = Path(model_path)
    if model_path.suffix.lower() not in MODEL_FORMATS:
        raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                               "pass an .onnx file or a .pt2 file saved with torch.export.save")
    options = options or CompileOptions()
    load_target(target)          # report a bad --target / --scheme before reading the model
    get_scheme(scheme)
    graph = load_model(model_path, options.calibration)
    net = compile_graph(graph, target, scheme, options,
                        {"file": model_path.name, "sha256": model_sha256(model_path)})
    return net, graph


def _is_artifact(path: Path) -> bool:
    return (path / serialize.IR_FILE).is_file()


def save_artifact(net: SpikingGraph, out_dir: str | Path, extra_files: dict[str, str] | None = None) -> Path:
    """Write the compiled network to out_dir atomically (temp dir + rename).

    An existing out_dir is replaced only if it is empty or a previous neurodeploy output.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_artifact(out))):
        raise NeurodeployError("exists and is not a neurodeploy output directory", str(out),
                               "choose another -o directory or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    public_mode(tmp, directory=True)
    try:
        serialize.save(net, tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
