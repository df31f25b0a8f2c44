"""`verify` of an imported NetX network: our simulator against the NetX file run by Lava itself.

A NetX file has no float model to compare with: the file *is* the fixed-point network.  What
can go wrong is our reading of it, so verify runs the file in lava-dl's
`netx.hdf5.Network` (Lava's Loihi2SimCfg, fixed_pt: the stock Loihi 2 process models) on the
same inputs, fed as Lava-DL's own tests feed such a file (`backends.netx_run`), and compares,
layer by layer and step by step, what every block sends (spikes, sigma-delta payloads) and
the readout (CUBA: v after every step; SDNN: the settled sigma).  The guarantee is equality:
0 mismatches everywhere.  With labels it also reports the accuracy of the outputs.
Lava runs a few samples per second at best (PilotNet: about a minute per sample): verify a
handful of samples, the simulator then runs the rest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import NeurodeployError
from ...fsutil import file_sha256
from ...registry import get_scheme

REFERENCE = "lava-dl netx.hdf5.Network run by Lava (Loihi2SimCfg, fixed_pt), the NetX file itself"


def block_of(path) -> dict:
    """NetX layer index -> netx block index (net.layers), as netx creates blocks."""
    from .reader import read_netx
    out, b = {}, 0
    for l in read_netx(path).layers:
        if l.type in ("conv", "dense") or (l.type == "input" and l.neuron is not None):
            out[l.index] = b
            b += 1
    return out


def compare_with_lava(graph, path, x: np.ndarray, run) -> tuple[dict, int]:
    """Our simulator against `run` (`backends.netx_run.run_netx(graph, path, x, ...)`): per layer
    {"mismatches", "compared"} over every step of every sample, and the samples whose readout
    equals Lava's."""
    fam = get_scheme(graph.scheme).netx_files()
    blocks = block_of(path)
    sent, readout = fam.trace(graph, x, run.sent[0].shape[1])
    out = graph.output.name
    layers = {name: {"mismatches": 0, "compared": 0} for name in graph.meta["netx"]["layers"]}
    out_equal = 0
    for i in range(len(x)):
        for name, idx in graph.meta["netx"]["layers"].items():
            ref = run.sent[blocks[idx]][i]
            if name == out:
                lava_v = None if run.readout_v is None else run.readout_v[i]
                ours, ref = fam.readout_values(graph, readout[i], sent[name][i] if name in sent else None, ref, lava_v)
            else:
                ours = sent[name][i]
            bad = int(np.count_nonzero(np.asarray(ours).reshape(-1) != np.asarray(ref).reshape(-1)))
            layers[name]["mismatches"] += bad
            layers[name]["compared"] += int(np.size(ours))
            if name == out:
                out_equal += bad == 0
    return layers, out_equal


def verify_netx(graph, path: str | Path, x: np.ndarray, y: np.ndarray | None = None, progress: bool = False) -> dict:
    from ...backends.netx_run import run_netx
    from ...progress import progress_bar
    from ...sim import engine
    path = Path(path)
    meta = graph.meta.get("netx")
    if meta is None or graph.meta.get("model", {}).get("sha256") != file_sha256(path):
        raise NeurodeployError("the compiled network was not imported from this NetX file", str(path),
                               "verify the directory `neurodeploy compile FILE.net` wrote, against that file")
    n_steps = get_scheme(graph.scheme).netx_files().run_steps(graph)
    layers = {name: {"mismatches": 0, "compared": 0} for name in meta["layers"]}
    out_equal = 0
    with progress_bar(total=len(x), desc="verify (Lava)", unit="sample", enabled=progress) as bar:
        for i in range(len(x)):
            run = run_netx(graph, path, x[i:i + 1], n_steps)
            one, equal = compare_with_lava(graph, path, x[i:i + 1], run)
            for name, counts in one.items():
                for key, value in counts.items():
                    layers[name][key] += value
            out_equal += equal
            bar.update(1)
    result = {"scheme": graph.scheme, "model": path.name, "reference": REFERENCE, "netx": True,
              "samples": int(len(x)), "steps": n_steps, "layers": layers,
              "outputs_equal": float(out_equal / len(x)),
              "guarantee": "bit-exact: every layer's spikes / payloads and the readout equal Lava's, step by step",
              "guarantee_holds": all(v["mismatches"] == 0 for v in layers.values()), "accuracy": {}}
    if y is not None:
        outs, _ = engine.simulate(graph, x)
        result["accuracy"]["snn"] = float(np.mean(outs.argmax(1) == np.asarray(y)))
    return result


def verify_text(r: dict) -> str:
    lines = [f"verify {r['model']} ({r['scheme']}, imported NetX): {r['samples']} samples x {r['steps']} steps",
             f"reference: {r['reference']}",
             "| layer | mismatches | compared values |", "|---|---|---|"]
    lines += [f"| {k} | {v['mismatches']} | {v['compared']} |" for k, v in r["layers"].items()]
    lines.append(f"outputs equal to Lava's: {100 * r['outputs_equal']:.1f}% of samples")
    if "snn" in r["accuracy"]:
        lines.append(f"accuracy: {100 * r['accuracy']['snn']:.2f}%")
    lines.append(f"guarantee ({r['guarantee']}): {'holds' if r['guarantee_holds'] else 'VIOLATED'}")
    return "\n".join(lines)
