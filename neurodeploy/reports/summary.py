"""A compiled network at a glance: one row per layer (Markdown and dict)."""
from __future__ import annotations

import numpy as np

from ..errors import NeurodeployError
from ..ir import synapses as syn
from ..ir.spiking import SpikingGraph
from ..registry import get_scheme
from ..target.allocation import UPPER_BOUND_REASON


def layer_rows(net: SpikingGraph) -> list[dict]:
    q = net.meta.get("quantisation", {})
    chip = {r["layer"]: r for r in _loihi2(net)["layers"]}
    cores = (net.meta.get("allocation") or {}).get("cores", {})
    rows = []
    for layer in net.layers:
        n = layer.neuron
        row = {"layer": layer.name, "kind": type(n).__name__, "shape": list(layer.shape),
               "loihi2": chip[layer.name]["where"] if layer.name in chip else None,
               "neurons": int(np.prod(layer.shape)), "cores": cores.get(layer.name),
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
        if n.is_readout:
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
             *_cores(net),
             *_chip_schedule(net),
             *_scheme_lines(net),
             *[f"- front end: {note}" for note in net.meta.get("front_end_notes", [])],
             f"- Loihi 2: {_loihi2(net)['statement'] or 'unknown'}",
             f"- model sha256: `{net.meta.get('model', {}).get('sha256', '?')}`",
             "",
             "| layer | kind | Loihi 2 | shape | neurons | cores | T | Q | D (v_th_mant) | weight_exp | "
             "weight rel. error | sources |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = "" if r["weight_rel_error"] is None else f"{r['weight_rel_error']:.2e}"
        lines.append(f"| {r['layer']} | {r['kind']} | {r['loihi2'] or '?'} | {tuple(r['shape'])} | {r['neurons']} | "
                     f"{'' if r['cores'] is None else r['cores']} | "
                     f"{r['time_steps'] or ''} | {r['code_max'] or ''} | {r['v_th_mant'] or ''} | "
                     f"{'' if r['weight_exp'] is None else r['weight_exp']} | {err} | {', '.join(r['sources'])} |")
    lines += ["", "Loihi 2 column: stock = a stock neuron model reachable through public software (Lava, Lava-DL "
                  "NetX); microcode = a custom neuron program Loihi 2 would run as microcode (no public software); "
                  "host = runs on the host (input encoder, host-side readout)."]
    return "\n".join(lines) + "\n"


def _loihi2(net: SpikingGraph) -> dict:
    """Per layer and for the network: stock neurons or microcode (`reports.deploy.loihi2`); an empty
    answer for a graph of a scheme this neurodeploy does not have."""
    from .deploy import loihi2
    try:
        return loihi2(net)
    except NeurodeployError:
        return {"stock_only": None, "layers": [], "statement": "", "route": None}


def _scheme_lines(net: SpikingGraph) -> list[str]:
    """What the scheme chose that a reader should know (`Scheme.summary_lines`: the sws state bound,
    reverb's payload widths), then the compile notes."""
    try:
        lines = get_scheme(net.scheme).summary_lines(net)
    except NeurodeployError:      # a graph of a scheme this neurodeploy does not have
        lines = []
    return lines + [f"- note: {n}" for n in net.meta.get("notes", [])]


def _cores(net: SpikingGraph) -> list[str]:
    """The compiler's core allocation (meta["allocation"]: per layer in the table), the chips it
    needs, why it is an upper bound where it is, and how sure the target's per-core limits are."""
    alloc = net.meta.get("allocation")
    per_chip = net.meta.get("target_spec", {}).get("chip", {}).get("cores_per_chip")
    if not alloc or not per_chip:
        return []
    total = int(alloc["total_cores"])
    chips = alloc.get("chips", -(-total // per_chip))
    given = alloc.get("chips_available")
    line = f"- cores: {total} on {chips} chip(s) of {per_chip} cores"
    if alloc.get("upper_bound"):
        line += f" -- upper bounds: {UPPER_BOUND_REASON}"
    line += "; per layer in the table's cores column"
    if given == "auto":
        line += "; chips: as many as the network needs (--chips auto)"
    elif given is not None:
        line += f"; {given} chip(s) available"
    return [line, *_limit_sources(net)]


def _limit_sources(net: SpikingGraph) -> list[str]:
    """The target's per-core limits with how sure each is (its file's [chip_sources]: a public fact
    or an estimate), where the target file says."""
    spec = net.meta.get("target_spec", {})
    sources, chip = spec.get("chip_sources") or {}, spec.get("chip", {})
    if not sources:
        return []
    names = {"cores_per_chip": "cores per chip", "neurons_per_core": "neurons per core",
             "synaptic_memory_bytes_per_core": "bytes of synaptic memory per core"}
    return ["- limits of the allocation: " + "; ".join(
        f"{chip[k]} {what} ({sources[k]})" for k, what in names.items() if k in sources and k in chip)]


def _chip_schedule(net: SpikingGraph) -> list[str]:
    """The Loihi/Lava schedule, where the scheme's Lava back-end plans one (`Scheme.lava_period`):
    every synapse stage adds one step of delay, so one sample takes longer than the layers' time
    steps add up to."""
    try:
        period = get_scheme(net.scheme).lava_period(net)
    except NeurodeployError:      # an op the Lava back-end does not map: say nothing
        return []
    if period is None:
        return []
    return [f"- on Loihi 2 via the Lava back-end (1-step synaptic delays, layer by layer): one sample every "
            f"{period} steps"]
