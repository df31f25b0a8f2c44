#!/usr/bin/env python
"""Train a small ReverB-SNN CNN (binary weights, graded spikes) on scikit-learn's 8x8 digits.

    python models/train_digits_reverb.py [--epochs N] [--timesteps T] [--method bptt|rate_M]
        [--lr LR] [--seed S] [--out models/] [--binary-first] [--binary-last] [--v-th V]

Writes ``digits_reverb.pt`` (state_dict) and ``digits_reverb.json`` (configuration,
accuracies, training history) to ``--out``.

Data: the digits split of ``neurodeploy.train.data.digits`` (pixel/16, float32 (N, 1, 8, 8),
stratified 75/25 with random_state=seed), fed as a constant current at every one of the T
steps (no spike encoding) -- as ``models/train_digits_lif.py``.

Network (time-first tensors, see ``neurodeploy.nn.lif``), the shape of the digits LIF CNN::

    Conv(1->16, 3x3, pad 1, no bias)        - BN - ReverB - AvgPool 2
    BinaryConv(16->32, 3x3, pad 1, no bias) - BN - ReverB - AvgPool 2
    Flatten - Linear(128 -> 10)

The hidden convolution has ±1 weights with a trainable per-input-channel scale α
(``neurodeploy.nn.reverb``); whether the paper also binarises the first convolution and the
last linear layer is not known (digest §4.5), so they stay real-valued unless
``--binary-first`` / ``--binary-last``.  ReverB neuron: ``U = τU + I``, fires where U ≥ V_th
emitting U itself, hard reset to 0; τ = 0.25, V_th = 0 (the paper's static-data setting).

Read-out: the Linear layer's output averaged over the T steps, ``W @ mean_t(O_t) + b``.
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
from neurodeploy.nn.lif import SpikingSequential  # noqa: E402
from neurodeploy.nn.reverb import BinaryConv2d, BinaryLinear, ReverBBasicBlock, ReverBNeuron  # noqa: E402
from neurodeploy.train.data import digits  # noqa: E402
from neurodeploy.train.fit import fit, predict  # noqa: E402

SEED = 0
NEURON = {"tau": 0.25, "v_th": 0.0}
# The recipe (chosen on the training split's behaviour, see the report in the JSON): Adam with a
# cosine schedule, weight decay on every tensor with dim > 1 (train.fit: weights, latent binary weights, α).
DEFAULTS = {"epochs": 30, "timesteps": 4, "method": "rate_M", "lr": 1e-2, "batch_size": 64,
            "weight_decay": 1e-4}


def build_model(channels=(16, 32), neuron: dict | None = None, classes: int = 10, binary_first: bool = False,
                binary_last: bool = False, residual: bool = False) -> SpikingSequential:
    """The digits ReverB CNN; ``neuron`` overrides entries of ``NEURON``.

    The hidden convolution is always binary; ``binary_first`` / ``binary_last`` make the input
    convolution / the read-out linear layer binary as well.  The read-out is then a plain
    ``BinaryLinear`` with one α per input feature (the 128 = 32×2×2 flattened positions, as in
    the paper); the compiler folds it into per-neuron emission scales of the second ReverB
    layer (``schemes.reverb.fold``).
    """
    cfg = dict(NEURON, **(neuron or {}))

    def neuron_():
        return ReverBNeuron(cfg["tau"], cfg["v_th"])

    if residual:
        return _residual_model(channels, cfg, classes, binary_first, binary_last)
    c1, c2 = channels
    first = BinaryConv2d if binary_first else nn.Conv2d
    # layers are created in network order so that the initial weights depend only on the seed
    layers = [first(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), neuron_(), nn.AvgPool2d(2),
              BinaryConv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), neuron_(), nn.AvgPool2d(2),
              nn.Flatten()]
    layers.append((BinaryLinear if binary_last else nn.Linear)(c2 * 2 * 2, classes))
    return SpikingSequential(*layers)


def _residual_model(channels, cfg: dict, classes: int, binary_first: bool, binary_last: bool) -> SpikingSequential:
    """The residual variant (``residual=True``): a stem, then two ReverB basic blocks (the paper's
    ResNets), the second one downsampling with stride 2 and a real-valued 1x1-conv shortcut::

        Conv(1->c1) - BN - ReverB - Block(c1->c1) - Block(c1->c2, stride 2) - AvgPool 2 - Flatten - Linear

    Pooling sits after the last block only: a block's shortcut must start at a neuron."""
    c1, c2 = channels
    first = BinaryConv2d if binary_first else nn.Conv2d
    return SpikingSequential(
        first(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), ReverBNeuron(cfg["tau"], cfg["v_th"]),
        ReverBBasicBlock(c1, c1, 1, cfg["tau"], cfg["v_th"]),
        ReverBBasicBlock(c1, c2, 2, cfg["tau"], cfg["v_th"]),
        nn.AvgPool2d(2), nn.Flatten(),
        (BinaryLinear if binary_last else nn.Linear)(c2 * 2 * 2, classes))


