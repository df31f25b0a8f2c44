#!/usr/bin/env python
"""ReverB-SNN evidence table (issue #7): binary weights + graded spikes vs a binary-spike LIF network.

    python benchmarks/bench_reverb.py [--quick] [--json out.json] [--timesteps 1 2 4]
                                      [--payload-bits 8 12 16 24] [--epochs 30] [--method rate_M]
                                      [--v-th 0.0] [--samples N]

For every T, trained and measured in this one run, on sklearn digits (75/25 split, seed 0):

* **ReverB, hidden conv binary** -- ``models/train_digits_reverb.py``'s CNN (Conv - BN - ReverB -
  pool - BinaryConv - BN - ReverB - pool - Linear): only the hidden convolution has ±1 weights;
* **ReverB, hidden conv + read-out binary**, **ReverB, all binary** -- the same with the read-out
  a plain ``BinaryLinear`` (α per input feature, as in the paper; the compiler folds it into
  per-neuron emission scales) and also the first convolution binary (the paper does not say
  which layers it binarises, digest §4.5);
* **ReverB residual (2 basic blocks)** -- ``build_model(residual=True)``: a stem conv, then two
  ``ReverBBasicBlock``s (binary 3x3 convs; identity and real-valued 1x1-conv shortcuts, 8-bit
  synapse branches on the chip), pooling, a real-valued read-out (no LIF counterpart);
* **LIF (cuba)** -- the digits LIF CNN of the same shape (``models/train_digits_lif.py``'s
  ``build_model``: binary spikes, real weights), trained with the same recipe, compiled with the
  ``cuba`` scheme (8-bit weights, Loihi's stock CUBA LIF).

Same recipe for all: ``neurodeploy.train.fit``, Adam lr 1e-2, cosine, weight decay 1e-4,
batch 64, ``--epochs`` epochs, ``--method`` (rate-based backprop by default), seed 0.

Columns:

* **float SNN** -- test accuracy of the trained float network (``nd.verify``'s ``float_snn``);
* **fixed-point** -- test accuracy of the compiled network in the bit-exact integer simulator,
  ReverB for every graded-spike payload width in ``--payload-bits`` (``nd.compile(...,
  scheme="reverb", payload_bits=B)``: α and BN folded, synapses ±1); LIF: ``scheme="cuba"``;
* **agreement** -- fraction of test samples where fixed point and float predict the same class;
* **synaptic memory** -- KiB of explicit synapses (convolutions unrolled) with the ±1 weights at
  1 bit (their information content, the paper's count), as the target stores them (Loihi 2:
  2 bits, Lava has no sign-only format; see ``targets/loihi2.toml``) and with 8-bit weights
  throughout; real-valued layers at 8 bits in all three (``neurodeploy.reports.costs``,
  ``binary_weights`` section); **unique weights** -- the same for the shared convolution kernels
  (the parameter count the paper's 45 MB -> 1.41 MB refers to);
* **synaptic ops / spikes per sample** -- from the simulator's activity (``cost_report``):
  a ReverB spike is a graded message (its payload is the membrane value), a LIF spike one bit.
  ReverB's counts are those of the largest payload width.

Everything uses one torch thread (the machine is shared; the tensors are tiny).
``--quick``: a smoke run (T in {1, 2}, 3 epochs, payload bits 8 and 16, 150 test samples; options
given explicitly still apply).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "models"))
import train_digits_reverb as tdr  # noqa: E402
from train_digits_lif import build_model as build_lif  # noqa: E402

import neurodeploy as nd  # noqa: E402
from neurodeploy.errors import NeurodeployError  # noqa: E402
from neurodeploy.reports.costs import cost_report  # noqa: E402
from neurodeploy.schemes.cuba import compile_lif  # noqa: E402
from neurodeploy.train.data import digits  # noqa: E402
from neurodeploy.train.fit import fit, predict  # noqa: E402

VARIANTS = {  # name -> (binary first conv, binary read-out, residual)
    "ReverB, hidden conv binary": (False, False, False),
    "ReverB, hidden conv + read-out binary": (False, True, False),
    "ReverB, all binary": (True, True, False),
    "ReverB residual (2 basic blocks)": (False, False, True),
}
FULL = {"timesteps": [1, 2, 4], "epochs": tdr.DEFAULTS["epochs"], "payload_bits": [8, 12, 16, 24], "samples": None}
QUICK = {"timesteps": [1, 2], "epochs": 3, "payload_bits": [8, 16], "samples": 150}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run, defaults " + json.dumps(QUICK))
    ap.add_argument("--timesteps", type=int, nargs="+", help=f"default {FULL['timesteps']}")
    ap.add_argument("--payload-bits", type=int, nargs="+", help=f"default {FULL['payload_bits']}")
    ap.add_argument("--epochs", type=int, help=f"default {FULL['epochs']}")
    ap.add_argument("--method", default=tdr.DEFAULTS["method"], choices=["bptt", "rate_M"])
    ap.add_argument("--lr", type=float, default=tdr.DEFAULTS["lr"])
    ap.add_argument("--v-th", type=float, default=tdr.NEURON["v_th"], help="ReverB threshold (paper: 0)")
    ap.add_argument("--samples", type=int, help="test samples to evaluate (default: all 450)")
    ap.add_argument("--calibration", type=int, default=512, help="training samples given to the compiler")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write all measurements to this file")
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():  # what the command line leaves open
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


# ---- training --------------------------------------------------------------------------------------------

def recipe(args) -> dict:
    """The training recipe shared by every network of the table."""
    return {"epochs": args.epochs, "method": args.method, "lr": args.lr, "batch_size": tdr.DEFAULTS["batch_size"],
            "weight_decay": tdr.DEFAULTS["weight_decay"], "seed": args.seed}


def train_reverb(T: int, binary_first: bool, binary_last: bool, residual: bool, args, data
                 ) -> tuple[torch.nn.Module, dict]:
    """One ReverB variant trained by ``models/train_digits_reverb.py``'s own ``train``."""
    r = recipe(args)
    return tdr.train(r["epochs"], T, r["method"], r["lr"], r["seed"], r["batch_size"], r["weight_decay"],
                     neuron={"v_th": args.v_th}, binary_first=binary_first, binary_last=binary_last,
                     residual=residual, data=data, log=None)


