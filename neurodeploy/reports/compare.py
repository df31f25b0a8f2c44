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
fronts, the float ANN a black dotted line of its own, each point labelled where the label
collides with nothing).  One energy unit in plot and table; a column identical in every row is
said once above the table instead.  The command calls `neurodeploy.compare` (api.py).  A Lava-DL
NetX file has one configuration, its own network as imported (`frontends.netx.compare`), and no
float model.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator

from ..arrays import check_labels
from ..compiler import compile_model, save_artifact
from ..errors import NeurodeployError
from ..frontends.netx import is_netx_path
from ..reports.summary import summary_markdown
from ..registry import all_schemes, get_scheme
from . import tables as tb
from .costs import cost_report
from .figures import ENERGY_UNITS, MEMORY_UNITS, log_ticks, new_figure, place_labels, si_scale, significant
from .html import html_figure, html_table, inline, page

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
                progress: bool = False, netx_options: dict | None = None, workers: int = 1,
                ray_address: str | None = None) -> dict:
    """`netx_options`: the import options of a NetX `model` (`frontends.netx.options.NetxOptions` fields).
    workers > 1: each configuration a Ray task (`neurodeploy.workers`), the same tables and files."""
    configs = configurations(schemes, sweeps)
    for c in configs:       # a swept value out of range is the user's error, not a scheme that cannot compile
        try:
            get_scheme(c["scheme"]).options({"calibration": calibration, **c["options"]})
        except NeurodeployError as exc:
            raise NeurodeployError(f"configuration {c['name']}: {exc.what}", exc.where, exc.hint) from None
    rows, skipped = [], []
    if is_netx_path(model):               # a Lava-DL NetX file: its own network, as imported
        from ..frontends.netx.compare import compare_configs
        configs, skipped = compare_configs(model, schemes, netx_options or {})
    out = Path(out_dir)
    from ..workers import map_items
    done = map_items(_no_setup, _run_config, (model, target, x, y, calibration, batch_size), configs,
                     workers=workers, ray_address=ray_address, progress=progress, desc="compare", unit="config")
    for c, (net, s, reason) in zip(configs, done):
        if net is None:             # a scheme that cannot take this model: say why
            skipped.append({"config": c["name"], "reason": reason})
            continue
        save_artifact(net, out / c["name"], {"summary.md": summary_markdown(net)})
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
                     "upper_bound": s["upper_bound"], "fits_target": s["fits_target"], "spikes_per_sample": s["spikes_per_sample"]["mean"]})
    if not rows:
        raise NeurodeployError("no scheme could compile this model", model,
                               "; ".join(f"{s['config']}: {s['reason']}" for s in skipped))
    return {"model": str(model), "target": target, "samples": int(len(x)), "energy_model_plotted": PLOT_ENERGY_MODEL,
            "float_accuracy": rows[0]["float_accuracy"], "rows": rows, "skipped": skipped}


def _no_setup(context):
    return context


def _run_config(context: tuple, config: dict) -> tuple:
    """One configuration, compiled and costed: (network, cost summary, None), or (None, None, why not)
    for a scheme that cannot take this model.  A `--workers` task: it reads the model file by its
    path (on a cluster, a path every machine sees) and returns the network for the caller to write."""
    model, target, x, y, calibration, batch_size = context
    try:
        net = compile_model(model, target, config["scheme"], {"calibration": calibration, **config["options"]})
    except NeurodeployError as exc:
        return None, None, exc.one_line()
    check_labels(y, len(x), "--labels", n_classes=int(np.prod(net.output.shape)))
    return net, cost_report(net, x, batch_size, labels=y, model_path=model)["summary"], None


SCHEME_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#17becf", "#e377c2", "#7f7f7f")
FLOAT_STYLE = {"color": "#000000", "ls": ":", "lw": 1.6}      # the float reference: black, dotted, no marker


def energy_unit(d: dict) -> tuple[float, str]:
    """One unit for every energy figure of the comparison (plot and table alike)."""
    return si_scale([r["energy_pj"].get(d["energy_model_plotted"]) for r in d["rows"]], ENERGY_UNITS)


