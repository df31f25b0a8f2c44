"""The cost report's tables as plain (headers, rows) lists, shared by the Markdown and HTML views.

One unit per quantity in a report (`Units`): every energy figure in the unit its largest figure
needs, every memory figure likewise; the unit is said once, in the column header, and the cells
are plain numbers.  Energy prices of single operations are a quantity of their own (pJ each).
"""
from __future__ import annotations

from dataclasses import dataclass

from .figures import ENERGY_UNITS, MEMORY_UNITS, si_scale, significant


@dataclass(frozen=True)
class Units:
    energy_scale: float          # pJ per energy unit
    energy: str
    memory_scale: float          # bytes per memory unit
    memory: str

    def e(self, pj) -> str:
        return "-" if pj is None else significant(pj / self.energy_scale)

    def m(self, nbytes) -> str:
        if nbytes is None:
            return "-"
        if self.memory_scale == 1:
            return f"{int(nbytes):,}"
        return significant(nbytes / self.memory_scale)


def units_of(d: dict) -> Units:
    """The report's units: energy from its largest per-inference figure, memory from its largest
    per-layer or total synaptic memory (and the per-core limit it quotes)."""
    energies = [m[side]["pj"] for m in d["energy"]["models"] for side in ("snn", "ann")]
    es, eu = si_scale(energies, ENERGY_UNITS)
    sizes = [l["synaptic_memory_bytes"] for l in d["layers"]] + [d["totals"]["synaptic_memory_bytes"],
                                                                  d["allocation"]["synaptic_memory_bytes_per_core"]]
    ms, mu = si_scale(sizes, MEMORY_UNITS)
    return Units(es, eu, ms, mu)


