"""The compile step as an API: model file (.onnx, .pt2, or a format a scheme's own front end reads,
e.g. .nir) or float graph -> SpikingGraph -> artifact directory.

A Lava-DL NetX file is a spiking network already: `compile_model` imports it (`frontends.netx`)."""
from __future__ import annotations

from pathlib import Path

from . import __version__
from .errors import NeurodeployError, TargetLimitError, UnsupportedError
from .frontends.netx import import_netx, is_netx_path
from .frontends.netx.options import refuse_netx_only
from .frontends.onnx import load_onnx, model_sha256
from .ir import float_graph as fg
from .ir import serialize
from .ir.spiking import SpikingGraph
from .ir.validate import validate_graph
from .outputs import output_folder
from .passes import FRONT_END_PASSES
from .passes.proof import run_proven_passes
from .registry import DEFAULT_SCHEME, all_schemes, get_scheme
from .target import load_target
from .target.allocation import check_fits

MANIFEST_KEYS = ("neurodeploy_version", "model", "options")
MODEL_FORMATS = (".onnx", ".pt2")     # the common front ends' files, which every scheme compiles


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


# how meta["model"]["file"] names a model that was no file (neurodeploy.compile of an object)
PROGRAM_LABEL, MODULE_LABEL = "ExportedProgram", "(torch.nn.Module)"
IN_MEMORY_MODELS = (PROGRAM_LABEL, MODULE_LABEL)


def check_same_model(net: SpikingGraph, model_path: str | Path, allow_other_model: bool = False) -> bool | None:
    """Is `model_path` the file `net` was compiled from (its sha256 against meta["model"])?

    A different file is refused (NeurodeployError) unless `allow_other_model`; then False is
    returned so the caller can say so.  True when the digests match; None when the network was not
    compiled from a file (an nn.Module, an ExportedProgram, a float graph: nothing to compare)."""
    path = Path(model_path)
    if not path.is_file():
        raise NeurodeployError("file not found", str(path), "pass the model file the network was compiled from")
    model = net.meta.get("model") or {}
    recorded = model.get("sha256")
    if not recorded or str(model.get("file", "")).endswith(IN_MEMORY_MODELS):
        return None
    if model_sha256(path) == recorded:
        return True
    if allow_other_model:
        return False
    name = (net.meta.get("model") or {}).get("file", "?")
    raise NeurodeployError(f"is not the model this network was compiled from (its sha256 differs from the one "
                           f"recorded for '{name}')", str(path),
                           "pass the model you compiled, or --allow-other-model (allow_other_model=True) to "
                           "compare against this one anyway")


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
                  options=None, model_meta: dict | None = None, front_meta: dict | None = None,
                  stage=None) -> SpikingGraph:
    """Compile a float graph from any front end; `model_meta` ({"file", "sha256"}) names its source,
    `front_meta` is what its front end reports (a NIR graph's {"nir": ...}), kept in net.meta.
    `stage(name)`, if given, is called as each of `progress.COMPILE_STAGES` after the front end starts.

    options: the scheme's options class, a dict of option values or a `CompileOptions` (checked
    by the scheme: an option it does not have is refused)."""
    tgt = load_target(target)
    sch = get_scheme(scheme)
    options = sch.options(options)
    if options.calibration is not None:
        check_calibration_shape(options.calibration, graph)
    stage = stage or (lambda name: None)
    stage("passes")
    # proven: the graph after them computes what the graph as read (and proven) computes
    graph = run_proven_passes(graph, FRONT_END_PASSES, options.calibration)
    stage("scheme flow")
    try:
        net = sch.compile(graph, tgt, options)
    except (UnsupportedError, TargetLimitError) as exc:
        # name the scheme that cannot take the op, or whose formats cannot hold the layer (another
        # scheme may: rate and sws refuse a readout that bitplane compiles)
        raise type(exc)(f"{exc.what} (scheme '{sch.name}')", exc.where, exc.hint) from None
    if graph.notes:
        net.meta["front_end_notes"] = list(graph.notes)
    net.meta.update({
        "neurodeploy_version": __version__,
        "model": dict(model_meta or {}),
        # the options this scheme has, with the values its flow used (Scheme.used_options)
        "options": {"target": tgt.name, "scheme": sch.name, **sch.used_options(options, net)},
        "target_spec": tgt.to_dict(),
        **(front_meta or {}),
    })
    # a network larger than the chip(s) stops here, naming the largest layers
    stage("allocation")
    net.meta["allocation"] = check_fits(net, options.chips)
    stage("checks")
    # what the loader will check of the directory holds for what we emit (a failure is our bug)
    validate_graph(net, tgt, f"the {sch.name} network compiled from {graph.source}",
                   "this is a neurodeploy bug: please report it with the model")
    return net


def check_calibration_shape(calibration, graph: fg.FloatGraph) -> None:
    """Calibration samples must be shaped like the model's input, batch first."""
    (inp,) = graph.input_nodes()
    shape = tuple(graph.op(inp).shape)
    if tuple(calibration.shape[1:]) != shape:
        raise NeurodeployError(f"calibration samples shaped {tuple(calibration.shape)}, but the model's input is "
                               f"(N, {', '.join(map(str, shape))})", "--calibration",
                               "pass samples shaped like the model's input, batch first")


def compile_model(model_path: str | Path, target: str = "loihi2", scheme: str | None = None,
                  options=None, stage=None) -> SpikingGraph:
    """`neurodeploy compile`: a model file -> SpikingGraph (options as in `compile_graph`).

    scheme None: `default_scheme` (bitplane unless a scheme's own front end reads the file), or for
    a NetX file the scheme of its neurons; a NetX file takes the options of
    `frontends.netx.options.NetxOptions` instead of a scheme's.  `stage(name)`: called as each of
    `progress.COMPILE_STAGES` starts (the command's progress bar)."""
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
    if stage is not None:
        stage("front end")
    graph, front_meta = (load_model(model_path, options.calibration), {}) if front is None \
        else front.load(model_path, options)
    return compile_graph(graph, target, scheme, options, model_meta(model_path), front_meta, stage)


def save_artifact(net: SpikingGraph, out_dir: str | Path, extra_files: dict[str, str] | None = None,
                  inputs=(), command: str = "compile") -> Path:
    """Write the compiled network to out_dir atomically (temp dir + rename), with our manifest.

    An existing out_dir is replaced only if it is empty or an unchanged neurodeploy output holding
    nothing else (`outputs.check_replaceable`); `inputs` (the model, calibration files) are never
    overwritten."""
    with output_folder(out_dir, command, inputs) as tmp:
        serialize.save(net, tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    return Path(out_dir)
