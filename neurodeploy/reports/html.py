"""The cost report as one self-contained HTML page (`neurodeploy report --format html`).

Plots are drawn with matplotlib's object API (no pyplot, no display) and embedded as base64 PNGs,
so the page needs no other file and no network.  Figures: energy per layer (one panel per energy
model: a figure never mixes models), synaptic memory per layer, spike activity per layer, and
operations per layer (SNN synaptic ops next to the ANN's MACs).  A short script at the end of the
page writes into #render-check whether every figure decoded, for headless checks.
"""
from __future__ import annotations

import base64
import html
import io

import re

import numpy as np
from matplotlib.figure import Figure

from . import tables as tb

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #1b1b1b; background: #fff; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f0f3f7; } td.num { text-align: right; white-space: nowrap; }
.statement { background: #fff6e0; border-left: 4px solid #e0a000; padding: .6em 1em; }
.note { color: #555; font-size: .9em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: .9em; }
code { background: #f3f3f3; padding: 0 .2em; }
"""

CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('figure img'));
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var el = document.getElementById('render-check');
  el.textContent = 'figures rendered: ' + ok + '/' + imgs.length;
  el.setAttribute('data-ok', String(ok)); el.setAttribute('data-total', String(imgs.length));
});
</script>
"""

NUMERIC = re.compile(r"^[-+]?[\d,.]+(\s?(%|pp|pJ|nJ|uJ|mJ|J))?(\s*[(/].*)?$")
SNN_COLOR, ANN_COLOR = "#2b6cb0", "#c05621"


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(ax, names, series: list[tuple[str, list, str]], ylabel: str, log: bool = False):
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for k, (label, values, color) in enumerate(series):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label, color=color)
    ax.set_xticks(x, names, rotation=30 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=.3)
    if len(series) > 1:
        ax.legend(fontsize=8)


def _unit(values) -> tuple[float, str]:
    m = max([v for v in values if v] or [1.0])
    for unit, scale in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if m >= scale:
            return scale, unit
    return 1.0, "pJ"


def energy_figure(d: dict) -> Figure | None:
    models = d["energy"]["models"]
    if not models:
        return None
    names = [l["name"] for l in d["layers"]]
    fig = Figure(figsize=(4.2 * len(models), 3.6), layout="constrained")
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        snn = [l["energy_pj"][m["name"]]["snn"] for l in d["layers"]]
        ann = [l["energy_pj"][m["name"]]["ann"] for l in d["layers"]]
        scale, unit = _unit(snn + ann)
        series = [("SNN", [None if v is None else v / scale for v in snn], SNN_COLOR)]
        if any(v is not None for v in ann):
            series.append(("ANN", [None if v is None else v / scale for v in ann], ANN_COLOR))
        _bars(ax, names, series, f"energy per inference ({unit})")
        ax.set_title(f"{m['name']}\n({m['chip']}, {m['role']})", fontsize=9)
    fig.suptitle("Energy by layer: one panel per model, never mixed", fontsize=10)
    return fig


def memory_figure(d: dict) -> Figure:
    chip = [l for l in d["layers"] if l["on_chip"]]
    names = [l["name"] for l in chip]
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    kib = [l["synaptic_memory_bytes"] / 1024 for l in chip]
    _bars(ax, names, [("synaptic memory", kib, SNN_COLOR)], "synaptic memory (KiB)")
    for i, l in enumerate(chip):
        ax.annotate(f"{l['cores']} core{'s' if l['cores'] != 1 else ''}", (i, kib[i]), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    limit = d["allocation"]["synaptic_memory_bytes_per_core"]
    if limit and max(kib, default=0) >= 0.25 * limit / 1024:
        ax.axhline(limit / 1024, color="#999", ls="--", lw=1, label="one core's synaptic memory")
        ax.legend(fontsize=8)
    ax.set_title(f"Synaptic memory by layer ({d['memory_model']['bits_per_synapse']} bits per synapse)", fontsize=10)
    return fig


def spikes_figure(d: dict) -> Figure:
    senders = [l for l in d["layers"] if l["role"] != "readout"]
    names = [l["name"] for l in senders]
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    _bars(ax, names, [("spikes", [l["spikes_per_sample"] for l in senders], SNN_COLOR)], "spikes per inference")
    ax.set_title("Spikes sent per layer", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    _bars(ax, names, [("per neuron", [l["spikes_per_neuron_per_sample"] for l in senders], SNN_COLOR),
                      ("T (time steps)", [l["time_steps"] for l in senders], "#bbb")],
          "spikes per neuron per inference")
    ax.set_title("Spikes per neuron (next to the layer's T)", fontsize=10)
    return fig


def ops_figure(d: dict) -> Figure:
    chip = [l for l in d["layers"] if l["on_chip"]]
    names = [l["name"] for l in chip]
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    _bars(ax, names, [("SNN synaptic ops", [l["synaptic_ops_per_sample"] or None for l in chip], SNN_COLOR),
                      ("ANN MACs", [l["ann_ops"]["mac"] or None for l in chip], ANN_COLOR)],
          "operations per inference", log=True)
    ax.set_title("Operations by layer (counts, not energy)", fontsize=10)
    return fig


def html_table(headers, rows) -> str:
    def cell(v):
        text = html.escape(str(v))
        if text.startswith("**") and text.endswith("**"):
            text = f"<strong>{text[2:-2]}</strong>"
        elif text.startswith("`") and text.endswith("`"):
            text = f"<code>{text[1:-1]}</code>"
        return text
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='num'>{cell(v)}</td>" if NUMERIC.match(str(v)) else f"<td>{cell(v)}</td>"
                                    for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_figure(fig: Figure | None, ident: str, caption: str) -> str:
    if fig is None:
        return ""
    return (f'<figure id="{ident}"><img alt="{html.escape(caption)}" src="data:image/png;base64,{_png(fig)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def figures(d: dict) -> list[tuple[str, Figure | None, str]]:
    return [("fig-energy", energy_figure(d), "Energy per inference by layer, one panel per energy model"),
            ("fig-memory", memory_figure(d), "Synaptic memory by layer, with the cores each layer needs"),
            ("fig-spikes", spikes_figure(d), "Spike activity by layer (means per inference)"),
            ("fig-ops", ops_figure(d), "SNN synaptic operations and ANN multiply-accumulates by layer")]


def to_html(d: dict) -> str:
    e, t, mm, al = d["energy"], d["timing"], d["memory_model"], d["allocation"]
    esc = html.escape
    figs = {ident: html_figure(fig, ident, cap) for ident, fig, cap in figures(d)}
    parts = [f"<h1>{esc(tb.title(d))}</h1>",
             f"<p class='note'>neurodeploy {esc(d['neurodeploy_version'])}; model sha256 "
             f"<code>{esc(str(d['network']['model_sha256']))}</code>; target: {esc(d['network']['target_description'])}. "
             f"{d['samples']} samples simulated bit-exactly; activity and energy are means per inference.</p>",
             "<h2>Summary</h2>", html_table(*tb.summary_table(d))]
    acc = tb.accuracy_table(d)
    if acc:
        parts += ["<p>Accuracy on the given labels:</p>", html_table(*acc)]
    parts += ["<h2>Energy per inference</h2>"]
    if e["statement"]:
        parts.append(f"<p class='statement'><strong>Target {esc(e['target'])}:</strong> {esc(e['statement'])}</p>")
    parts += [f"<p>Each figure comes from one named model and only that model; it is not a figure for "
              f"{esc(e['target'])} unless its role says <code>target</code>.</p>",
              html_table(*tb.energy_models_table(d)), figs["fig-energy"]]
    for m in e["models"]:
        parts += [f"<h3><code>{esc(m['name'])}</code>: {esc(m['title'])}</h3>",
                  f"<p class='note'>Chip {esc(m['chip'])} ({esc(m['role'])}); {esc(m['status'])}. "
                  f"Source: {esc(m['source'])}.</p>",
                  html_table(*tb.energy_price_table(m)), html_table(*tb.energy_layer_table(d, m))]
    parts += ["<h2>Structure and memory</h2>", html_table(*tb.structure_table(d)),
              f"<p>Synaptic memory: {mm['bits_per_synapse']} bits per synapse ({mm['weight_bits']}-bit weight "
              f"mantissa + {mm['index_bits']} index bits); {esc(mm['format'])}.</p>"]
    parts.append(f"<p>{esc(tb.cores_sentence(al))}</p>")
    parts += [f"<p class='statement'>problem: {esc(p)}</p>" for p in al["problems"]]
    parts += [figs["fig-memory"], "<h2>Activity per inference</h2>", html_table(*tb.activity_table(d)),
              f"<p class='note'>{esc(d['activity']['note'])}</p>", figs["fig-spikes"], figs["fig-ops"],
              "<h2>Timing</h2><ul>",
              f"<li>latency: {t['latency_steps']} time steps per sample ({esc(t['mode'])})</li>",
              f"<li>pipelined throughput: one sample every {tb.count(t['throughput_steps'])} steps</li>",
              f"<li>time per step: {esc(t['step_duration_note'])}</li></ul>",
              "<h2>What the counts mean</h2><ul>"]
    parts += [f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in d["counters"].items()]
    parts += ["</ul><h2>Assumptions</h2><ul>"] + [f"<li>{esc(a)}</li>" for a in d["assumptions"]] + ["</ul>"]
    parts.append("<p id='render-check' class='note'>figures rendered: (needs a browser)</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(tb.title(d))}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(p for p in parts if p) + CHECK_SCRIPT + "</body></html>\n")