def count(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def bound(text: str, s: dict) -> str:
    """A memory or core figure, as "at most ..." where the report's counts are upper bounds."""
    return f"at most {text}" if s.get("upper_bound") else text


def cores_cell(s: dict) -> str:
    """The summary's cores: '298 (3 chips)', 'at most ...' where they are upper bounds."""
    return bound(f"{s['cores']} ({s['chips']} chip{'s' if s['chips'] != 1 else ''})", s)


def percent(v, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v * 100:+.2f} pp" if signed else f"{v * 100:.2f}%"


def title(d: dict) -> str:
    n = d["network"]
    return f"{n['model'] or '?'}: {n['scheme']} on {n['target']}"


def energy_cell(d: dict, u: Units) -> str:
    """The summary's energy: the target's own figure, or its statement's status."""
    own = [m for m in d["energy"]["models"] if m["role"] == "target"]
    if own:
        return "; ".join(f"{u.e(m['snn']['pj'])} ({m['name']})" for m in own)
    statements = d["energy"]["statements"]
    return statements[0]["status"] if statements else "no model for this chip"


def summary_table(d: dict, u: Units):
    s = d["summary"]
    a = s["accuracy"] or {}
    headers = ["scheme", "target", "parameters", "accuracy (SNN)", "latency (steps)", "throughput (steps/sample)",
               f"energy / inference on the target ({u.energy})", f"synaptic memory ({u.memory})", "cores", "fits"]
    rows = [[s["scheme"], s["target"], count(s["parameters"]), percent(a.get("snn")), str(s["latency_steps"]),
             count(s["throughput_steps"]), energy_cell(d, u), bound(u.m(s["synaptic_memory_bytes"]), s),
             cores_cell(s), "yes" if s["fits_target"] else "NO"]]
    return headers, rows


def accuracy_table(d: dict):
    a = d["summary"]["accuracy"]
    if not a:
        return None
    headers = ["float ANN", "quantised ANN", "SNN", "SNN - float ANN", "SNN - quantised ANN"]
    return headers, [[percent(a["float_ann"]), percent(a["quantised_ann"]), percent(a["snn"]),
                      percent(a["delta_snn_vs_float_ann"], True), percent(a["delta_snn_vs_quantised_ann"], True)]]


def structure_table(d: dict, u: Units):
    headers = ["layer", "kind", "shape", "neurons", "T", "emits in steps (from 1)", "active steps", "synapses in",
               "unique weights", f"synaptic memory ({u.memory})", "cores"]
    rows = []
    for l in d["layers"]:
        w = l["emit_window"]
        rows.append([l["name"] + ("" if l["on_chip"] else " (host)"), l["kind"], "x".join(map(str, l["shape"])),
                     count(l["neurons"]), count(l["time_steps"]), "-" if w is None else f"{w[0] + 1}-{w[1]}",
                     count(l["active_steps"]) if l["on_chip"] else "-", count(l["synapses"]),
                     count(l["unique_weights"]), u.m(l["synaptic_memory_bytes"]),
                     count(l["cores"]) if l["on_chip"] else "-"])
    t = d["totals"]
    rows.append(["**total**", "", "", f"{count(t['neurons'])} (+{count(t['input_neurons'])} input)", "",
                 "", "", count(t["synapses"]), count(t["unique_weights"]), u.m(t["synaptic_memory_bytes"]),
                 count(t["cores"])])
    return headers, rows


def activity_table(d: dict):
    headers = ["layer", "spikes sent", "spikes / neuron", "spike messages", "synaptic ops",
               "neuron updates active / spiking / idle", "ANN MACs", "ANN pool ops"]
    rows = []

    def upd(v):
        return f"{count(v['active'])} / {count(v['spiking'])} / {count(v['inactive'])}"

    for l in d["layers"]:
        a = l["ann_ops"]
        rows.append([l["name"], count(l["spikes_per_sample"]), f"{l['spikes_per_neuron_per_sample']:.3f}",
                     count(l["spike_messages_per_sample"]), count(l["synaptic_ops_per_sample"]),
                     upd(l["neuron_updates_per_sample"]) if l["on_chip"] else "- (host)",
                     count(a["mac"]) if l["on_chip"] else "-",
                     count(a["pool_add"] + a["pool_compare"]) if l["on_chip"] else "-"])
    t = d["totals"]
    rows.append(["**total**", count(t["spikes_per_sample"]), "", count(t["spike_messages_per_sample"]),
                 count(t["synaptic_ops_per_sample"]), upd(t["neuron_updates_per_sample"]),
                 count(t["ann_ops"]["mac"]), count(t["ann_ops"]["pool_add"] + t["ann_ops"]["pool_compare"])])
    return headers, rows


def energy_models_table(d: dict, u: Units, cite):
    """`cite(model)` -> the footnote marker of the model's source."""
    headers = ["model", "chip", "role", "status", f"SNN / inference ({u.energy})", f"ANN / inference ({u.energy})",
               "not counted (SNN; ANN)"]
    rows = []
    for m in d["energy"]["models"]:
        nc = "; ".join(", ".join(m[side]["not_counted"]) or "-" for side in ("snn", "ann"))
        rows.append([f"`{m['name']}`{cite(m)}", m["chip"], m["role"], m["status"], u.e(m["snn"]["pj"]),
                     u.e(m["ann"]["pj"]), nc])
    return headers, rows


def energy_layer_table(d: dict, model: dict, u: Units):
    headers = ["layer", f"SNN ({u.energy})", f"ANN ({u.energy})"]
    rows = [[l["name"], u.e(l["energy_pj"][model["name"]]["snn"]), u.e(l["energy_pj"][model["name"]]["ann"])]
            for l in d["layers"]]
    rows.append(["**total**", u.e(model["snn"]["pj"]), u.e(model["ann"]["pj"])])
    return headers, rows


def energy_price_table(model: dict, u: Units, cite):
    """The model's own per-op figures (pJ each, `cite(model, side, op)` their footnote) and what each
    contributes per inference (the report's energy unit)."""
    headers = ["side", "operation", "pJ each", f"per inference ({u.energy})"]
    rows = []
    for side in ("snn", "ann"):
        for op, e in model[f"{side}_energy_pj"].items():
            rows.append([side.upper(), op, f"{e:g}{cite(model, side, op)}", u.e(model[side]["by_op_pj"].get(op))])
    return headers, rows


def binary_weights_table(bw: dict, u: Units):
    """Synaptic memory of the ±1 layers at 1 bit, as the target stores them, and at the weight mantissa."""
    w, s = bw["weight_bits"], bw["binary_weight_bits_stored"]
    head = ["layer", "binary", "synapses", f"at 1 bit ({u.memory})", f"as stored, {s} bit ({u.memory})",
            f"at {w} bit ({u.memory})", "unique weights", f"unique weights at 1 / {s} / {w} bit ({u.memory})"]

    def row(name, binary, r):
        return [name, binary, count(r["synapses"]), u.m(r["bytes_1bit"]), u.m(r["bytes_stored"]), u.m(r["bytes_8bit"]),
                count(r["unique_weights"]),
                f"{u.m(r['unique_bytes_1bit'])} / {u.m(r['unique_bytes_stored'])} / {u.m(r['unique_bytes_8bit'])}"]
    rows = [row(r["name"], "yes" if r["binary"] else "no", r) for r in bw["layers"]]
    rows.append(row("**total**", "", bw["totals"]))
    return head, rows
