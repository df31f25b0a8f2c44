"""The cost report as Markdown (`neurodeploy report --format md`)."""
from __future__ import annotations

from . import tables as tb


def md_table(headers: list, rows: list) -> list[str]:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return out


def to_markdown(d: dict) -> str:
    s, t, e = d["summary"], d["timing"], d["energy"]
    mm, al = d["memory_model"], d["allocation"]
    lines = [f"# {tb.title(d)}", "",
             f"neurodeploy {d['neurodeploy_version']}; model sha256 `{d['network']['model_sha256']}`; "
             f"target: {d['network']['target_description']}.",
             f"{d['samples']} samples simulated bit-exactly; activity and energy are means per inference "
             f"(one sample).", "",
             "## Summary", ""]
    lines += md_table(*tb.summary_table(d))
    acc = tb.accuracy_table(d)
    if acc:
        lines += ["", "Accuracy on the given labels:", ""] + md_table(*acc)
    lines += ["", "## Energy per inference", ""]
    if e["statement"]:
        lines += [f"**Target {e['target']}:** {e['statement']}", ""]
    lines += ["Each figure below comes from one named model and only that model; it is not a figure for "
              f"{e['target']} unless its role says `target`.", ""]
    lines += md_table(*tb.energy_models_table(d))
    for m in e["models"]:
        lines += ["", f"### `{m['name']}`: {m['title']}", "",
                  f"Chip {m['chip']} ({m['role']}); {m['status']}. Source: {m['source']}.", ""]
        lines += md_table(*tb.energy_price_table(m)) + [""]
        lines += md_table(*tb.energy_layer_table(d, m))
    lines += ["", "## Structure per layer", ""]
    lines += md_table(*tb.structure_table(d))
    lines += ["", f"Synaptic memory: {mm['bits_per_synapse']} bits per synapse ({mm['weight_bits']}-bit weight "
                  f"mantissa from the target + {mm['index_bits']} index bits); {mm['format']}."]
    lines += [tb.cores_sentence(al)]
    lines += [f"- problem: {p}" for p in al["problems"]]
    lines += ["", "## Activity per inference", ""]
    lines += md_table(*tb.activity_table(d))
    st = s["synaptic_ops_per_sample"]
    sp = s["spikes_per_sample"]
    lines += ["", f"Over the {d['samples']} samples: spikes {tb.count(sp['min'])}..{tb.count(sp['max'])} "
                  f"(mean {tb.count(sp['mean'])}), synaptic ops {tb.count(st['min'])}..{tb.count(st['max'])} "
                  f"(mean {tb.count(st['mean'])}). {d['activity']['note']}",
              "", "## Timing", "",
              f"- latency: {t['latency_steps']} time steps per sample ({t['mode']})",
              f"- pipelined throughput: one sample every {tb.count(t['throughput_steps'])} steps",
              f"- time per step: {t['step_duration_note']}",
              "", "## What the counts mean", ""]
    lines += [f"- `{k}`: {v}" for k, v in d["counters"].items()]
    if "binary_weights" in d:
        lines += ["", "## Binary (±1) synapses", ""] + binary_weights_lines(d["binary_weights"])
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in d["assumptions"]]
    return "\n".join(lines) + "\n"


def binary_weights_lines(bw: dict) -> list[str]:
    """Synaptic memory of the ±1 layers at 1 bit, as the target stores them, and at the weight mantissa."""
    w, s = bw["weight_bits"], bw["binary_weight_bits_stored"]
    head = ["layer", "binary", "synapses", "bytes at 1 bit", f"bytes as stored ({s} bit)", f"bytes at {w} bit",
            "unique weights", "unique bytes 1 / stored / 8 bit"]
    rows = [[r["name"], "yes" if r["binary"] else "no", r["synapses"], r["bytes_1bit"], r["bytes_stored"],
             r["bytes_8bit"], r["unique_weights"],
             f"{r['unique_bytes_1bit']} / {r['unique_bytes_stored']} / {r['unique_bytes_8bit']}"] for r in bw["layers"]]
    t = bw["totals"]
    rows.append(["total", "", t["synapses"], t["bytes_1bit"], t["bytes_stored"], t["bytes_8bit"], t["unique_weights"],
                 f"{t['unique_bytes_1bit']} / {t['unique_bytes_stored']} / {t['unique_bytes_8bit']}"])
    r1, rs = bw["ratio_8bit_over_1bit"], bw["ratio_8bit_over_stored"]
    out = md_table(head, rows)
    out += ["", f"{w}-bit weights need {r1:.2f}x the memory of 1-bit weights and {rs:.2f}x the memory the "
                f"target stores for ±1 weights." if r1 and rs else "", "", bw["statement"]]
    return out
