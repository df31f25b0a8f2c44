"""Synaptic memory of networks with binary (±1) synapses (reverb's `meta["binary_layers"]`), at the
widths a reader compares: 1 bit, as the target stores a ±1 weight, and the weight mantissa."""
from __future__ import annotations

import math

import numpy as np

from ..ir import synapses as syn
from ..ir.spiking import SpikingGraph
from ..target.allocation import branch_connectivity, chip_limits


BINARY_STATEMENT = (
    "'1 bit' is the information content of a ±1 weight (the ReverB paper's count); 'stored' uses the bits the "
    "target file says the chip stores per ±1 weight (synapse_formats.binary_weight_bits); '8 bit' is the same "
    "synapses at the target's weight mantissa. Index bits per synapse and per-axon headers of sparse formats are "
    "not counted unless --index-bits is given; convolutional layers are counted as explicit synapses (as everywhere "
    "in this report), their unique weights apart.")


def binary_weight_memory(net: SpikingGraph, index_bits: int = 0, branches: dict | None = None) -> dict:
    """Synaptic memory of a network with ±1 layers (meta["binary_layers"]), by layer and in total, at three
    weight widths: 1 bit (information content), as the target stores a ±1 weight
    (`synapse_formats.binary_weight_bits` of the target file, Loihi 2: 2 bits, see BINARY_STATEMENT), and
    the target's weight mantissa (8 bits on Loihi 2) for every layer.  Non-binary layers, and the
    real-valued branches of binary layers (meta["real_branches"]: residual shortcuts), count at the
    weight mantissa in all three.  Bytes are ceil(bits / 8) per layer; `index_bits` is added per synapse."""
    lim = chip_limits(net)
    branches = branches if branches is not None else branch_connectivity(net)
    binary = set(net.meta.get("binary_layers", ()))
    real = net.meta.get("real_branches", {})      # {layer: [branch index]}: real-valued branches of a binary layer
    stored_bits = lim.binary_weight_bits or lim.weight_bits
    rows = []
    for layer in net.neuron_layers():
        is_bin = layer.name in binary
        # per branch: a residual layer's ±1 conv branch counts as binary, its real shortcut at the mantissa width
        bin_of = [is_bin and i not in real.get(layer.name, ()) for i in range(len(layer.branches))]
        syn_n = [int(bi.conn.fan_in.sum()) for bi in branches[layer.name]]
        uniq_n = [int(np.size(syn.weighted_op(b.ops).weight)) for b in layer.branches]
        synapses, unique = int(sum(syn_n)), int(sum(uniq_n))
        row = {"name": layer.name, "binary": is_bin, "synapses": synapses, "unique_weights": unique}
        if layer.name in real:
            row["real_synapses"] = int(sum(n for n, b in zip(syn_n, bin_of) if not b))
        for k in ("1bit", "stored", "8bit"):
            bits = [lim.weight_bits if not b or k == "8bit" else (1 if k == "1bit" else stored_bits) for b in bin_of]
            row[f"bytes_{k}"] = math.ceil(sum(n * (w + int(index_bits)) for n, w in zip(syn_n, bits)) / 8)
            row[f"unique_bytes_{k}"] = math.ceil(sum(n * w for n, w in zip(uniq_n, bits)) / 8)
        rows.append(row)
    tot = {k: sum(r[k] for r in rows) for k in ("synapses", "unique_weights", "bytes_1bit", "bytes_stored",
                                                "bytes_8bit", "unique_bytes_1bit", "unique_bytes_stored",
                                                "unique_bytes_8bit")}
    ratio = (lambda a, b: float(a) / float(b) if b else None)
    spec = net.meta.get("target_spec") or {}
    if not spec:
        from ..target import load_target
        spec = load_target(net.target).to_dict()
    note = spec.get("synapse_formats", {}).get("binary_note", "the target file does not say how it stores ±1 weights")
    return {"binary_layers": sorted(binary), "weight_bits": lim.weight_bits, "binary_weight_bits_stored": stored_bits,
            "index_bits": int(index_bits), "layers": rows, "totals": tot,
            "ratio_8bit_over_stored": ratio(tot["bytes_8bit"], tot["bytes_stored"]),
            "ratio_8bit_over_1bit": ratio(tot["bytes_8bit"], tot["bytes_1bit"]),
            "statement": f"{BINARY_STATEMENT} Target {lim.name}: {note}"}
