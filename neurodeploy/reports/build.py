"""`neurodeploy report` / `neurodeploy.report`: the whole report of a compiled network as one dict.

    d = build_report(net, x, labels=y, model="m.onnx")     # then render(d, "html"|"md"|"json")

It joins what the other modules measure: the verdict (`verify`, when the model and labels are
given), whether the network can go to Loihi 2 (`deploy.loihi2`), the costs (`costs.cost_report`),
and the per-layer dynamics (`dynamics.dynamics`: membrane headroom, accuracy after each step).
The JSON form follows schema.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import NeurodeployError
from ..ir.spiking import SpikingGraph
from . import FORMATS
from .costs import cost_report
from .deploy import loihi2
from .dynamics import dynamics


def build_report(net: SpikingGraph, x: np.ndarray, *, labels: np.ndarray | None = None, model=None,
                 batch_size: int = 256, device: str = "cpu", energy_models: list | None = None,
                 index_bits: int = 0, allow_other_model: bool = False, progress: bool = False) -> dict:
    """The report dict: cost report + "verify" (with `model` and `labels`) + "loihi2" + "dynamics".

    model: the model the network was compiled from (an .onnx or .pt2 path, or the nn.Module /
    ExportedProgram for networks compiled from Python), run as `neurodeploy.verify` runs it (another
    model is refused unless `allow_other_model`)."""
    if model is not None and labels is None:
        raise NeurodeployError("--model needs --labels (the verdict and the float model's accuracy need them)",
                               "--model", "pass --labels Y.npy too, or drop --model")
    if isinstance(model, (str, Path)) and not Path(model).is_file():
        raise NeurodeployError("file not found", str(model), "pass the model the directory was compiled from")
    onnx_path = str(model) if isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx" else None
    d = cost_report(net, x, batch_size, device=device, labels=labels, model_path=onnx_path,
                    energy_models=energy_models, index_bits=index_bits)
    if model is not None:
        from ..api import verify
        v = json.loads(json.dumps(verify(net, model, x, labels, batch_size, device, progress,
                                        allow_other_model)))
        d["verify"] = v
        acc = d["summary"]["accuracy"]
        if acc is not None and acc.get("float_ann") is None and "float" in v["accuracy"]:
            acc["float_ann"] = v["accuracy"]["float"]                 # a PyTorch model: verify ran it
            acc["delta_snn_vs_float_ann"] = acc["snn"] - acc["float_ann"]
    d["loihi2"] = loihi2(net)
    d["dynamics"] = dynamics(net, np.asarray(x), batch_size, device, labels)
    return d


def render(d: dict, fmt: str) -> str:
    """The report in `fmt`: "json" (validated against schema.json), "html" or "md"."""
    if fmt == "json":
        from .schema import validate
        validate(d)
        return json.dumps(d, indent=1) + "\n"
    if fmt == "html":
        from .html import to_html
        return to_html(d)
    if fmt == "md":
        from .markdown import to_markdown
        return to_markdown(d)
    raise NeurodeployError(f"unknown report format '{fmt}'", "--format", f"use one of {', '.join(FORMATS)}")
