#!/usr/bin/env python
"""The committed CIFAR-10 ResNet-20 (QCFS) through each scheme, on real test images.

    python examples/cifar_resnet20_schemes.py [--images N] [--schemes bitplane sws rate sdnn]
                                              [--model M.onnx] [--target loihi2] [--chips 4]
                                              [--timesteps T] [--json]

For each scheme: compile `models/cifar_resnet20_qcfs.onnx` (the torch.onnx export the training
script writes; or --model, e.g. a `.pt2` of the same module) for Loihi 2, as `neurodeploy
compile` does, then verify the spiking network against that file (onnxruntime) on N test images of the CIFAR-10 subset, spread evenly over its
5,000 (the file holds them class by class).  One row per scheme: the float ANN's, the quantised
ANN's and the SNN's accuracy, the conversion mismatches (SNN vs the quantised ANN's integer
reference, summed over layers), the verdict, the cores, the compile time, and for a model with
option-A shortcuts (``--shortcut A`` of models/train_cifar_resnet20_qcfs.py) whether their zero
channels are exact zeros in the compiled weights -- or the scheme's refusal, as `neurodeploy
compile` prints it.

``--images 128 --schemes bitplane sws rate sdnn`` on Loihi 2 (README, "A real CIFAR-10 model"):
float 67.19% on those images; bitplane 67.19% exact; sws 64.06% = its quantised ANN (1,641 of
24.5 M codes off it, no prediction changed); rate (T = 32) 39.84% against its quantised ANN's
63.28%; sdnn 52.34%.  rate and sws compile on Loihi 2 because the 8x8 global average pool, which
their readouts cannot hold folded in (4,096 synapses of w/64 per output), becomes a layer of
its own (``neurodeploy/lowering/pool_layer.py``).

Data: ``$NEURODEPLOY_DATA/cifar10_subset.npz`` or ``../shared/data/cifar10_subset.npz`` beside
the repository (never copied into it); calibration (the schemes that calibrate thresholds or
bounds on data) uses its first 64 training images.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "models"))
import train_cifar_resnet20_qcfs as cifar  # noqa: E402
from neurodeploy import api as nd  # noqa: E402
from neurodeploy.errors import NeurodeployError  # noqa: E402

MODEL = os.path.join(ROOT, "models", f"{cifar.PREFIX}.onnx")
N_CALIBRATION = 64


def option_a_selections(net) -> list[tuple[str, np.ndarray]]:
    """(layer, integer weight) of every option-A shortcut in a compiled network: the branch the
    front end's `select_as_conv` made of ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`` -- a
    1x1 convolution with stride 2 from C/2 to C channels."""
    found = []
    for layer in net.graph.layers:
        for branch in getattr(layer, "branches", ()):
            for op in branch.ops:
                w = getattr(op, "weight", None)
                if (w is not None and w.ndim == 4 and w.shape[2:] == (1, 1) and w.shape[0] == 2 * w.shape[1]
                        and tuple(getattr(op, "stride", ())) == (2, 2)):
                    found.append((layer.name, np.asarray(w)))
    return found


def selection_is_exact(w: np.ndarray) -> bool:
    """The integer weight copies input channel c to output channel C/4 + c (one nonzero, the same
    value for every copied channel) and the C/4 padded channels on either side are exact zeros."""
    c_out, c_in = w.shape[:2]
    pad = c_out // 4
    expected = np.zeros((c_out, c_in), bool)
    expected[pad + np.arange(c_in), np.arange(c_in)] = True
    w2 = w[:, :, 0, 0]
    return bool(np.array_equal(w2 != 0, expected) and len(np.unique(w2[expected])) == 1)


def test_images(n: int, data: str) -> tuple[np.ndarray, np.ndarray]:
    """n test images spread evenly over the subset's (class-sorted) test split."""
    _, _, x, y = cifar.load_cifar(data)
    pick = np.linspace(0, len(x), n, endpoint=False).astype(np.int64)
    return x[pick], y[pick]


def run_scheme(model: str, scheme: str, x: np.ndarray, y: np.ndarray, calibration: np.ndarray,
               chips: int, target: str = "loihi2", timesteps: int | None = None) -> dict:
    row: dict = {"scheme": scheme}
    t0 = time.process_time()
    try:
        net = nd.compile(model, target=target, scheme=scheme, calibration=calibration, chips=chips,
                         timesteps=timesteps)
    except NeurodeployError as exc:
        row["refused"] = str(exc)
        return row
    row["compile_cpu_s"] = round(time.process_time() - t0, 1)
    selections = option_a_selections(net)
    row["option_a_shortcuts"] = len(selections)
    row["pad_zeros_exact"] = all(selection_is_exact(w) for _, w in selections)
    row["cores"] = net.graph.meta.get("allocation", {}).get("total_cores")
    t0 = time.process_time()
    r = nd.verify(net, model, x, y, batch_size=100)
    row["verify_cpu_s"] = round(time.process_time() - t0, 1)
    row.update({"images": len(x), **{k: r["accuracy"][k] for k in ("float", "quantised_ann", "snn")},
                "conversion_mismatches": int(sum(l["conversion_mismatches"] for l in r["layers"])),
                "verdict": r["verdict"]["word"], "latency_steps": r["latency_steps"]})
    return row


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000, help="test images (of 5,000; default 1000)")
    ap.add_argument("--schemes", nargs="+", default=["bitplane", "sws", "rate"])
    ap.add_argument("--model", default=MODEL, help="the .onnx or .pt2 file (default: the committed ONNX file)")
    ap.add_argument("--data", default=cifar.DEFAULT_DATA, help="the CIFAR-10 .npz")
    ap.add_argument("--target", default="loihi2", help="loihi2 (default), cpu (wide formats) or a target .toml")
    ap.add_argument("--chips", type=int, default=4, help="chips to allocate on (default 4)")
    ap.add_argument("--timesteps", type=int, default=None,
                    help="time steps of the schemes that take them (rate's T, sws's Tc, ...; default: each scheme's)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args(argv)
    x, y = test_images(args.images, args.data)
    calibration = cifar.load_cifar(args.data)[0][:N_CALIBRATION]
    rows = []
    for scheme in args.schemes:
        row = run_scheme(args.model, scheme, x, y, calibration, args.chips, args.target, args.timesteps)
        rows.append(row)
        if not args.json:
            if "refused" in row:
                print(f"{scheme}: refused: {row['refused']}", flush=True)
            else:
                print(f"{scheme}: {row['images']} images: float {row['float']:.2%}, quantised ANN "
                      f"{row['quantised_ann']:.2%}, SNN {row['snn']:.2%}, conversion mismatches "
                      f"{row['conversion_mismatches']} ({row['verdict']}); {row['cores']} cores, "
                      f"{row['latency_steps']} steps; option-A shortcuts {row['option_a_shortcuts']}, "
                      f"pad zeros exact: {row['pad_zeros_exact']}; compile {row['compile_cpu_s']} s, "
                      f"verify {row['verify_cpu_s']} s CPU", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
