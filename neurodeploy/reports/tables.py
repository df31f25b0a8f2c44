"""The cost report's tables as plain (headers, rows) lists, shared by the Markdown and HTML views."""
from __future__ import annotations


def energy(pj) -> str:
    """pJ with an SI prefix, 3 significant digits: 1506758 -> '1.51 uJ', 999.7 -> '1 nJ'."""
    if pj is None:
        return "-"
    if pj == 0:
        return "0"
    for unit, scale in (("pJ", 1.0), ("nJ", 1e3), ("uJ", 1e6), ("mJ", 1e9), ("J", 1e12)):
        v = float(f"{pj / scale:.3g}")
        if abs(v) < 1000 or unit == "J":
            return f"{v:g} {unit}"
    raise AssertionError


def count(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def nbytes(b) -> str:
    if b is None:
        return "-"
    if b >= 1 << 20:
        return f"{b:,} ({b / (1 << 20):.2f} MiB)"
    if b >= 1 << 10:
        return f"{b:,} ({b / (1 << 10):.1f} KiB)"
    return f"{b:,}"


def bound(text: str, s: dict) -> str:
    """A memory or core figure, as "at most ..." where the report's counts are upper bounds."""
    return f"at most {text}" if s.get("upper_bound") else text


def cores_cell(s: dict) -> str:
    """The summary's cores: '298 (3 chips)', 'at most ...' where they are upper bounds."""
    return bound(f"{s['cores']} ({s['chips']} chip{'s' if s['chips'] != 1 else ''})", s)


def cores_sentence(al: dict) -> str:
    """The allocation in one sentence (the Markdown and HTML reports), with why its counts are upper
    bounds where they are."""
    if al["unlimited"]:
        text = "Cores: the target sets no per-core limits; each layer counts as one core."
    else:
        text = (f"Cores: {al['method']}; limits {count(al['neurons_per_core'])} neurons and "
                f"{nbytes(al['synaptic_memory_bytes_per_core'])} bytes of synaptic memory per core, "
                f"{count(al['cores_per_chip'])} cores per chip: {al['cores']} cores on {al['chips']} "
                f"chip{'s' if al['chips'] != 1 else ''}, {'fits' if al['fits_target'] else 'does NOT fit'}.")
    if al.get("upper_bound"):
        text += f" Synaptic memory, cores and chips are upper bounds: {al['upper_bound_reason']}."
    return text


def percent(v, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v * 100:+.2f} pp" if signed else f"{v * 100:.2f}%"


def title(d: dict) -> str:
    n = d["network"]
    return f"Cost report: {n['model'] or '?'} ({n['scheme']} on {n['target']})"


def energy_cell(d: dict) -> str:
    """What the compare row says about energy: the target's own figure, or its statement."""
    own = [m for m in d["energy"]["models"] if m["role"] == "target"]
    if own:
        return "; ".join(f"{energy(m['snn']['pj'])} ({m['name']})" for m in own)
    statements = d["energy"]["statements"]
    return statements[0]["status"] if statements else "no model for this chip"


def summary_table(d: dict):
    s = d["summary"]
    a = s["accuracy"] or {}
    delta = a.get("delta_snn_vs_float_ann")
    delta_ref = "float"
    if delta is None:
        delta, delta_ref = a.get("delta_snn_vs_quantised_ann"), "quantised"
    headers = ["scheme", "target", "parameters", "accuracy (SNN)", f"delta vs ANN ({delta_ref})" if a else "delta vs ANN",
               "latency (steps)", "throughput (steps/sample)", "energy / inference (target)",
               "synaptic memory (B)", "cores", "fits"]
    rows = [[s["scheme"], s["target"], count(s["parameters"]), percent(a.get("snn")), percent(delta, True),
             str(s["latency_steps"]), count(s["throughput_steps"]), energy_cell(d),
             bound(nbytes(s["synaptic_memory_bytes"]), s), cores_cell(s),
             "yes" if s["fits_target"] else "NO"]]
    return headers, rows


def accuracy_table(d: dict):
    a = d["summary"]["accuracy"]
    if not a:
        return None
    headers = ["float ANN", "quantised ANN", "SNN", "SNN - float ANN", "SNN - quantised ANN"]
    return headers, [[percent(a["float_ann"]), percent(a["quantised_ann"]), percent(a["snn"]),
                      percent(a["delta_snn_vs_float_ann"], True), percent(a["delta_snn_vs_quantised_ann"], True)]]


def structure_table(d: dict):
    headers = ["layer", "kind", "shape", "neurons", "T", "emits in steps (from 1)", "active steps", "synapses in",
               "unique weights", "synaptic memory (B)", "cores"]
    rows = []
    for l in d["layers"]:
        w = l["emit_window"]
        rows.append([l["name"] + ("" if l["on_chip"] else " (host)"), l["kind"], "x".join(map(str, l["shape"])),
                     count(l["neurons"]), count(l["time_steps"]), "-" if w is None else f"{w[0] + 1}-{w[1]}",
                     count(l["active_steps"]) if l["on_chip"] else "-", count(l["synapses"]),
                     count(l["unique_weights"]), nbytes(l["synaptic_memory_bytes"]),
                     count(l["cores"]) if l["on_chip"] else "-"])
    t = d["totals"]
    rows.append(["**total**", "", "", f"{count(t['neurons'])} (+{count(t['input_neurons'])} input)", "",
                 "", "", count(t["synapses"]), count(t["unique_weights"]), nbytes(t["synaptic_memory_bytes"]),
                 count(t["cores"])])
    return headers, rows


def activity_table(d: dict):
    headers = ["layer", "spikes sent", "spikes / neuron", "spike messages", "synaptic ops",
               "neuron updates active / spiking / idle", "ANN MACs", "ANN pool ops"]
    rows = []

    def upd(u):
        return f"{count(u['active'])} / {count(u['spiking'])} / {count(u['inactive'])}"

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


def energy_models_table(d: dict):
    headers = ["model", "chip", "role", "status", "SNN / inference", "ANN / inference", "not counted (SNN; ANN)"]
    rows = []
    for m in d["energy"]["models"]:
        nc = "; ".join(", ".join(m[side]["not_counted"]) or "-" for side in ("snn", "ann"))
        rows.append([f"`{m['name']}`", m["chip"], m["role"], m["status"], energy(m["snn"]["pj"]),
                     energy(m["ann"]["pj"]), nc])
    return headers, rows


def energy_layer_table(d: dict, model: dict):
    headers = ["layer", "SNN", "ANN"]
    rows = [[l["name"], energy(l["energy_pj"][model["name"]]["snn"]), energy(l["energy_pj"][model["name"]]["ann"])]
            for l in d["layers"]]
    rows.append(["**total**", energy(model["snn"]["pj"]), energy(model["ann"]["pj"])])
    return headers, rows


def energy_price_table(model: dict):
    """The model's own per-op figures (pJ) and what each contributes per inference."""
    headers = ["side", "operation", "pJ each", "pJ per inference"]
    rows = []
    for side in ("snn", "ann"):
        for op, e in model[f"{side}_energy_pj"].items():
            rows.append([side.upper(), op, f"{e:g}", energy(model[side]["by_op_pj"].get(op))])
    return headers, rows
