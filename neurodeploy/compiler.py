"""The compile step as an API: model file -> SpikingGraph -> artifact directory."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import NeurodeployError
from .frontends.onnx_frontend import load_onnx, model_sha256
from .ir import serialize
from .ir.spiking import SpikingGraph
from .schemes import CompileOptions, get_scheme
from .target import load_target

MANIFEST_KEYS = ("neurodeploy_version", "model", "options")


def compile_model(model_path: str | Path, target: str = "loihi2", scheme: str = "bitplane",
                  options: CompileOptions | None = None) -> SpikingGraph:
    options = options or CompileOptions()
    model_path = Path(model_path)
    if model_path.suffix.lower() != ".onnx":
        raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                               "pass an .onnx file")
    tgt = load_target(target)
    sch = get_scheme(scheme)
    graph = load_onnx(model_path)
    net = sch.compile(graph, tgt, options)
    net.meta.update({
        "neurodeploy_version": __version__,
        "model": {"file": model_path.name, "sha256": model_sha256(model_path)},
        "options": {"target": tgt.name, "scheme": sch.name, "timesteps": options.timesteps,
                    "input_bits": options.input_bits, "lossy": options.lossy, "reset": options.reset,
                    "percentile": options.percentile,
                    "calibration_samples": None if options.calibration is None else int(len(options.calibration))},
        "target_spec": tgt.to_dict(),
    })
    return net


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
