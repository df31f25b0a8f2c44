"""The compile step as an API: model file (.onnx, .pt2) or float graph -> SpikingGraph -> artifact directory."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import NeurodeployError, UnsupportedError
from .fsutil import public_mode
from .frontends.onnx_frontend import load_onnx, model_sha256
from .ir import float_graph as fg
from .ir import serialize
from .ir.spiking import SpikingGraph
from .schemes import CompileOptions, get_scheme
from .target import load_target

MANIFEST_KEYS = ("neurodeploy_version", "model", "options")


MODEL_FORMATS = (".onnx", ".pt2", ".nir")


def load_model(model_path: str | Path) -> fg.FloatGraph:
    """The float graph of a model file: .onnx (ONNX front end) or .pt2 (torch.export.save; PyTorch front end)."""
    model_path = Path(model_path)
    suffix = model_path.suffix.lower()
    if suffix == ".pt2":
        from .frontends.torch_frontend import load_pt2
        return load_pt2(model_path)
    if suffix == ".onnx":
        return load_onnx(model_path)
    raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                           "pass an .onnx file or a .pt2 file saved with torch.export.save")


def compile_nir(model, target: str = "loihi2", scheme: str = "cuba", options: CompileOptions | None = None
                ) -> SpikingGraph:
    """Compile a NIR graph (a .nir file or an in-memory nir.NIRGraph) read under `options.nir`'s
    conventions (`frontends.nir`); the front end's report goes to meta["nir"] and the summary."""
    from .frontends.nir import as_conventions, load_nir
    options = options or CompileOptions()
    if not getattr(get_scheme(scheme), "reads_nir", False):
        raise UnsupportedError(f"a NIR graph of a trained SNN does not compile with the '{scheme}' scheme",
                               str(model) if isinstance(model, (str, Path)) else "nir.NIRGraph",
                               "use --scheme cuba (Loihi 2's CUBA LIF)")
    graph, report = load_nir(model, as_conventions(options.nir))
    if isinstance(model, (str, Path)):
        meta = {"file": Path(model).name, "sha256": model_sha256(model)}
    else:
        meta = {"file": "nir.NIRGraph", "sha256": None}
    net = compile_graph(graph, target, scheme, options, meta)
    net.meta["nir"] = report
    return net


def compile_graph(graph: fg.FloatGraph, target: str = "loihi2", scheme: str = "bitplane",
                  options: CompileOptions | None = None, model_meta: dict | None = None) -> SpikingGraph:
    """Compile a float graph from any front end; `model_meta` ({"file", "sha256"}) names its source."""
    options = options or CompileOptions()
    tgt = load_target(target)
    sch = get_scheme(scheme)
    net = sch.compile(graph, tgt, options)
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
    model_path = Path(model_path)
    if model_path.suffix.lower() not in MODEL_FORMATS:
        raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                               "pass an .onnx file, a .pt2 file saved with torch.export.save or a .nir graph")
    load_target(target)          # report a bad --target / --scheme before reading the model
    get_scheme(scheme)
    if model_path.suffix.lower() == ".nir":
        return compile_nir(model_path, target, scheme, options)
    graph = load_model(model_path)
    return compile_graph(graph, target, scheme, options,
                         {"file": model_path.name, "sha256": model_sha256(model_path)})


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
