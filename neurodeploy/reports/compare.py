"""`compare`: compile, simulate and verify one model under several schemes, in one table.

    neurodeploy compare model.onnx --target loihi2 --input x.npy --labels y.npy \
        --schemes bitplane,rate -o compare/

Each scheme runs with the parameters where choosing them is the point swept (its
`Scheme.compare_configs`: rate sweeps T; bitplane runs its exact T and, as lossy variants,
fewer steps; the others run once).  Every configuration is
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

from ..arrays import check_labels
from ..compiler import compile_model, save_artifact
from ..errors import NeurodeployError
from ..progress import progress_bar
from ..reports.summary import summary_markdown
from ..registry import all_schemes, get_scheme
from . import tables as tb
from .costs import cost_report
from .html import CHECK_SCRIPT, CSS, html_figure, html_table

PLOT_ENERGY_MODEL = "cmos45_horowitz"


def configurations(schemes: list[str], sweeps: dict | None = None) -> list[dict]:
    """[{"scheme", "name", "options"}] for each scheme: its own configurations (`Scheme.compare_configs`)
    over the list `sweeps[scheme]` (its `compare_sweep` flag's values; None = the scheme's default)."""
    configs = []
    for s in schemes:
        try:
            scheme = get_scheme(s)
        except NeurodeployError as exc:
            raise NeurodeployError(exc.what, "--schemes", exc.hint) from None
        configs += [{"scheme": s, **c} for c in scheme.compare_configs((sweeps or {}).get(s))]
    return configs


def run_compare(model: str, target: str, x: np.ndarray, y: np.ndarray, schemes: list[str], out_dir: str,
                calibration: np.ndarray | None = None, sweeps: dict | None = None, batch_size: int = 256,
                progress: bool = False) -> dict:
    configs = configurations(schemes, sweeps)
    for c in configs:       # a swept value out of range is the user's error, not a scheme that cannot compile
        try:
            get_scheme(c["scheme"]).options({"calibration": calibration, **c["options"]})
        except NeurodeployError as exc:
            raise NeurodeployError(f"configuration {c['name']}: {exc.what}", exc.where, exc.hint) from None
    rows, skipped = [], []
    out = Path(out_dir)
    with progress_bar(total=len(configs), desc="compare", unit="config", enabled=progress) as bar:
        for c in configs:
            opts = {"calibration": calibration, **c["options"]}
            try:
                net = compile_model(model, target, c["scheme"], opts)
            except NeurodeployError as exc:       # a scheme that cannot take this model: say why
                skipped.append({"config": c["name"], "reason": exc.one_line()})
                bar.update(1)
                continue
            check_labels(y, len(x), "--labels", n_classes=int(np.prod(net.output.shape)))
            save_artifact(net, out / c["name"], {"summary.md": summary_markdown(net)})
            s = cost_report(net, x, batch_size, labels=y, model_path=model)["summary"]
            energy = s["energy_per_inference_pj"].get(PLOT_ENERGY_MODEL, {})
            rows.append({"config": c["name"], "scheme": c["scheme"],
                         "parameters": {k: v for k, v in c["options"].items()},
                         "accuracy": s["accuracy"]["snn"], "float_accuracy": s["accuracy"]["float_ann"],
                         "delta_vs_float_pp": 100 * s["accuracy"]["delta_snn_vs_float_ann"],
                         "latency_steps": s["latency_steps"], "throughput_steps": s["throughput_steps"],
                         "energy_pj": {k: v["snn"] for k, v in s["energy_per_inference_pj"].items()},
                         "ann_energy_pj": energy.get("ann"),
                         "synaptic_memory_bytes": s["synaptic_memory_bytes"], "cores": s["cores"],
                         "upper_bound": s["upper_bound"], "fits_target": s["fits_target"], "spikes_per_sample": s["spikes_per_sample"]["mean"]})
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


def table(d: dict) -> tuple[list, list]:
    heads = ["config", "scheme", "parameters", "accuracy", "Δ vs float ANN", "latency (steps)",
             "throughput (steps/sample)", f"energy / inference ({d['energy_model_plotted']})",
             "synaptic memory", "cores"]
    rows = []
    for r in d["rows"]:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "exact"
        rows.append([r["config"], r["scheme"], params, f"{100 * r['accuracy']:.2f}%",
                     f"{r['delta_vs_float_pp']:+.2f} pp", r["latency_steps"], r["throughput_steps"],
                     _fmt_energy(r["energy_pj"].get(d["energy_model_plotted"])),
                     tb.bound(f"{r['synaptic_memory_bytes']:,} B", r), tb.bound(str(r["cores"]), r)])
    return heads, rows


def to_markdown(d: dict) -> str:
    heads, rows = table(d)
    lines = [f"# Which scheme? {Path(d['model']).name} on {d['target']}", "",
             f"{d['samples']} samples; float ANN accuracy {100 * d['float_accuracy']:.2f}%. Energy from the "
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
             f"<p>{d['samples']} samples; float ANN accuracy {100 * d['float_accuracy']:.2f}%.</p>",
             html_table(heads, rows),
             html_figure(_front(d, "latency_steps", "latency (time steps per sample)", False), "fig-latency",
                     "Accuracy vs latency; the dashed line is the float ANN"),
             html_figure(_front(d, "energy", f"energy per inference (pJ, {d['energy_model_plotted']} model)", True),
                     "fig-energy", f"Accuracy vs energy under the {d['energy_model_plotted']} model only")]
    if d["skipped"]:
        parts.append("<ul>" + "".join(f"<li>{esc(s['config'])}: {esc(s['reason'])}</li>" for s in d["skipped"]) + "</ul>")
    parts.append("<p id='render-check' class='note'>figures rendered: (needs a browser)</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>compare</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + CHECK_SCRIPT + "</body></html>\n")


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="compile, simulate and verify a model under several schemes; one table",
        description="Compile the model under each scheme (sweeping rate's T and, with --bitplane-lossy, "
                    "fewer bitplane steps), simulate the inputs, and print one table: scheme, parameters, "
                    "accuracy, Δ vs the float ANN, latency, energy per inference (45 nm CMOS model), synaptic "
                    "memory, cores. Writes each compiled network and compare.{md,json,html} to -o DIR.")
    p.add_argument("model", help="the ONNX model")
    p.add_argument("--target", default="loihi2")
    p.add_argument("--input", required=True, metavar="X.npy")
    p.add_argument("--labels", required=True, metavar="Y.npy")
    p.add_argument("--schemes", default="bitplane,rate", help="comma-separated (default bitplane,rate)")
    for scheme in all_schemes():          # each scheme's own sweep, e.g. rate's T values
        if scheme.compare_sweep is not None:
            flag, help_text, default = scheme.compare_sweep
            p.add_argument(flag, dest=f"sweep_{scheme.name}", default=",".join(map(str, default)),
                           help=f"{help_text} (default {','.join(map(str, default)) or 'none'})")
    p.add_argument("--calibration", metavar="X.npy", help="samples for input range / ReLU thresholds")
    p.add_argument("-o", "--output", required=True,
                   help="output directory: created, or replaced when it is empty or an unchanged earlier "
                        "neurodeploy output (see `neurodeploy compile --help`); written whole, atomically")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_compare)


def _ints(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise NeurodeployError(f"'{text}' is not a comma-separated list of integers", flag) from None


def cmd_compare(args) -> int:
    from ..arrays import check_inputs, load_npy
    from ..frontends.onnx import load_onnx
    from ..outputs import check_output_dir, output_folder
    from ..target import load_target

    load_target(args.target)
    inputs = [args.model, args.target, args.input, args.labels, args.calibration]
    out = check_output_dir(args.output, inputs)     # before the work: a folder we may not replace stops here
    graph = load_onnx(args.model, prove=False)
    (inp,) = graph.input_nodes()
    shape = graph.op(inp).shape
    x = check_inputs(load_npy(args.input, "inputs"), shape, args.input)
    y = check_labels(load_npy(args.labels, "labels"), len(x), args.labels)
    cal = load_npy(args.calibration, "calibration samples") if args.calibration else None
    sweeps = {s.name: _ints(getattr(args, f"sweep_{s.name}"), s.compare_sweep[0])
              for s in all_schemes() if s.compare_sweep is not None}

    # the whole folder (each configuration's network + compare.{md,json,html}) is built beside `out`
    # and replaces it in one rename: an error or a signal half-way leaves `out` as it was
    with output_folder(out, "compare", inputs) as tmp:
        d = run_compare(args.model, args.target, x, y, [s.strip() for s in args.schemes.split(",") if s.strip()],
                        str(tmp), cal, sweeps, progress=True)
        md = to_markdown(d)
        (tmp / "compare.md").write_text(md)
        (tmp / "compare.json").write_text(json.dumps(d, indent=1) + "\n")
        (tmp / "compare.html").write_text(to_html(d))
    print(json.dumps(d, indent=1) if args.json else md)
    return 0
