"""The compile summary's NIR section: the conventions used, what shape inference filled in,
and each neuron's decays with Loihi's rounding (`build.build_float_graph`'s report)."""
from __future__ import annotations


def _num(v, fmt: str = ".6g") -> str:
    return "" if v is None else format(v, fmt)


def summary_lines(report: dict | None) -> list[str]:
    """Markdown lines for a network compiled from NIR (none for other networks)."""
    if not report:
        return []
    c = report.get("conventions", {})
    lines = [f"- NIR conventions ({c.get('source')}): dt {c.get('dt')}, decay {c.get('decay')}, input gain "
             f"{c.get('input_gain')}, integrator gain {c.get('integrator_gain')}, current input "
             f"{c.get('current_input')}, fires on v {c.get('fire_on')} threshold, reset {c.get('reset')}"]
    lines += [f"- NIR shapes: {n}" for n in report.get("shape_notes", [])]
    lines += [f"- NIR note: {n}" for n in report.get("notes", [])]
    rows = report.get("neurons", {})
    if rows:
        lines += ["", "| NIR node | kind | beta | dv | beta on Loihi | tau_mem on Loihi | alpha | du | "
                      "alpha on Loihi | tau_syn on Loihi |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['kind']} | {_num(r['beta'])} | {r['dv']} | {_num(r['beta_loihi'])} | "
                         f"{_num(r['tau_mem_loihi'])} | {_num(r['alpha'])} | {r['du']} | "
                         f"{_num(r['alpha_loihi'])} | {_num(r['tau_syn_loihi'])} |")
        lines.append("")
    return lines