def binary_layers(model: nn.Module) -> list[str]:
    """Names of the layers whose weights are ±1 (times α) in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, (BinaryConv2d, BinaryLinear))]


def weight_bits(model: nn.Module) -> dict:
    """Synaptic weight counts: how many are binary (1 bit on chip) and how many real (8-bit on chip)."""
    binary = sum(m.weight.numel() for m in model.modules() if isinstance(m, (BinaryConv2d, BinaryLinear)))
    real = sum(m.weight.numel() for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, (BinaryConv2d, BinaryLinear)))
    return {"binary_weights": int(binary), "real_weights": int(real)}


def train(epochs: int = DEFAULTS["epochs"], timesteps: int = DEFAULTS["timesteps"],
          method: str = DEFAULTS["method"], lr: float = DEFAULTS["lr"], seed: int = SEED,
          batch_size: int = DEFAULTS["batch_size"], weight_decay: float = DEFAULTS["weight_decay"],
          neuron: dict | None = None, binary_first: bool = False, binary_last: bool = False,
          residual: bool = False, data=None, progress: bool = False, log=print) -> tuple[SpikingSequential, dict]:
    """Build and train one model with this file's recipe; return ``(model, results)``.

    ``data`` = ``(x_train, y_train, x_test, y_test)`` (default: ``digits(seed)``).  The benchmark
    calls this for every T so every model is trained the same way.  ``results`` holds the test
    and training accuracies of the float SNN, the training time and the per-epoch history.
    """
    torch.manual_seed(seed)  # the initial weights depend only on the seed
    xtr, ytr, xte, yte = data if data is not None else digits(seed)
    model = build_model(neuron=neuron, binary_first=binary_first, binary_last=binary_last, residual=residual)
    t0 = time.perf_counter()
    hist = fit(model, (xtr, ytr), epochs=epochs, timesteps=timesteps, method=method, lr=lr, optimizer="adam",
               val_data=(xte, yte), seed=seed, batch_size=batch_size, weight_decay=weight_decay,
               progress=progress)
    train_time = time.perf_counter() - t0
    for h in hist:
        if log is not None and (h["epoch"] == 1 or h["epoch"] % 5 == 0 or h["epoch"] == epochs):
            log(f"epoch {h['epoch']:3d}/{epochs}  loss {h['loss']:.4f}  train acc {h['accuracy']:.4f}  "
                f"test acc {h['val_accuracy']:.4f}  ({h['time']:.2f}s)")
    results = {
        "test_accuracy": float((predict(model, xte, timesteps).argmax(1) == yte).mean()),
        "train_accuracy": float((predict(model, xtr, timesteps).argmax(1) == ytr).mean()),
        "train_time_s": round(train_time, 3),
        "history": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()
                     if k != "peak_memory_what"} for h in hist],
    }
    return model, results


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    ap.add_argument("--timesteps", type=int, default=DEFAULTS["timesteps"])
    ap.add_argument("--method", default=DEFAULTS["method"], choices=["bptt", "rate_M"],
                    help="bptt | rate_M (rate-based backprop, multi-step BN statistics)")
    ap.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    ap.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    ap.add_argument("--v-th", type=float, default=NEURON["v_th"], help="ReverB threshold (0: the paper, static data)")
    ap.add_argument("--binary-first", action="store_true", help="binarise the input convolution too")
    ap.add_argument("--binary-last", action="store_true", help="binarise the read-out linear layer too")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=SEED)
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    pin_cpu_numerics()      # one float code path on every x86-64 CPU: the committed files bit for bit
    np.random.seed(args.seed)
    data = digits(args.seed)
    print(f"digits: {len(data[0])} train / {len(data[2])} test, seed {args.seed}", flush=True)

    neuron = dict(NEURON, v_th=args.v_th)
    model, res = train(args.epochs, args.timesteps, args.method, args.lr, args.seed, args.batch_size,
                       neuron=neuron, binary_first=args.binary_first, binary_last=args.binary_last, data=data,
                       log=lambda s: print(s, flush=True))
    os.makedirs(args.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(args.out, "digits_reverb.pt"))
    meta = {
        "model": "digits_reverb",
        "seed": args.seed,
        "method": args.method,
        "timesteps": args.timesteps,
        "epochs": args.epochs,
        "optimizer": {"name": "adam", "lr": args.lr, "weight_decay": DEFAULTS["weight_decay"],
                      "weight_decay_on": "every tensor with dim > 1 (train.fit): weights, latent binary "
                                         "weights and α; not BN",
                      "schedule": "cosine per iteration", "batch_size": args.batch_size},
        "neuron": dict(neuron, type="ReverBNeuron", fires_on="U >= v_th", emits="U (graded spike)",
                       reset="hard, to 0"),
        "binary": {"first_conv": args.binary_first, "hidden_conv": True, "last_linear": args.binary_last,
                   "layers": binary_layers(model), "ste": "clipped, d sign(W)/dW = 1{|W| <= 1}",
                   "alpha": "per input channel (convolutions) / per input feature (linear), trainable",
                   **weight_bits(model)},
        "input": "x = pixel/16, float32 (N,1,8,8), constant current at every step",
        "readout": "mean over T of the final Linear output = W @ mean_t(O_t) + b",
        "time_convention": "(T, N, ...) time first",
        "architecture": str(model),
        "test_accuracy": res["test_accuracy"],
        "train_accuracy": res["train_accuracy"],
        "train_time_s": res["train_time_s"],
        "n_train": int(len(data[0])),
        "n_test": int(len(data[2])),
        "history": res["history"],
        "files": ["digits_reverb.json", "digits_reverb.pt"],
        "torch_version": torch.__version__,
        "numerics": numerics_settings(),
    }
    write_model_card(os.path.join(args.out, "digits_reverb.json"), meta,
                     ("method", "timesteps", "test_accuracy", "train_accuracy",
                      "train_time_s"))
    return meta


if __name__ == "__main__":
    main()
