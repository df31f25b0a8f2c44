"""The compile step as an API: model file (.onnx, .pt2, or a format a scheme's own front end reads,
e.g. .nir) or float graph -> SpikingGraph -> artifact directory.

A Lava-DL NetX file is a spiking network already: `compile_model` imports it (`frontends.netx`)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import NeurodeployError, UnsupportedError
from .fsutil import public_mode
from .frontends.netx import import_netx, is_netx_path
from .frontends.netx.options import refuse_netx_only
from .frontends.onnx import load_onnx, model_sha256
from .ir import float_graph as fg
from .ir import serialize
from .ir.spiking import SpikingGraph
from .passes import FRONT_END_PASSES, run_passes
from .registry import DEFAULT_SCHEME, all_schemes, get_scheme
from .target import load_target
from .target.allocation import check_fits

MANIFEST_KEYS = ("neurodeploy_version", "model", "options")

# What meta["options"] records besides target, scheme and calibration_samples: these keys for every
# scheme, each scheme's own value where it has the option and this value where it does not (the
# record kept its form from before per-scheme options).
RECORDED_OPTIONS = {"timesteps": None, "input_bits": 8, "lossy": False, "reset": "subtract", "percentile": 99.9,
                    "coding_steps": None, "silent_steps": None, "payload_bits": 16}


MODEL_FORMATS = (".onnx", ".pt2")     # the common front ends' files, which every scheme compiles
DEFAULT_SCHEME = "bitplane"           # when none is named and no scheme's own front end reads the model


def load_model(model_path: str | Path, probe=None) -> fg.FloatGraph:
    """The float graph of a model file: .onnx (ONNX front end) or .pt2 (torch.export.save; PyTorch
    front end), proven against the source framework on `probe` (calibration samples) or seeded inputs."""
    model_path = Path(model_path)
    suffix = model_path.suffix.lower()
    if suffix == ".pt2":
        from .frontends.torch import load_pt2
        return load_pt2(model_path, probe=probe)
    if suffix == ".onnx":
        return load_onnx(model_path, probe=probe)
    raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path),
                           "pass an .onnx file or a .pt2 file saved with torch.export.save")


def model_meta(model_path: str | Path) -> dict:
    """meta["model"] of a model file: its name and sha256."""
    model_path = Path(model_path)
    return {"file": model_path.name, "sha256": model_sha256(model_path)}


def _format_hint() -> str:
    extra = [f"a {fe.DESCRIPTION} (--scheme {s.name})" for s in all_schemes() for fe in s.model_front_ends()]
    return ", ".join(["pass an .onnx file", "a .pt2 file saved with torch.export.save", *extra,
                      "or a Lava-DL NetX file (.net)"])


def default_scheme(model) -> str:
    """The scheme a model compiles with when none is named: the scheme whose own front end reads it
    (`Scheme.model_front_ends`: a NIR graph -> cuba), else DEFAULT_SCHEME."""
    return next((s.name for s in all_schemes() if s.model_front_end(model) is not None), DEFAULT_SCHEME)


def _where(model) -> str:
    return str(model) if isinstance(model, (str, Path)) else type(model).__name__


def model_front_end(model, scheme: str):
    """The chosen scheme's own front end that reads `model` (a path or an in-memory model), or None
    for the common front ends.  Refuses a model that only other schemes' front ends read, naming
    those schemes."""
    front = get_scheme(scheme).model_front_end(model)
    if front is None:
        others = [(s.name, fe) for s in all_schemes() for fe in s.model_front_ends() if fe.claims(model)]
        if others:
            raise UnsupportedError(f"a {others[0][1].DESCRIPTION} does not compile with the '{scheme}' scheme",
                                   _where(model), "use " + " or ".join(f"--scheme {name}" for name, _ in others))
    return front


def check_front_end_options(model, scheme: str, front, options) -> None:
    """Refuse an option of one of the scheme's own front ends that does not read `model`
    (--nir-dt for a LIF network in PyTorch): it would have no effect."""
    from .schemes.base import flag
    for fe in get_scheme(scheme).model_front_ends():
        given = [n for n in fe.OPTIONS if fe is not front and getattr(options, n, None) is not None]
        if given:
            raise NeurodeployError(f"{flag(given[0])} applies to a {fe.DESCRIPTION} only", _where(model),
                                   f"drop {', '.join(flag(n) for n in given)}")


def compile_graph(graph: fg.FloatGraph, target: str = "loihi2", scheme: str = DEFAULT_SCHEME,
                  options=None, model_meta: dict | None = None, front_meta: dict | None = None) -> SpikingGraph:
    """Compile a float graph from any front end; `model_meta` ({"file", "sha256"}) names its source,
    `front_meta` is what its front end reports (a NIR graph's {"nir": ...}), kept in net.meta.

    options: the scheme's options class, a dict of option values or a `CompileOptions` (checked
    by the scheme: an option it does not have is refused)."""
    tgt = load_target(target)
    sch = get_scheme(scheme)
    options = sch.options(options)
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
        "options": {"target": tgt.name, "scheme": sch.name,
                    **{k: getattr(options, k, default) for k, default in RECORDED_OPTIONS.items()},
                    "calibration_samples": None if options.calibration is None else int(len(options.calibration))},
        "target_spec": tgt.to_dict(),
        **(front_meta or {}),
    })
    # a network larger than the chip(s) stops here, naming the largest layers
    net.meta["allocation"] = check_fits(net, options.chips)
    net.meta["options"]["chips"] = options.chips
    return net


def compile_model(model_path: str | Path, target: str = "loihi2", scheme: str | None = None,
                  options=None) -> SpikingGraph:
    """`neurodeploy compile`: a model file -> SpikingGraph (options as in `compile_graph`).

    scheme None: `default_scheme` (bitplane unless a scheme's own front end reads the file), or for
    a NetX file the scheme of its neurons; a NetX file takes the options of
    `frontends.netx.options.NetxOptions` instead of a scheme's."""
    model_path = Path(model_path)
    if is_netx_path(model_path):   # a Lava-DL NetX file is a spiking network already: read, not compiled
        return import_netx(model_path, target, scheme, options)
    refuse_netx_only(options, model_path)
    scheme = scheme or default_scheme(model_path)
    suffixes = MODEL_FORMATS + tuple(x for s in all_schemes() for fe in s.model_front_ends() for x in fe.SUFFIXES)
    if model_path.suffix.lower() not in suffixes:
        raise NeurodeployError(f"unsupported model format '{model_path.suffix}'", str(model_path), _format_hint())
    load_target(target)          # report a bad --target / --scheme / option before reading the model
    front = model_front_end(model_path, scheme)
    options = get_scheme(scheme).options(options)
    check_front_end_options(model_path, scheme, front, options)
    graph, front_meta = (load_model(model_path, options.calibration), {}) if front is None \
        else front.load(model_path, options)
    return compile_graph(graph, target, scheme, options, model_meta(model_path), front_meta)


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
