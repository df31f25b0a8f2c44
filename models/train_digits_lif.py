#!/usr/bin/env python
"""Train a small LIF CNN on scikit-learn's 8x8 digits with rate-based backprop.

    python models/train_digits_lif.py [--epochs N] [--timesteps T] [--method rate_M] [--out models/] [--seed S]

Writes ``digits_lif.pt`` (state_dict) and ``digits_lif.json`` (configuration,
accuracies, training history) to ``--out``.

Data: x = pixel/16 as float32 (N, 1, 8, 8), stratified 75/25 split with
random_state=seed -- the split of ``models/train_digits.py``.  The input is
fed as a constant current at every one of the T steps (no spike encoding).

Network (time-first tensors, see ``neurodeploy.nn.lif``)::

    Conv(1->16, 3x3, pad 1, no bias) - BN - LIF - AvgPool 2
    Conv(16->32, 3x3, pad 1, no bias) - BN - LIF - AvgPool 2
    Flatten - Linear(128 -> 10)

Read-out: the Linear layer's output averaged over the T steps, i.e.
``W @ (spike count / T) + b`` -- the membrane potential of a non-leaky,
non-firing read-out integrator after T steps, divided by T.  Its argmax is the
argmax of ``W @ spike_count + T*b``, so on chip it is an integer accumulator.

Neurons are trained for deployment on Loihi's stock LIF: hard reset to 0
(``reset="zero"``) and strict firing ``v > v_th`` (``strict=True``), decay
lambda = 0.2 (Loihi ``dv = 3277`` of 4096 gives 0.19995), v_th = 1, sigmoid
surrogate with alpha = 4.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from neurodeploy.reproducible import numerics_settings, pin_cpu_numerics  # noqa: E402
from neurodeploy.train.checkpoint import write_model_card  # noqa: E402
from neurodeploy.nn.lif import LIF, SpikingSequential  # noqa: E402
from neurodeploy.nn.surrogate import Sigmoid  # noqa: E402
from neurodeploy.train.data import digits  # noqa: E402
from neurodeploy.train.fit import fit, predict  # noqa: E402

SEED = 0
NEURON = {"decay": 0.2, "v_th": 1.0, "reset": "zero", "strict": True, "detach_reset": True, "surrogate_alpha": 4.0}


def build_model(channels=(16, 32), neuron: dict | None = None, classes: int = 10) -> SpikingSequential:
    """The digits LIF CNN; ``neuron`` overrides entries of ``NEURON``."""
    cfg = dict(NEURON, **(neuron or {}))

    def lif():
        return LIF(cfg["decay"], cfg["v_th"], cfg["reset"], Sigmoid(cfg["surrogate_alpha"]), cfg["strict"],
                   cfg["detach_reset"])

    c1, c2 = channels
    return SpikingSequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), lif(), nn.AvgPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), lif(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 2 * 2, classes),
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--method", default="rate_M", help="bptt | rate_M | rate_S")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)

    pin_cpu_numerics()      # one float code path on every x86-64 CPU: the committed files bit for bit
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    xtr, ytr, xte, yte = digits(args.seed)
    print(f"digits: {len(xtr)} train / {len(xte)} test, seed {args.seed}", flush=True)

    model = build_model()
    t0 = time.perf_counter()
    hist = fit(model, (xtr, ytr), epochs=args.epochs, timesteps=args.timesteps, method=args.method, lr=args.lr,
               optimizer="adam", val_data=(xte, yte), seed=args.seed, batch_size=args.batch_size,
               weight_decay=1e-4)
    train_time = time.perf_counter() - t0
    for h in hist:
        if h["epoch"] == 1 or h["epoch"] % 5 == 0 or h["epoch"] == args.epochs:
            print(f"epoch {h['epoch']:3d}/{args.epochs}  loss {h['loss']:.4f}  train acc {h['accuracy']:.4f}  "
                  f"test acc {h['val_accuracy']:.4f}  ({h['time']:.2f}s)", flush=True)

    test_acc = float((predict(model, xte, args.timesteps).argmax(1) == yte).mean())
    train_acc = float((predict(model, xtr, args.timesteps).argmax(1) == ytr).mean())
    os.makedirs(args.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.out, "digits_lif.pt"))
    meta = {
        "model": "digits_lif",
        "seed": args.seed,
        "method": args.method,
        "timesteps": args.timesteps,
        "epochs": args.epochs,
        "optimizer": {"name": "adam", "lr": args.lr, "weight_decay": 1e-4, "schedule": "cosine per iteration",
                      "batch_size": args.batch_size},
        "neuron": dict(NEURON, type="LIF", fires_on="v > v_th" if NEURON["strict"] else "v >= v_th"),
        "input": "x = pixel/16, float32 (N,1,8,8), constant current at every step",
        "readout": "mean over T of the final Linear output = W @ (spike count / T) + b",
        "time_convention": "(T, N, ...) time first",
        "architecture": str(model),
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "train_time_s": round(train_time, 3),
        "n_train": int(len(xtr)),
        "n_test": int(len(xte)),
        "history": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()
                     if k != "peak_memory_what"} for h in hist],
        "files": ["digits_lif.json", "digits_lif.pt"],
        "torch_version": torch.__version__,
        "numerics": numerics_settings(),
    }
    write_model_card(os.path.join(args.out, "digits_lif.json"), meta,
                     ("method", "timesteps", "test_accuracy", "train_accuracy",
                      "train_time_s"))
    return meta


if __name__ == "__main__":
    main()