def train_lif(T: int, args, data) -> tuple[torch.nn.Module, dict]:
    """The digits LIF CNN (same shape, binary spikes) trained with the same recipe."""
    r = recipe(args)
    torch.manual_seed(r["seed"])
    model = build_lif()
    t0 = time.perf_counter()
    fit(model, (data[0], data[1]), epochs=r["epochs"], timesteps=T, method=r["method"], lr=r["lr"],
        optimizer="adam", seed=r["seed"], batch_size=r["batch_size"], weight_decay=r["weight_decay"],
        progress=False, measure_memory=False)
    return model.eval(), {"train_time_s": round(time.perf_counter() - t0, 3)}


# ---- deployment -------------------------------------------------------------------------------------------

def memory_kib(costs: dict) -> dict:
    """Synaptic memory in KiB from a cost report: explicit synapses with ±1 weights at 1 bit (the
    paper's count), as the target stores them, and at 8 bits; and the unique (shared convolution)
    weights at 1 and 8 bits.  Real-valued layers count at the weight mantissa (8 bits) in all.

    ReverB networks carry the report's ``binary_weights`` section; a network without ±1 layers
    (the LIF baseline) has one figure for all widths."""
    if "binary_weights" in costs:
        t = costs["binary_weights"]["totals"]
        kib = {"1bit": t["bytes_1bit"], "stored": t["bytes_stored"], "8bit": t["bytes_8bit"],
               "unique_1bit": t["unique_bytes_1bit"], "unique_8bit": t["unique_bytes_8bit"]}
        stored_bits = costs["binary_weights"]["binary_weight_bits_stored"]
    else:
        syn_bytes = costs["summary"]["synaptic_memory_bytes"]
        unique = costs["totals"]["unique_weights"] * costs["memory_model"]["weight_bits"] / 8
        kib = {"1bit": syn_bytes, "stored": syn_bytes, "8bit": syn_bytes, "unique_1bit": unique, "unique_8bit": unique}
        stored_bits = None
    out = {k: v / 1024 for k, v in kib.items()}
    out["binary_weight_bits_stored"] = stored_bits
    return out


def activity(costs: dict) -> dict:
    """Mean synaptic operations and spikes (messages sent) per sample."""
    s = costs["summary"]
    return {"synaptic_ops": float(s["synaptic_ops_per_sample"]["mean"]),
            "spikes": float(s["spikes_per_sample"]["mean"])}


def deploy_reverb(model, T: int, args, data, xte, yte) -> dict:
    """Compile for every payload width; verify each; costs of the widest one."""
    example = torch.from_numpy(data[0][:8])
    cal = data[0][:args.calibration]
    out = {"fixed_point": {}, "agreement": {}, "float_snn": None}
    costs = None
    for bits in sorted(args.payload_bits):
        net = nd.compile(model, example, target="loihi2", scheme="reverb", timesteps=T, payload_bits=bits,
                         calibration=cal)
        r = nd.verify(net, model, xte, yte)
        out["fixed_point"][bits] = float(r["accuracy"]["fixed_point_snn"])
        out["agreement"][bits] = float(r["agreement"]["fixed_vs_float_snn"])
        out["float_snn"] = float(r["accuracy"]["float_snn"])
        costs = cost_report(net.graph, xte, energy_models=[])
    out["memory_kib"] = memory_kib(costs)
    out["activity"] = activity(costs)
    out["latency_steps"] = int(costs["summary"]["latency_steps"])
    return out