def _columns(d: dict) -> list[tuple[str, callable]]:
    scale, unit = energy_unit(d)
    mem_scale, mem_unit = si_scale([r["synaptic_memory_bytes"] for r in d["rows"]], MEMORY_UNITS)
    return [
        ("config", lambda r: r["config"]),
        ("scheme", lambda r: r["scheme"]),
        ("parameters", lambda r: ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "defaults"),
        ("accuracy", lambda r: f"{100 * r['accuracy']:.2f}%"),
        ("Δ vs float ANN", lambda r: "-" if r["delta_vs_float_pp"] is None else f"{r['delta_vs_float_pp']:+.2f} pp"),
        ("latency (steps)", lambda r: str(r["latency_steps"])),
        ("throughput (steps/sample)", lambda r: str(r["throughput_steps"])),
        (f"energy / inference ({unit}, {d['energy_model_plotted']})",
         lambda r: significant(None if r["energy_pj"].get(d["energy_model_plotted"]) is None
                               else r["energy_pj"][d["energy_model_plotted"]] / scale)),
        (f"synaptic memory ({mem_unit})", lambda r: tb.bound(significant(r["synaptic_memory_bytes"] / mem_scale)
                                                              if mem_scale != 1 else f"{r['synaptic_memory_bytes']:,}", r)),
        ("cores", lambda r: tb.bound(str(r["cores"]), r)),
    ]


def table(d: dict) -> tuple[list, list, list]:
    """(headers, rows, same): the columns that differ between configurations, and
    [(header, value)] of those identical in every row (said once, above the table)."""
    cols = _columns(d)
    cells = [[f(r) for _, f in cols] for r in d["rows"]]
    keep, same = [], []
    for i, (head, _) in enumerate(cols):
        values = {row[i] for row in cells}
        if len(d["rows"]) > 1 and len(values) == 1 and head not in ("config", "accuracy"):
            same.append((head, cells[0][i]))
        else:
            keep.append(i)
    return [cols[i][0] for i in keep], [[row[i] for i in keep] for row in cells], same


def _same_line(same: list) -> str:
    return ("Same in every configuration: " + "; ".join(f"{h}: {v}" for h, v in same) + ".") if same else ""


def to_markdown(d: dict) -> str:
    heads, rows, same = table(d)
    scale, unit = energy_unit(d)
    lines = [f"# Which scheme? {Path(d['model']).name} on {d['target']}", "",
             f"{d['samples']} samples; float ANN accuracy {_float_acc(d)}. Energy in {unit} per "
             f"inference from the `{d['energy_model_plotted']}` model (45 nm CMOS arithmetic only; Loihi 2 has no "
             "public per-operation figures) -- see each configuration's report for the other models.", ""]
    if same:
        lines += [_same_line(same), ""]
    lines += ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    if d["skipped"]:
        lines += ["", "Skipped:"] + [f"- {s['config']}: {s['reason']}" for s in d["skipped"]]
    return "\n".join(lines) + "\n"


def scheme_colors(d: dict) -> dict:
    """A fixed colour per scheme (registry order), none of them the float reference's black."""
    order = [s.name for s in all_schemes()]
    return {name: SCHEME_COLORS[order.index(name) % len(SCHEME_COLORS)] if name in order else SCHEME_COLORS[-1]
            for name in {r["scheme"] for r in d["rows"]}}


