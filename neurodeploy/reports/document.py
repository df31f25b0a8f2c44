"""The report as a document: numbered sections of paragraphs, tables, figures and lists, and the
footnotes its numbers cite, built once from the report dict (`build.build_report`) and rendered by
`markdown.to_markdown` and `html.to_html` alike.

Order: the verdict first (the scheme's guarantee, whether it holds, per-layer conversion vs
quantisation mismatches, accuracies), then whether the network can go to a Loihi 2 chip, then the
costs.  Inline text may use `code`, **bold** and footnote markers [^n]; the renderers translate
them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import figures as fg
from . import tables as tb
from .sources import Footnotes, energy_file, target_file


@dataclass
class Para:
    text: str
    kind: str = ""               # "", "note", "statement", "verdict-exact", "verdict-not-exact", "verdict-approximate"


@dataclass
class Table:
    headers: list
    rows: list


@dataclass
class Fig:
    ident: str
    figure: object               # a matplotlib Figure
    caption: str


@dataclass
class Items:
    items: list


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    level: int = 2

    @property
    def slug(self) -> str:
        return slug(self.title)


@dataclass
class Document:
    title: str
    meta: str
    sections: list
    footnotes: list


def slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return s.replace(" ", "-")


# --- the sections -----------------------------------------------------------------------------------

def report_document(d: dict) -> Document:
    u = tb.units_of(d)
    fn = Footnotes()
    tfile = target_file(d["network"]["target"])

    def tcite(key: str, value) -> str:
        return fn.value(tfile, key, value, f"the target description recorded in the compiled network "
                                          f"(ir.json meta.target_spec) of target '{d['network']['target']}'")

    sections = [_verdict(d), _loihi2(d), _costs(d, u), *_per_layer(d, tcite), _energy(d, u, fn),
                _structure(d, u, tcite), _activity(d), _timing(d), _counters(d), _assumptions(d)]
    n = d["network"]
    meta = (f"neurodeploy {d['neurodeploy_version']}; model sha256 `{n['model_sha256']}`; target: "
            f"{n['target_description']}. {d['samples']} samples simulated bit-exactly; activity and energy are "
            f"means per inference. Energy in {u.energy}, synaptic memory in {u.memory} throughout.")
    numbered = []
    k = j = 0
    for s in sections:
        if s is None:
            continue
        if s.level == 2:
            k, j = k + 1, 0
            s.title = f"{k}. {s.title}"
        else:
            j += 1
            s.title = f"{k}.{j} {s.title}"
        numbered.append(s)
    return Document(f"Report: {tb.title(d)}", meta, numbered, fn.notes)


def _verdict(d: dict) -> Section:
    s = Section("Verdict")
    v = d.get("verify")
    if v is None:
        s.blocks.append(Para("Not checked: pass `--model` (the model the directory was compiled from) and "
                             "`--labels` for the scheme's guarantee, the per-layer conversion and quantisation "
                             "mismatches and the float model's accuracy.", "note"))
        acc = tb.accuracy_table(d)
        if acc:
            s.blocks += [Para("Accuracy on the given labels:"), Table(*acc)]
        return s
    verdict = v["verdict"]
    word = verdict["word"]
    head = f"**{word}**" + ("" if word == "APPROXIMATE" else
                            f": the guarantee {'holds' if verdict['holds'] else 'does NOT hold'}")
    s.blocks += [Para(f"{head}. {verdict['reason']}.", "verdict-" + word.lower().replace(" ", "-")),
                 Para(f"Guarantee of the `{v['scheme']}` scheme: {v['guarantee']}.")]
    if v.get("model_is_compiled_one") is False:         # --allow-other-model: the reader must know
        s.blocks.append(Para(f"Compared against `{Path(str(v['model'])).name}`, which is not the model this "
                             "network was compiled from (its sha256 differs; `--allow-other-model`).", "statement"))
    a, g = v["accuracy"], v["agreement"]
    if "fixed_point_snn" in a:             # a trained SNN: float SNN vs fixed-point SNN
        s.blocks.append(Table(["float SNN", "fixed-point SNN", "agreement (predictions)"],
                              [[tb.percent(a["float_snn"]), tb.percent(a["fixed_point_snn"]),
                                tb.percent(g["fixed_vs_float_snn"])]]))
        return s
    runner = "onnxruntime" if str(v["model"]).lower().endswith(".onnx") else "PyTorch"
    s.blocks.append(Table(["", f"float ANN ({runner})", "quantised ANN", "SNN"],
                          [["accuracy", tb.percent(a["float"]), tb.percent(a["quantised_ann"]), tb.percent(a["snn"])],
                           ["SNN predictions agree with", tb.percent(g["snn_vs_float"]),
                            tb.percent(g["snn_vs_quantised_ann"]), "-"]]))
    rows = []
    for l in v["layers"]:
        qm = l["quantisation_mismatches"]
        rows.append([l["layer"], tb.count(l["elements"]), tb.count(l["conversion_mismatches"]),
                     "-" if qm is None else tb.count(qm), tb.count(l["spikes_per_sample"])])
    s.blocks += [Para(f"Per layer, on the {v['samples']} samples: conversion mismatches (SNN codes vs the quantised "
                      "ANN's; the readout's state for the readout) decide the verdict; quantisation mismatches "
                      "(the float model's codes vs the quantised ANN's) are the price of the target's formats. "
                      f"Largest |logit difference| float vs quantised ANN: "
                      f"{v['quantisation_error']['max_abs_logit_diff_float_vs_quantised']:.4g}."),
                 Table(["layer", "values compared", "conversion mismatches", "quantisation mismatches",
                        "spikes / inference"], rows)]
    if v.get("state_overflows"):
        s.blocks.append(Para("State overflow: the calibrated state bound was exceeded (the register wrapped as on "
                             "the chip) in " + ", ".join(f"{k} ({n:,} neurons)" for k, n in v["state_overflows"].items())
                             + "; recompile with --state-bound static or more --calibration data.", "statement"))
    return s


def _loihi2(d: dict) -> Section | None:
    c = d.get("loihi2")
    if c is None:                      # a bare cost report (costs.cost_report), not build_report's
        return None
    rows = [[r["layer"], r["neuron"], r["where"], r["model"]] for r in c["layers"]]
    return Section("Loihi 2 deployability", [
        Para(c["statement"][0].upper() + c["statement"][1:], "statement"),
        Table(["layer", "neuron", "runs as", "neuron model on Loihi 2"], rows),
        Para("stock: a Loihi 2 stock neuron model reachable through public software (Lava, Lava-DL NetX); "
             "microcode: a custom neuron program Loihi 2 would run as microcode, which no public software "
             "provides; host: runs on the host (input encoder, host-side readout).", "note")])


def _costs(d: dict, u: tb.Units) -> Section:
    return Section("Costs at a glance", [Table(*tb.summary_table(d, u))])


def _per_layer(d: dict, tcite) -> list:
    dyn = d.get("dynamics")
    senders = [l for l in d["layers"] if l["role"] != "readout"]
    out = [Section("Per layer"),
           Section("Spikes", [Fig("fig-spikes", fg.spikes_figure(d), "Spikes sent per layer and per neuron, "
                                                                    "means per inference"),
                              Table(["layer", "spikes / inference", "spikes / neuron", "time steps T"],
                                    [[l["name"], tb.count(l["spikes_per_sample"]),
                                      f"{l['spikes_per_neuron_per_sample']:.3f}", tb.count(l["time_steps"])]
                                     for l in senders])], 3)]
    if dyn is None:
        return out
    head = Section("Membrane headroom", level=3)
    rows = [[s["layer"], tb.count(s["peak"]), tb.count(s["peak_bits"]), tb.count(s["state_bits"]),
             "-" if s["headroom_bits"] is None else f"{s['headroom_bits']:+d}"] for s in dyn["state"]]
    width = next((s["state_bits"] for s in dyn["state"] if s["state_bits"]), None)
    cite = tcite("neuron.state_bits", width) if width else ""
    head.blocks += [Para("The largest |value| each layer's state register (membrane, accumulator, sigma) held over "
                         "the inputs and every step, before any wrap or saturation, against the register's signed "
                         f"width{cite}: headroom = width - 1 - bits of the peak; below 0 the register overflows."),
                    Fig("fig-headroom", fg.headroom_figure(dyn), "Bits of the largest |state| per layer against "
                                                                 "the register's magnitude bits"),
                    Table(["layer", "largest |state|", "its bits", "register width (bits)", "headroom (bits)"], rows)]
    if not dyn["recorded"]:
        head.blocks = [Para("The scheme's simulator records no state peaks.", "note")]
    out.append(head)
    acc = Section("Accuracy vs time steps", level=3)
    steps = dyn.get("accuracy_by_step")
    if steps:
        a = (d.get("verify") or {}).get("accuracy") or {}
        sa = d["summary"]["accuracy"] or {}
        refs = {"float ANN": a.get("float", sa.get("float_ann")), "quantised ANN": a.get("quantised_ann",
                                                                                          sa.get("quantised_ann"))}
        pick = _sample_steps(len(steps))
        acc.blocks += [Para("The share of samples whose readout already points at the right class after step t "
                            "(the readout accumulates over the run), with the reference accuracies."),
                       Fig("fig-accuracy-steps", fg.accuracy_steps_figure(dyn, refs), "Accuracy vs time steps"),
                       Table(["time step"] + [str(steps[i]["step"]) for i in pick],
                             [["accuracy"] + [tb.percent(steps[i]["accuracy"]) for i in pick]])]
    elif d["summary"]["accuracy"] is None:
        acc.blocks.append(Para("Pass --labels for the accuracy after each time step.", "note"))
    else:
        acc.blocks.append(Para(f"A `{d['network']['scheme']}` readout holds its value only after the last step "
                               f"(latency {d['timing']['latency_steps']} steps): there is no accuracy before it.",
                               "note"))
    out.append(acc)
    return out


def _sample_steps(n: int, at_most: int = 12) -> list[int]:
    """Indices of at most `at_most` steps, evenly spread, the first and the last included."""
    if n <= at_most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (at_most - 1)) for i in range(at_most)})


def _energy(d: dict, u: tb.Units, fn: Footnotes) -> Section:
    e = d["energy"]
    s = Section("Energy per inference")
    if e["statement"]:
        s.blocks.append(Para(f"**Target {e['target']}:** {e['statement']}", "statement"))

    def model_cite(m) -> str:
        f = energy_file(m["name"])
        where = f"`targets/energy/{m['name']}.toml`" if f else f"energy model `{m['name']}`"
        return fn.cite(f"{where}: {m['title']}; {m['source']}. Status: {m['status']}.")

    def op_cite(m, side, op) -> str:
        return fn.value(energy_file(m["name"]), f"{side}.energy_pj.{op}", f"{m[f'{side}_energy_pj'][op]:g}",
                        f"energy model file {m['name']}")

    s.blocks += [Para(f"Each figure comes from one named model and only that model; it is not a figure for "
                      f"{e['target']} unless its role says `target`. All in {u.energy} per inference."),
                 Table(*tb.energy_models_table(d, u, model_cite)),
                 Fig("fig-energy", fg.energy_figure(d, u.energy_scale, u.energy),
                     f"Energy per inference by layer ({u.energy}), one panel per energy model")]
    for m in e["models"]:
        s.blocks += [Para(f"**`{m['name']}`** ({m['title']}): its per-operation figures and what they add up to, "
                          "then by layer."),
                     Table(*tb.energy_price_table(m, u, op_cite)), Table(*tb.energy_layer_table(d, m, u))]
    return s


def _structure(d: dict, u: tb.Units, tcite) -> Section:
    mm, al = d["memory_model"], d["allocation"]
    s = Section("Structure and memory", [Table(*tb.structure_table(d, u))])
    s.blocks.append(Para(f"Synaptic memory: {mm['bits_per_synapse']} bits per synapse ({mm['weight_bits']}-bit "
                         f"weight mantissa{tcite('weights.mant_bits', mm['weight_bits'])} + {mm['index_bits']} index "
                         f"bits); {mm['format']}."))
    if al["unlimited"]:
        s.blocks.append(Para("Cores: the target sets no per-core limits; each layer counts as one core."))
    else:
        s.blocks.append(Para(
            f"Cores: {al['method']}; limits {tb.count(al['neurons_per_core'])} neurons"
            f"{tcite('chip.neurons_per_core', al['neurons_per_core'])} and "
            f"{u.m(al['synaptic_memory_bytes_per_core'])} {u.memory} of synaptic memory"
            f"{tcite('chip.synaptic_memory_bytes_per_core', al['synaptic_memory_bytes_per_core'])} per core, "
            f"{tb.count(al['cores_per_chip'])} cores per chip{tcite('chip.cores_per_chip', al['cores_per_chip'])}: "
            f"{al['cores']} cores on {al['chips']} chip{'s' if al['chips'] != 1 else ''}, "
            f"{'fits' if al['fits_target'] else 'does NOT fit'}."))
    if al.get("upper_bound"):
        s.blocks.append(Para(f"Synaptic memory, cores and chips are upper bounds: {al['upper_bound_reason']}."))
    s.blocks += [Para(f"Problem: {p}", "statement") for p in al["problems"]]
    s.blocks.append(Fig("fig-memory", fg.memory_figure(d, u.memory_scale, u.memory),
                        f"Synaptic memory per layer ({u.memory}), with the cores each layer needs"))
    if "binary_weights" in d:
        bw = d["binary_weights"]
        r1, rs = bw["ratio_8bit_over_1bit"], bw["ratio_8bit_over_stored"]
        s.blocks += [Para("**Binary (±1) synapses.**"), Table(*tb.binary_weights_table(bw, u))]
        if r1 and rs:
            s.blocks.append(Para(f"{bw['weight_bits']}-bit weights need {r1:.2f}x the memory of 1-bit weights and "
                                 f"{rs:.2f}x the memory the target stores for ±1 weights{tcite('synapse_formats.binary_weight_bits', bw['binary_weight_bits_stored'])}."))
        s.blocks.append(Para(bw["statement"], "note"))
    return s


def _activity(d: dict) -> Section:
    st, sp = d["summary"]["synaptic_ops_per_sample"], d["summary"]["spikes_per_sample"]
    return Section("Activity per inference", [
        Table(*tb.activity_table(d)),
        Para(f"Over the {d['samples']} samples: spikes {tb.count(sp['min'])}..{tb.count(sp['max'])} (mean "
             f"{tb.count(sp['mean'])}), synaptic ops {tb.count(st['min'])}..{tb.count(st['max'])} (mean "
             f"{tb.count(st['mean'])}). {d['activity']['note']}", "note"),
        Fig("fig-ops", fg.ops_figure(d), "SNN synaptic operations and ANN multiply-accumulates per layer")])


def _timing(d: dict) -> Section:
    t = d["timing"]
    return Section("Timing", [Items([
        f"latency: {t['latency_steps']} time steps per sample ({t['mode']})",
        f"pipelined throughput: one sample every {tb.count(t['throughput_steps'])} steps",
        f"time per step: {t['step_duration_note']}"])])


def _counters(d: dict) -> Section:
    return Section("What the counts mean", [Items([f"`{k}`: {v}" for k, v in d["counters"].items()])])


def _assumptions(d: dict) -> Section:
    return Section("Assumptions", [Items(list(d["assumptions"]))])