def deploy_lif(model, T: int, args, data, xte, yte) -> dict:
    """The LIF baseline through the ``cuba`` scheme: verify and costs."""
    graph = compile_lif(model, data[0][:8], timesteps=T, calibration=data[0][:args.calibration])
    r = nd.verify(graph, model, xte, yte)
    costs = cost_report(graph, xte, energy_models=[])
    return {"float_snn": float(r["accuracy"]["float_snn"]),
            "fixed_point": {"cuba": float(r["accuracy"]["fixed_point_snn"])},
            "agreement": {"cuba": float(r["agreement"]["fixed_vs_float_snn"])},
            "memory_kib": memory_kib(costs), "activity": activity(costs),
            "latency_steps": int(costs["summary"]["latency_steps"])}


# ---- the table ---------------------------------------------------------------------------------------------

def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def row_cells(row: dict, bits: list[int]) -> list[str]:
    """One Markdown row: fixed-point accuracy / agreement per payload width (LIF: its cuba value)."""
    if "error" in row:  # the compiler refused this network: say so, keep the float result
        return [row["network"], str(row["T"]), pct(row["train_test_accuracy"]),
                f"compile failed: {row['error']}", *["–"] * 6, f"{row['train_time_s']:.1f}"]
    if "cuba" in row["fixed_point"]:
        fixed = f"{pct(row['fixed_point']['cuba'])} (cuba)"
        agree = pct(row["agreement"]["cuba"])
    else:
        fixed = " / ".join(pct(row["fixed_point"][b]) for b in bits)
        agree = " / ".join(pct(row["agreement"][b]) for b in bits)
    mem = row["memory_kib"]
    return [row["network"], str(row["T"]), pct(row["float_snn"]), fixed, agree,
            f"{mem['1bit']:.1f} / {mem['stored']:.1f} / {mem['8bit']:.1f}",
            f"{mem['unique_1bit']:.2f} / {mem['unique_8bit']:.2f}",
            f"{row['activity']['synaptic_ops']:,.0f}", f"{row['activity']['spikes']:,.0f}",
            str(row["latency_steps"]), f"{row['train_time_s']:.1f}"]


def markdown(rows: list[dict], bits: list[int]) -> str:
    b = "/".join(str(v) for v in bits)
    head = ["network", "T", "float SNN %", f"fixed-point % (payload bits {b})", f"agreement % ({b})",
            "synaptic memory KiB (±1 at 1 bit / as stored / 8-bit)", "unique weights KiB (1 bit / 8-bit)",
            "synaptic ops / sample", "spikes / sample",
            "latency steps", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row_cells(r, bits)) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = digits(args.seed)
    n = len(data[2]) if args.samples is None else min(args.samples, len(data[2]))
    xte, yte = data[2][:n], data[3][:n]
    bits = sorted(args.payload_bits)
    print(f"digits: {len(data[0])} train / {n} test; T {args.timesteps}; payload bits {bits}; "
          f"recipe {recipe(args)}; ReverB V_th {args.v_th}", flush=True)
    rows = []
    for T in args.timesteps:
        for name, (first, last, residual) in VARIANTS.items():
            model, res = train_reverb(T, first, last, residual, args, data)
            row = {"network": name, "T": T, "train_time_s": res["train_time_s"],
                   "train_test_accuracy": float((predict(model, xte, T).argmax(1) == yte).mean())}
            try:
                row.update(deploy_reverb(model.eval(), T, args, data, xte, yte))
            except NeurodeployError as exc:  # report the refusal in the table instead of losing the run
                row["error"] = str(exc)
            rows.append(row)
            print(f"T={T} {name}: float {pct(row['train_test_accuracy'])}%, "
                  f"fixed {row.get('fixed_point', row.get('error'))}", flush=True)
        model, res = train_lif(T, args, data)
        row = {"network": "LIF (binary spikes)", "T": T, "train_time_s": res["train_time_s"],
               **deploy_lif(model, T, args, data, xte, yte)}
        rows.append(row)
        print(f"T={T} LIF: float {pct(row['float_snn'])}%, fixed {row['fixed_point']}", flush=True)
    table = markdown(rows, bits)
    print()
    print(table)
    result = {"config": {**vars(args), "recipe": recipe(args), "test_samples": n}, "rows": rows, "table": table,
              "torch_version": torch.__version__}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
            f.write("\n")
    return result


if __name__ == "__main__":
    main()
