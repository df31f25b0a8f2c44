"""`compare`: compile, simulate and verify one model under several schemes, in one table.

    neurodeploy compare model.onnx --target loihi2 --input x.npy --labels y.npy \
        --schemes bitplane,rate -o compare/

Each scheme runs with the parameters where choosing them is the point swept (rate: T;
bitplane: its exact T and, as lossy variants, fewer steps).  Every configuration is
compiled into compare/<config>/, costed with `cost_report` on the same inputs, and lands
as one row: scheme, parameters, accuracy, Δ vs the float ANN, latency, energy per
inference under one named model, synaptic memory, cores.  compare/ also gets
compare.md, compare.json and compare.html (accuracy-vs-latency and accuracy-vs-energy
fronts with the ANN as a reference line).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..compiler import compile_model, save_artifact
from ..errors import NeurodeployError
from ..frontends.netx import cli as netx_cli
from ..frontends.netx import is_netx_path
from ..progress import progress_bar
from ..reports.summary import summary_markdown
from ..schemes import SCHEMES, CompileOptions
from .costs import cost_report
from .html import CHECK_SCRIPT, CSS, _figure, _table

DEFAULT_SWEEPS = {"rate": [4, 8, 16, 32, 64], "bitplane": [None]}
PLOT_ENERGY_MODEL = "cmos45_horowitz"


def configurations(schemes: list[str], rate_timesteps: list[int], bitplane_lossy: list[int]) -> list[dict]:
    configs = []
    for s in schemes:
        if s not in SCHEMES:
            raise NeurodeployError(f"unknown scheme '{s}'", "--schemes", f"available: {', '.join(sorted(SCHEMES))}")
        if s == "rate":
            configs += [{"scheme": "rate", "name": f"rate_T{t}", "options": {"timesteps": t}} for t in rate_timesteps]
        elif s == "bitplane":
            configs.append({"scheme": "bitplane", "name": "bitplane", "options": {}})
            configs += [{"scheme": "bitplane", "name": f"bitplane_lossy_T{t}", "options": {"timesteps": t, "lossy": True}}
                        for t in bitplane_lossy]
        else:
            configs.append({"scheme": s, "name": s, "options": {}})
    return configs


def run_compare(model: str, target: str, x: np.ndarray, y: np.ndarray, schemes: list[str], out_dir: str,
                calibration: np.ndarray | None = None, rate_timesteps: list[int] | None = None,
                bitplane_lossy: list[int] | None = None, batch_size: int = 256, progress: bool = False,
                netx_options: dict | None = None) -> dict:
    configs = configurations(schemes, rate_timesteps or DEFAULT_SWEEPS["rate"], bitplane_lossy or [])
    rows, skipped = [], []
    if is_netx_path(model):               # a Lava-DL NetX file: its own network, as imported
        configs, skipped = netx_cli.compare_configs(model, schemes, netx_options or {})
    out = Path(out_dir)
    with progress_bar(total=len(configs), desc="compare", unit="config", enabled=progress) as bar:
        for c in configs:
            opts = CompileOptions(calibration=calibration, **c["options"])
            try:
                net = compile_model(model, target, c["scheme"], opts)
            except NeurodeployError as exc:       # a scheme that cannot take this model: say why
                skipped.append({"config": c["name"], "reason": exc.one_line()})
                bar.update(1)
                continue
            save_artifact(net, out / c["name"], {"summary.md": summary_markdown(net)})
            s = cost_report(net, x, batch_size, labels=y, model_path=model)["summary"]
            energy = s["energy_per_inference_pj"].get(PLOT_ENERGY_MODEL, {})
            rows.append({"config": c["name"], "scheme": c["scheme"],
                         "parameters": {k: v for k, v in c["options"].items()},
                         "accuracy": s["accuracy"]["snn"], "float_accuracy": s["accuracy"]["float_ann"],
                         "delta_vs_float_pp": None if s["accuracy"]["delta_snn_vs_float_ann"] is None
                         else 100 * s["accuracy"]["delta_snn_vs_float_ann"],
                         "latency_steps": s["latency_steps"], "throughput_steps": s["throughput_steps"],
                         "energy_pj": {k: v["snn"] for k, v in s["energy_per_inference_pj"].items()},
                         "ann_energy_pj": energy.get("ann"),
                         "synaptic_memory_bytes": s["synaptic_memory_bytes"], "cores": s["cores"],
                         "fits_target": s["fits_target"], "spikes_per_sample": s["spikes_per_sample"]["mean"]})
            bar.update(1)
    if not rows:
        raise NeurodeployError("no scheme could compile this model", model,
                               "; ".join(f"{s['config']}: {s['reason']}" for s in skipped))
    return {"model": str(model), "target": target, "samples": int(len(x)), "energy_model_plotted": PLOT_ENERGY_MODEL,
            "float_accuracy": rows[0]["float_accuracy"], "rows": rows, "skipped": skipped}


def _fmt_energy(pj) -> str:
    if pj is None:
        return "-"
    for unit, scale in (("uJ", 1e6), ("nJ", 1e3)):
        if pj >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _float_acc(d: dict) -> str:
    return "- (no float model)" if d["float_accuracy"] is None else f"{100 * d['float_accuracy']:.2f}%"


def table(d: dict) -> tuple[list, list]:
    heads = ["config", "scheme", "parameters", "accuracy", "Δ vs float ANN", "latency (steps)",
             "throughput (steps/sample)", f"energy / inference ({d['energy_model_plotted']})",
             "synaptic memory", "cores"]
    rows = []
    for r in d["rows"]:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "exact"
        rows.append([r["config"], r["scheme"], params, f"{100 * r['accuracy']:.2f}%",
                     "-" if r["delta_vs_float_pp"] is None else f"{r['delta_vs_float_pp']:+.2f} pp",
                     r["latency_steps"], r["throughput_steps"],
                     _fmt_energy(r["energy_pj"].get(d["energy_model_plotted"])),
                     f"{r['synaptic_memory_bytes']:,} B", r["cores"]])
    return heads, rows


def to_markdown(d: dict) -> str:
    heads, rows = table(d)
    lines = [f"# Which scheme? {Path(d['model']).name} on {d['target']}", "",
             f"{d['samples']} samples; float ANN accuracy {_float_acc(d)}. Energy from the "
             f"`{d['energy_model_plotted']}` model (45 nm CMOS arithmetic only; Loihi 2 has no public "
             "per-operation figures) -- see each configuration's report for the other models.", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    if d["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['config']}: {s['reason']}" for s in d["skipped"]]
    return "\n".join(lines) + "\n"


def _front(d: dict, xkey: str, xlabel: str, log: bool) -> Figure:
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    for scheme in sorted({r["scheme"] for r in d["rows"]}):
        pts = sorted((r[xkey] if xkey != "energy" else r["energy_pj"].get(d["energy_model_plotted"]),
                      100 * r["accuracy"], r["config"]) for r in d["rows"] if r["scheme"] == scheme)
        pts = [p for p in pts if p[0] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=scheme)
        for p in pts:
            ax.annotate(p[2], (p[0], p[1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if d["float_accuracy"] is not None:         # a NetX file has no float model
        ax.axhline(100 * d["float_accuracy"], color="#c05621", ls="--", label="float ANN")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def to_html(d: dict) -> str:
    esc = html.escape
    heads, rows = table(d)
    parts = [f"<h1>Which scheme? {esc(Path(d['model']).name)} on {esc(d['target'])}</h1>",
             f"<p>{d['samples']} samples; float ANN accuracy {_float_acc(d)}.</p>",
             _table(heads, rows),
             _figure(_front(d, "latency_steps", "latency (time steps per sample)", False), "fig-latency",
                     "Accuracy vs latency; the dashed line is the float ANN"),
             _figure(_front(d, "energy", f"energy per inference (pJ, {d['energy_model_plotted']} model)", True),
                     "fig-energy", f"Accuracy vs energy under the {d['energy_model_plotted']} model only")]
    if d["skipped"]:
        parts.append("<ul>" + "".join(f"<li>{esc(s['config'])}: {esc(s['reason'])}</li>" for s in d["skipped"]) + "</ul>")
    parts.append("<p id='render-check' class='note'>figures rendered: (needs a browser)</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>compare</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + CHECK_SCRIPT + "</body></html>\n")


def _write(path: Path, text: str) -> None:
    from ..fsutil import write_text_atomic
    write_text_atomic(path, text)


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compile, simulate and verify a model under several schemes; one table",
        description="Compile the model under each scheme (sweeping rate's T and, with --bitplane-lossy, "
                    "fewer bitplane steps), simulate the inputs, and print one table: scheme, parameters, "
                    "accuracy, Δ vs the float ANN, latency, energy per inference (45 nm CMOS model), synaptic "
                    "memory, cores. Writes each compiled network and compare.{md,json,html} to -o DIR.")
    p.add_argument("model", help="the ONNX model (or a Lava-DL NetX file: its own network, one row)")
    p.add_argument("--target", default="loihi2")
    p.add_argument("--input", required=True, metavar="X.npy")
    p.add_argument("--labels", required=True, metavar="Y.npy")
    p.add_argument("--schemes", default="bitplane,rate", help="comma-separated (default bitplane,rate)")
    p.add_argument("--rate-timesteps", default="4,8,16,32,64", help="T values for rate (default 4,8,16,32,64)")
    p.add_argument("--bitplane-lossy", default="", help="lossy bitplane step counts to add, e.g. 2,3")
    p.add_argument("--calibration", metavar="X.npy", help="samples for input range / ReLU thresholds")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    netx_cli.add_arguments(p, timesteps=True)
    p.set_defaults(func=cmd_compare)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NeurodeployError(f"'{text}' is not a comma-separated list of integers", flag) from None


def cmd_compare(args) -> int:
    from ..arrays import check_inputs, check_labels, load_npy
    from ..frontends.onnx_frontend import load_onnx
    netx_options = netx_cli.options_from(args, timesteps=True)
    if is_netx_path(args.model):
        from ..arrays import sample_shape
        from ..frontends.netx import import_netx
        shape = sample_shape(import_netx(args.model, args.target, None, CompileOptions(**netx_options)))
    else:
        shape = load_onnx(args.model).op("input").shape
    x = check_inputs(load_npy(args.input, "inputs"), shape, args.input)
    y = check_labels(load_npy(args.labels, "labels"), len(x), args.labels)
    cal = load_npy(args.calibration, "calibration samples") if args.calibration else None
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise NeurodeployError("exists and is not a directory", str(out), "choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    d = run_compare(args.model, args.target, x, y, [s.strip() for s in args.schemes.split(",") if s.strip()],
                    str(out), cal, _ints(args.rate_timesteps, "--rate-timesteps"),
                    _ints(args.bitplane_lossy, "--bitplane-lossy"), progress=True, netx_options=netx_options)
    md = to_markdown(d)
    _write(out / "compare.md", md)
    _write(out / "compare.json", json.dumps(d, indent=1) + "\n")
    _write(out / "compare.html", to_html(d))
    print(json.dumps(d, indent=1) if args.json else md)
    return 0