def front(d: dict, xkey: str) -> Figure:
    """Accuracy against latency ("latency_steps") or energy ("energy", log axis, the table's unit): a
    line per scheme, each point labelled where its label collides with nothing, the float ANN as a
    black dotted line of its own."""
    scale, unit = energy_unit(d)
    fig = new_figure(7.2, 4.2)
    ax = fig.subplots()
    colors = scheme_colors(d)
    labelled = []
    order = [s.name for s in all_schemes()]
    for scheme in sorted(colors, key=lambda n: order.index(n) if n in order else len(order)):
        pts = []
        for r in d["rows"]:
            if r["scheme"] != scheme:
                continue
            xv = r["latency_steps"] if xkey == "latency_steps" else r["energy_pj"].get(d["energy_model_plotted"])
            if xv is not None:
                pts.append((xv if xkey == "latency_steps" else xv / scale, 100 * r["accuracy"], _point_label(r)))
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colors[scheme], ms=5, label=scheme)
        labelled += pts
    if d["float_accuracy"] is not None:         # a NetX file has no float model
        ax.axhline(100 * d["float_accuracy"], label=f"float ANN ({_float_acc(d)})", **FLOAT_STYLE)
    xs = [p[0] for p in labelled if p[0] > 0]
    if xkey == "energy":
        ax.set_xlabel(f"energy per inference ({unit}, {d['energy_model_plotted']} model)")
        if xs and max(xs) / min(xs) > 30:            # wide spans on a log axis, the rest linear
            ax.set_xscale("log")
            log_ticks(ax.xaxis, min(xs), max(xs))
    else:
        ax.set_xlabel("latency (time steps per sample)")
    ax.set_ylabel("accuracy (%)")
    # room below the lowest point and above 100% for the point labels; ticks only up to 100%
    lo = min([p[1] for p in labelled] + ([] if d["float_accuracy"] is None else [100 * d["float_accuracy"]]))
    bottom = max(0.0, lo - 0.15 * (100 - lo) - 1)
    ax.set_ylim(bottom, 100 + 0.12 * (100 - bottom))
    ax.yaxis.set_major_locator(FixedLocator([t for t in MaxNLocator(7).tick_values(bottom, 100) if bottom <= t <= 100]))
    ax.margins(x=0.12)
    ax.grid(alpha=.3)
    ax.legend(fontsize=8, loc="lower right")
    place_labels(ax, labelled)
    return fig


def _float_acc(d: dict) -> str:
    return "- (no float model)" if d["float_accuracy"] is None else f"{100 * d['float_accuracy']:.2f}%"


def _point_label(r: dict) -> str:
    """A point's label: the parameter that sets it apart within its scheme (T=16), else its config."""
    p = r["parameters"]
    return f"T={p['timesteps']}" if "timesteps" in p else r["config"]


def to_html(d: dict) -> str:
    heads, rows, same = table(d)
    scale, unit = energy_unit(d)
    title = f"Which scheme? {Path(d['model']).name} on {d['target']}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{d['samples']} samples; float ANN accuracy {_float_acc(d)}. Energy in "
             f"{html.escape(unit)} per inference from the <code>{html.escape(d['energy_model_plotted'])}</code> model "
             "(45 nm CMOS arithmetic only; Loihi 2 has no public per-operation figures).</p>"]
    if same:
        parts.append(f"<p>{inline(_same_line(same))}</p>")
    parts += [html_table(heads, rows),
              html_figure(front(d, "latency_steps"), "fig-latency",
                          "Accuracy vs latency; the black dotted line is the float ANN"),
              html_figure(front(d, "energy"), "fig-energy",
                          f"Accuracy vs energy per inference ({unit}) under the {d['energy_model_plotted']} model "
                          "only; the black dotted line is the float ANN")]
    if d["skipped"]:
        parts.append("<p>Skipped:</p><ul>" + "".join(f"<li>{html.escape(s['config'])}: {html.escape(s['reason'])}</li>"
                                                    for s in d["skipped"]) + "</ul>")
    return page(title, parts)


def write_outputs(d: dict, folder: Path) -> str:
    """compare.md, compare.json and compare.html into `folder` (the one `outputs.output_folder`
    builds beside the -o directory and swaps in whole); returns the Markdown."""
    md = to_markdown(d)
    (folder / "compare.md").write_text(md)
    (folder / "compare.json").write_text(json.dumps(d, indent=1) + "\n")
    (folder / "compare.html").write_text(to_html(d))
    return md

