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

import hashlib
from pathlib import Path

import numpy as np
import torch

from ...errors import NeurodeployError

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


def _ours(graph, x: np.ndarray, n_steps: int) -> tuple[dict, np.ndarray]:
    """Per layer what it sent each step (N, n_steps, *shape), and the readout trace (N, n_steps, outputs)
    (CUBA: v; SDNN: sigma + bias)."""
    from ...sim import engine
    if graph.scheme == "cuba":
        from ...sim import cuba
        tr = cuba.trace(graph, x)
        return dict(tr.spikes), tr.readout_v
    from ...sim import sdnn
    prep = engine.prepare(graph)
    steps: list = []
    r = sdnn.run_sdnn(prep, x, n_steps=n_steps, trace=steps)
    sent = {name: torch.stack([s[name] for s in steps], 1).numpy() for name in steps[0] if name != graph.input.name}
    return sent, r.output_state.numpy().reshape(len(x), 1, -1)


def verify_netx(graph, path: str | Path, x: np.ndarray, y: np.ndarray | None = None, progress: bool = False) -> dict:
    from ...backends.netx_run import run_netx
    from ...progress import progress_bar
    from ...sim import engine
    path = Path(path)
    meta = graph.meta.get("netx")
    if meta is None or graph.meta.get("model", {}).get("sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
        raise NeurodeployError("the compiled network was not imported from this NetX file", str(path),
                               "verify the directory `neurodeploy compile FILE.net` wrote, against that file")
    if graph.scheme == "cuba":
        n_steps = int(graph.input.neuron.n_steps)
    else:
        from ...sim.sdnn import settle_steps
        n_steps = settle_steps(graph)
    blocks = block_of(path)
    sent, readout = _ours(graph, x, n_steps)
    layers = {name: {"mismatches": 0, "compared": 0} for name in meta["layers"]}
    out_equal = 0
    lava_out = []
    with progress_bar(total=len(x), desc="verify (Lava)", unit="sample", enabled=progress) as bar:
        for i in range(len(x)):
            run = run_netx(graph, path, x[i:i + 1], n_steps)
            for name, idx in meta["layers"].items():
                ref = run.sent[blocks[idx]][0]
                if name == graph.output.name:
                    if graph.scheme == "cuba":
                        ours, ref = readout[i], run.readout_v[0]
                        if name in sent:                     # a spiking output layer: its spikes too
                            ours = np.concatenate([ours.reshape(-1), sent[name][i].reshape(-1)])
                            ref = np.concatenate([ref.reshape(-1), run.sent[blocks[idx]][0].reshape(-1)])
                    else:                                    # Sigma sends sigma; the host adds the bias
                        ours = readout[i, -1]
                        ref = ref[-1].reshape(-1) + np.asarray(graph.output.bias, dtype=np.int64).reshape(-1)
                else:
                    ours = sent[name][i]
                bad = int(np.count_nonzero(np.asarray(ours).reshape(-1) != np.asarray(ref).reshape(-1)))
                layers[name]["mismatches"] += bad
                layers[name]["compared"] += int(np.size(ours))
                if name == graph.output.name:
                    out_equal += bad == 0
            lava_out.append(run)
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
