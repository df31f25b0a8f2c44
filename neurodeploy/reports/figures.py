"""The reports' figures (matplotlib's object API: no pyplot, no display) and the checks that keep them
legible.

Per layer: spikes sent, membrane headroom against the state register's width, accuracy after each
time step (where the readout accumulates over the run), energy (one panel per energy model, one
unit for all), synaptic memory and operations.  Every figure states its unit in its axis label,
the same unit the report's tables use (`units`).

`text_overlaps(fig)` lists the pairs of texts (tick labels, axis labels, titles, legend entries,
annotations) whose drawn boxes intersect; `place_labels` puts point labels where they collide with
nothing already drawn.  Tests run the first on every figure; compare uses the second.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

SNN_COLOR, ANN_COLOR, LIMIT_COLOR = "#2b6cb0", "#c05621", "#555555"


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)                      # a canvas to measure text on
    return fig


def bars(ax, names, series: list[tuple[str, list, str]], ylabel: str, log: bool = False) -> None:
    """Grouped bars, one group per layer; layer names turned when there are many."""
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for k, (label, values, color) in enumerate(series):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label, color=color)
    turn = len(names) > 5 or max((len(n) for n in names), default=0) > 9
    ax.set_xticks(x, names, rotation=35 if turn else 0, ha="right" if turn else "center", fontsize=8)
    ax.set_ylabel(ylabel)
    top = max([v for _, values, _ in series for v in values if v is not None and np.isfinite(v)] or [0])
    if log:
        ax.set_yscale("log")
        low = min([v for _, values, _ in series for v in values if v] or [1])
        log_ticks(ax.yaxis, low, top)
        if top > 0:
            ax.set_ylim(top=top * 30)             # a band above the bars for the legend
    elif top > 0:
        ax.set_ylim(0, top * 1.3)
    ax.grid(axis="y", alpha=.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper center", ncols=len(series), frameon=False)


def log_ticks(axis, lo: float | None = None, hi: float | None = None) -> None:
    """A log axis labelled at 1-2-5 steps when it spans at most three decades (a reader can place a
    point between them), at the powers of ten only beyond; minor ticks unlabelled (their 2x..9x
    labels are what collides on a default log axis)."""
    decades = math.log10(hi / lo) if lo and hi and lo > 0 and hi > lo else 99.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 0.1))
    axis.set_minor_formatter(NullFormatter())


# --- the per-layer figures ---------------------------------------------------------------------

def spikes_figure(d: dict) -> Figure:
    senders = [l for l in d["layers"] if l["role"] != "readout"]
    names = [l["name"] for l in senders]
    fig = new_figure(8.5, 3.4)
    ax, ax2 = fig.subplots(1, 2)
    bars(ax, names, [("spikes", [l["spikes_per_sample"] for l in senders], SNN_COLOR)], "spikes per inference")
    ax.set_title("Spikes sent per layer", fontsize=10)
    bars(ax2, names, [("per neuron", [l["spikes_per_neuron_per_sample"] for l in senders], SNN_COLOR),
                      ("time steps T", [l["time_steps"] for l in senders], "#bbbbbb")],
         "spikes per neuron per inference")
    ax2.set_title("Spikes per neuron, next to the layer's T", fontsize=10)
    return fig


def headroom_figure(dyn: dict) -> Figure | None:
    """Bits the largest |state| needed per layer, against the register's width (signed: width - 1
    magnitude bits)."""
    rows = [s for s in dyn["state"] if s["peak_bits"] is not None and s["state_bits"] is not None]
    if not rows:
        return None
    names = [s["layer"] for s in rows]
    fig = new_figure(7.0, 3.4)
    ax = fig.subplots()
    x = np.arange(len(rows))
    ax.bar(x, [s["peak_bits"] for s in rows], 0.6, color=SNN_COLOR, label="bits of the largest |state| seen")
    ax.hlines([s["state_bits"] - 1 for s in rows], x - 0.4, x + 0.4, colors=LIMIT_COLOR, linestyles="--",
              label="magnitude bits of the register (width - 1)")
    for i, s in enumerate(rows):
        ax.annotate(f"{s['headroom_bits']:+d}", (i, s["peak_bits"]), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    turn = len(names) > 5 or max(len(n) for n in names) > 9
    ax.set_xticks(x, names, rotation=35 if turn else 0, ha="right" if turn else "center", fontsize=8)
    ax.set_ylabel("bits")
    ax.set_ylim(0, max(max(s["state_bits"] for s in rows), max(s["peak_bits"] for s in rows)) * 1.25)
    ax.grid(axis="y", alpha=.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Membrane headroom per layer (numbers: bits to spare)", fontsize=10)
    return fig


def accuracy_steps_figure(dyn: dict, references: dict) -> Figure | None:
    """Accuracy if the readout were read after step t, with the reference accuracies as lines."""
    steps = dyn.get("accuracy_by_step")
    if not steps:
        return None
    fig = new_figure(7.0, 3.4)
    ax = fig.subplots()
    t = [s["step"] for s in steps]
    ax.plot(t, [100 * s["accuracy"] for s in steps], "o-", color=SNN_COLOR, ms=3, label="SNN readout after step t")
    styles = {"float ANN": ("#000000", ":"), "quantised ANN": (ANN_COLOR, "--")}
    for name, acc in references.items():
        if acc is not None:
            color, ls = styles.get(name, (LIMIT_COLOR, "-."))
            ax.axhline(100 * acc, color=color, ls=ls, lw=1.2, label=name)
    if dyn.get("latency_steps"):
        ax.axvline(dyn["latency_steps"], color=LIMIT_COLOR, lw=0.8, ls="-.", label="latency")
    ax.set_xlabel("time step t")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Accuracy vs time steps", fontsize=10)
    return fig


def energy_figure(d: dict, scale: float, unit: str) -> Figure | None:
    models = d["energy"]["models"]
    if not models:
        return None
    names = [l["name"] for l in d["layers"]]
    fig = new_figure(4.4 * len(models), 3.6)
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        snn = [l["energy_pj"][m["name"]]["snn"] for l in d["layers"]]
        ann = [l["energy_pj"][m["name"]]["ann"] for l in d["layers"]]
        series = [("SNN", [None if v is None else v / scale for v in snn], SNN_COLOR)]
        if any(v is not None for v in ann):
            series.append(("ANN", [None if v is None else v / scale for v in ann], ANN_COLOR))
        bars(ax, names, series, f"energy per inference ({unit})")
        ax.set_title(f"{m['name']}\n({m['chip']}, {m['role']})", fontsize=9)
    return fig


def memory_figure(d: dict, scale: float, unit: str) -> Figure:
    chip = [l for l in d["layers"] if l["on_chip"]]
    names = [l["name"] for l in chip]
    fig = new_figure(7.0, 3.4)
    ax = fig.subplots()
    vals = [l["synaptic_memory_bytes"] / scale for l in chip]
    bars(ax, names, [("synaptic memory", vals, SNN_COLOR)], f"synaptic memory ({unit})")
    for i, l in enumerate(chip):
        ax.annotate(f"{l['cores']} core{'s' if l['cores'] != 1 else ''}", (i, vals[i]), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_ylim(0, max(vals, default=1) * 1.2 or 1)
    ax.set_title(f"Synaptic memory per layer ({d['memory_model']['bits_per_synapse']} bits per synapse)",
                 fontsize=10)
    return fig


def ops_figure(d: dict) -> Figure:
    chip = [l for l in d["layers"] if l["on_chip"]]
    names = [l["name"] for l in chip]
    fig = new_figure(7.0, 3.4)
    ax = fig.subplots()
    bars(ax, names, [("SNN synaptic ops", [l["synaptic_ops_per_sample"] or None for l in chip], SNN_COLOR),
                     ("ANN MACs", [l["ann_ops"]["mac"] or None for l in chip], ANN_COLOR)],
         "operations per inference", log=True)
    ax.set_title("Operations per layer (counts, not energy)", fontsize=10)
    return fig


# --- legibility ----------------------------------------------------------------------------------

def drawn_texts(fig: Figure) -> list[Text]:
    """The texts a draw of `fig` shows: non-empty, visible, and (tick labels) of ticks inside the
    axis' view."""
    fig.canvas.draw()
    ticks = set()
    shown = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    ticks.add(id(label))
                    if label.get_visible() and lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
                        shown.add(id(label))
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        if id(t) in ticks and id(t) not in shown:
            continue
        out.append(t)
    return out


