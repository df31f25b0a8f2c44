#!/usr/bin/env python
"""ReLU CNN -> QCFS by fine-tuning -> exact bitplane SNN, on scikit-learn's 8x8 digits.

    python models/finetune_digits_qcfs.py [--levels Q] [--relu-epochs N] [--finetune-epochs M]
                                          [--seed S] [--out DIR] [--json]

1. trains a plain ReLU CNN (conv-BN-ReLU-avgpool x2, linear) with the split and training loop
   of ``train_digits.py``;
2. swaps every ReLU for QCFS(Q) with λ = the 99.9th percentile of its calibration inputs
   (``neurodeploy.nn.relu_to_qcfs``) -- accuracy drops, the more the smaller Q;
3. fine-tunes (``neurodeploy.train.finetune.finetune_qcfs``: Adam, cosine LR, λ trained);
4. compiles the PyTorch model with ``neurodeploy.api.compile(..., scheme="bitplane")`` (an 8-bit
   input quantiser calibrated on 256 training images) and verifies it on the test split against
   the float model run by PyTorch: the SNN must reproduce the quantised ANN exactly (zero
   conversion mismatches on every layer).

Prints the four accuracies; ``--out DIR`` also saves the compiled network there.
The same numbers on any x86-64 CPU (`train_digits.setup` pins the float code path); 10-15 s on one
core (20 ReLU epochs, 30 fine-tuning epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import train_digits as td  # noqa: E402
from neurodeploy import api as nd  # noqa: E402
from neurodeploy.nn import relu_to_qcfs  # noqa: E402
from neurodeploy.train.finetune import accuracy, finetune_qcfs  # noqa: E402


def build_relu_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )


def run(levels: int = 4, relu_epochs: int = 20, finetune_epochs: int = 30, seed: int = td.SEED,
        lr: float = 1e-3, out: str | None = None, log=print) -> dict:
    t_start = time.perf_counter()
    td.setup(seed)
    xtr, ytr, xte, yte = td.load_data(seed)
    test = (xte, yte)
    model = build_relu_model()
    t_relu = td.train(model, xtr, ytr, relu_epochs, seed) if relu_epochs else 0.0
    res = {"levels": levels, "relu_epochs": relu_epochs, "finetune_epochs": finetune_epochs, "seed": seed,
           "accuracy_relu": accuracy(model, test)}
    log(f"ReLU CNN ({relu_epochs} epochs, {t_relu:.1f}s): test accuracy {res['accuracy_relu']:.4f}")

    relu_to_qcfs(model, levels, torch.from_numpy(xtr[:512]))
    res["accuracy_after_swap"] = accuracy(model, test)
    log(f"swapped ReLU -> QCFS(Q={levels}): test accuracy {res['accuracy_after_swap']:.4f}")

    t0 = time.perf_counter()
    finetune_qcfs(model, (xtr, ytr), epochs=finetune_epochs, lr=lr, seed=seed)
    res["finetune_seconds"] = round(time.perf_counter() - t0, 2)
    res["accuracy_after_finetune"] = accuracy(model, test)
    log(f"fine-tuned {finetune_epochs} epochs ({res['finetune_seconds']:.1f}s): "
        f"test accuracy {res['accuracy_after_finetune']:.4f}")

    net = nd.compile(model, torch.from_numpy(xte[:1]), target="loihi2", scheme="bitplane",
                     calibration=xtr[:256])
    r = nd.verify(net, model, xte, yte)
    res["accuracy_float_torch"] = r["accuracy"]["float"]
    res["accuracy_quantised_ann"] = r["accuracy"]["quantised_ann"]
    res["accuracy_snn"] = r["accuracy"]["snn"]
    res["conversion_mismatches"] = int(sum(l["conversion_mismatches"] for l in r["layers"]))
    res["exact"] = bool(r["guarantee_holds"])
    res["latency_steps"] = r["latency_steps"]
    log(f"SNN (bitplane, loihi2, {r['latency_steps']} steps): test accuracy {res['accuracy_snn']:.4f}  "
        f"(quantised ANN {res['accuracy_quantised_ann']:.4f}, float {res['accuracy_float_torch']:.4f}); "
        f"conversion mismatches {res['conversion_mismatches']} -> "
        f"{'EXACT' if res['exact'] else 'NOT EXACT'}")
    if out:
        net.save(out)
        log(f"wrote {out}/")
    res["total_seconds"] = round(time.perf_counter() - t_start, 2)
    log(f"total {res['total_seconds']:.1f}s")
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, default=4, help="QCFS levels Q (default 4: T = 3 steps per layer)")
    ap.add_argument("--relu-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    ap.add_argument("--seed", type=int, default=td.SEED)
    ap.add_argument("--out", help="save the compiled network to this directory")
    ap.add_argument("--json", action="store_true", help="print the results as JSON at the end")
    args = ap.parse_args(argv)
    res = run(args.levels, args.relu_epochs, args.finetune_epochs, args.seed, args.lr, args.out,
              log=lambda s: print(s, flush=True))
    if args.json:
        print(json.dumps(res, indent=1))
    if not res["exact"]:
        sys.exit(1)
    return res


if __name__ == "__main__":
    main()
