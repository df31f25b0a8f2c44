#!/usr/bin/env python
"""Train a tiny LIF network on digits, deploy it as Loihi 2 CUBA LIF neurons, compare.

    python examples/train_deploy_lif.py [--epochs 15] [--timesteps 4] [--input-bits 4] [--lava 3]

1. trains a small LIF CNN (neurodeploy.nn.LIF, reset to 0, fires on v > v_th, as Loihi's
   stock LIF) on scikit-learn's 8x8 digits with rate-based backprop (a few seconds);
2. compiles it with the `cuba` scheme (BN folded, 8-bit weights, 17-bit thresholds,
   dv = round(4096 (1 - decay)), du = 4095, bias_mant with bias_exp 6, input codes as
   graded spikes);
3. runs the fixed-point SNN in neurodeploy's simulator on the whole test set, and
   `--lava N` samples in stock Lava (Loihi2SimCfg fixed_pt), checking that every spike and
   every readout value agree bit for bit;
4. prints float-SNN vs fixed-point-SNN accuracy.
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
from neurodeploy.nn.lif import LIF, SpikingSequential  # noqa: E402
from neurodeploy.reports.verify import compare_accuracy  # noqa: E402
from neurodeploy.schemes.cuba import compile_lif  # noqa: E402
from neurodeploy.schemes.cuba import kernel as sim_cuba  # noqa: E402
from neurodeploy.train import digits, fit  # noqa: E402


def tiny_lif_cnn() -> SpikingSequential:
    def lif():
        return LIF(decay=0.2, v_th=1.0, reset="zero", strict=True)
    return SpikingSequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), lif(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), lif(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--input-bits", type=int, default=4)
    ap.add_argument("--lava", type=int, default=3, help="samples to run in stock Lava (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    lava_error = None
    if args.lava > 0:
        # import Lava before training: it fixes multiprocessing's start method at import time
        try:
            from neurodeploy.backends.lava.compat import ensure_lava
            ensure_lava()
            import lava.magma.runtime.runtime  # noqa: F401
        except Exception as exc:                                     # noqa: BLE001
            lava_error = str(exc)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = digits(args.seed)
    model = tiny_lif_cnn()
    t0 = time.perf_counter()
    hist = fit(model, (xtr, ytr), epochs=args.epochs, timesteps=args.timesteps, method="rate_M", lr=1e-2,
               optimizer="adam", seed=args.seed, batch_size=64, weight_decay=1e-4)
    print(f"trained {args.epochs} epochs (rate_M, T={args.timesteps}) in {time.perf_counter() - t0:.1f}s, "
          f"last train accuracy {hist[-1]['accuracy']:.4f}")

    t0 = time.perf_counter()
    net = compile_lif(model, xtr[:8], timesteps=args.timesteps, calibration=xtr, input_bits=args.input_bits)
    print(f"compiled to cuba in {time.perf_counter() - t0:.2f}s: {net.meta['latency_steps']} steps per sample "
          f"(T={args.timesteps} + {net.meta['depth']} synapse hops)")
    for layer in net.layers[1:]:
        q = net.meta["quantisation"][layer.name]
        print(f"  {layer.name:8s} {type(layer.neuron).__name__:11s} vth={layer.neuron.v_th_mant:6d} "
              f"du={layer.neuron.du} dv={layer.neuron.dv:4d} weight_exp={q['weight_exp']} "
              f"weight rel. error {q['weight_rel_error']:.4f}")

    t0 = time.perf_counter()
    r = compare_accuracy(model, net, xte, yte)
    print(f"float SNN accuracy        {r['float_accuracy']:.4f}")
    print(f"fixed-point SNN accuracy  {r['fixed_accuracy']:.4f}   (agreement {r['agreement']:.4f}, "
          f"{len(xte)} test samples, {time.perf_counter() - t0:.2f}s)")

    result = {"float_accuracy": r["float_accuracy"], "fixed_accuracy": r["fixed_accuracy"],
              "agreement": r["agreement"], "lava_bit_exact": None}
    if args.lava > 0:
        if lava_error:
            print(f"Lava: skipped ({lava_error})")
            return result
        x = xte[:args.lava]
        ours = sim_cuba.trace(net, x)
        from neurodeploy.schemes.cuba import lava as cuba_lava
        lava = cuba_lava.run_lava(net, x)
        same = all(np.array_equal(lava.spikes[k], v) for k, v in ours.spikes.items()) \
            and np.array_equal(lava.readout_v, ours.readout_v)
        result["lava_bit_exact"] = bool(same)
        print(f"Lava (stock LIF/Dense/Conv, fixed_pt) on {len(x)} samples in {lava.seconds:.1f}s: "
              f"{'bit-exact' if same else 'MISMATCH'} (spikes of every layer and readout v, all "
              f"{net.input.neuron.n_steps} steps); predictions {lava.output.argmax(1).tolist()}, labels {yte[:len(x)].tolist()}")
    return result


if __name__ == "__main__":
    main()