def text_overlaps(fig: Figure, pad: float = 0.0) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes (in display pixels, grown by `pad`) intersect."""
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer).expanded(1, 1).padded(pad) for t in texts]
    bad = []
    for (a, ba), (b, bb) in itertools.combinations(zip(texts, boxes), 2):
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > 0.5 and h > 0.5:
            bad.append((a.get_text(), b.get_text()))
    return bad


def texts_outside(fig: Figure) -> list[str]:
    """Drawn texts that stick out of the figure (cut off when saved)."""
    renderer = fig.canvas.get_renderer()
    fb = fig.bbox
    return [t.get_text() for t in drawn_texts(fig)
            if (lambda b: b.x0 < fb.x0 - 0.5 or b.x1 > fb.x1 + 0.5 or b.y0 < fb.y0 - 0.5 or b.y1 > fb.y1 + 0.5)(
                t.get_window_extent(renderer))]


def place_labels(ax, points: list[tuple[float, float, str]], fontsize: float = 8.5) -> None:
    """Annotate each (x, y, text) point where its label overlaps no label placed before, no marker
    and stays inside the axes: candidates around the point, nearest first; a label that finds no
    free place is left out (the table beside the figure names every point)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = []
    marker_px = 4.0
    centres = [ax.transData.transform((x, y)) for x, y, _ in points]
    for cx, cy in centres:
        taken.append((cx - marker_px, cy - marker_px, cx + marker_px, cy + marker_px))
    frame = ax.get_window_extent(renderer)
    offsets = [(dx, dy) for r in (4, 10, 18, 28) for dx, dy in
               ((r, r), (r, -r - 6), (-r, r), (-r, -r - 6), (0, r + 2), (0, -r - 8), (r + 2, -3), (-r - 2, -3))]
    for (x, y, text), (cx, cy) in zip(points, centres):
        for dx, dy in offsets:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                              ha=ha, va="bottom", color="#333333")
            b = ann.get_window_extent(renderer)
            box = (b.x0 - 1, b.y0 - 1, b.x1 + 1, b.y1 + 1)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            if inside and not any(_intersects(box, t) for t in taken):
                taken.append(box)
                break
            ann.remove()


def _intersects(a, b) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0 and min(a[3], b[3]) - max(a[1], b[1]) > 0


def si_scale(values, units: tuple[tuple[str, float], ...]) -> tuple[float, str]:
    """(scale, unit) for a list of values: the largest unit in which the largest value is >= 1."""
    m = max([abs(v) for v in values if v] or [0.0])
    for unit, scale in units:
        if m >= scale:
            return scale, unit
    return units[-1][1], units[-1][0]


ENERGY_UNITS = (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3), ("pJ", 1.0))   # from pJ
MEMORY_UNITS = (("MiB", float(1 << 20)), ("KiB", 1024.0), ("B", 1.0))            # from bytes


def significant(v: float | None, digits: int = 3) -> str:
    """A number with `digits` significant digits, never in scientific notation ('-' for None)."""
    if v is None:
        return "-"
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - mag)
    return f"{v:,.{decimals}f}"
