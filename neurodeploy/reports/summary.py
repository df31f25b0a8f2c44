"""A compiled network at a glance: one row per layer (Markdown and dict)."""
from __future__ import annotations

import numpy as np

from ..ir import neurons as nrn
from ..ir import synapses as syn
from ..ir.spiking import SpikingGraph


def layer_rows(net: SpikingGraph) -> list[dict]:
    q = net.meta.get("quantisation", {})
    rows = []
    for layer in net.layers:
        n = layer.neuron
        row = {"layer": layer.name, "kind": type(n).__name__, "shape": list(layer.shape),
               "neurons": int(np.prod(layer.shape)),
               "time_steps": getattr(n, "n_steps", None),
               "code_max": getattr(n, "code_max", None),
               "v_th_mant": _scalar_or_range(getattr(n, "v_th_mant", None)),
               "weights": 0, "weight_exp": None, "weight_rel_error": None,
               "sources": [b.source for b in getattr(layer, "branches", [])]}
        for b in getattr(layer, "branches", []):
            row["weights"] += int(np.size(syn.weighted_op(b.ops).weight))
            row["weight_exp"] = b.weight_exp
        if layer.name in q:
            row["weight_rel_error"] = q[layer.name]["weight_rel_error"]
        if isinstance(n, nrn.Readout):
            row["output_scale"] = n.output_scale
        rows.append(row)
    return rows


def _scalar_or_range(v):
    """A per-channel integer array (reverb thresholds) as "min..max"; scalars unchanged."""
    if v is None or np.ndim(v) == 0:
        return v
    a = np.asarray(v)
    return f"{int(a.min())}..{int(a.max())}" if a.size and a.min() != a.max() else (int(a.flat[0]) if a.size else None)


def summary_markdown(net: SpikingGraph) -> str:
    rows = layer_rows(net)
    lines = [f"# Compiled network: {net.meta.get('model', {}).get('file', '?')}",
             "",
             f"- scheme: `{net.scheme}`, target: `{net.target}`, neurodeploy {net.meta.get('neurodeploy_version')}",
             f"- latency: {net.meta.get('latency_steps')} time steps per sample; "
             f"pipelined throughput: one sample every {net.meta.get('throughput_steps')} steps",
             *_chip_schedule(net),
             *_scheme_lines(net),
             f"- model sha256: `{net.meta.get('model', {}).get('sha256', '?')}`",
             "",
             "| layer | kind | shape | neurons | T | Q | D (v_th_mant) | weight_exp | weight rel. error | sources |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = "" if r["weight_rel_error"] is None else f"{r['weight_rel_error']:.2e}"
        lines.append(f"| {r['layer']} | {r['kind']} | {tuple(r['shape'])} | {r['neurons']} | "
                     f"{r['time_steps'] or ''} | {r['code_max'] or ''} | {r['v_th_mant'] or ''} | "
                     f"{'' if r['weight_exp'] is None else r['weight_exp']} | {err} | {', '.join(r['sources'])} |")
    return "\n".join(lines) + "\n"


def _scheme_lines(net: SpikingGraph) -> list[str]:
    """What the scheme chose that a reader should know: the sws state bound (a calibrated one
    can overflow on inputs unlike the calibration data), reverb's payload widths, compile notes."""
    lines = []
    sws = net.meta.get("sws") or {}
    if sws.get("state_bound"):
        how = ("static: no input can overflow the state" if sws["state_bound"] == "static" else
               f"calibrated on {sws.get('calibration_samples')} samples x margin {sws.get('state_margin')}: "
               "inputs unlike them can overflow (verify counts it; --state-bound static rules it out)")
        lines.append(f"- TSA state bound: {how}")
    if net.meta.get("payload_bits"):
        used = {k: v["payload_bits_used"] for k, v in net.meta.get("quantisation", {}).items()
                if "payload_bits_used" in v}
        lines.append(f"- graded-spike payloads: {net.meta['payload_bits']} bits asked; used "
                     + ", ".join(f"{k} {v}" for k, v in used.items()))
    lines += [f"- note: {n}" for n in net.meta.get("notes", [])]
    from ..frontends.nir.report import summary_lines as nir_lines      # a network compiled from NIR
    return lines + nir_lines(net.meta.get("nir"))


def _chip_schedule(net: SpikingGraph) -> list[str]:
    """The Loihi/Lava schedule, where the Lava back-end maps the network: every synapse stage
    adds one step of delay, so one sample takes longer than the layers' time steps add up to."""
    from ..backends.lava.mapping import plan_network
    from ..errors import NeurodeployError
    try:
        period = plan_network(net).period
    except NeurodeployError:      # a scheme or op the Lava back-end does not map: say nothing
        return []
    return [f"- on Loihi 2 via the Lava back-end (1-step synaptic delays, layer by layer): one sample every "
            f"{period} steps"]
