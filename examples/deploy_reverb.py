#!/usr/bin/env python
"""Deploy the trained ReverB CNN (binary ±1 synapses, graded spikes) and check it three ways.

    python examples/deploy_reverb.py [--payload-bits 16] [--lava 3]

1. loads `models/digits_reverb.pt` (trained by `models/train_digits_reverb.py`: a real-valued
   first conv, a binary hidden conv with α per input channel, BatchNorm, ReverB neurons with
   τ = 0.25, V_th = 0, a real-valued read-out; T from its json);
2. compiles it with the `reverb` scheme: BatchNorm and α folded away (`schemes.reverb.fold`,
   every hidden synapse exactly ±1), graded spikes as `--payload-bits` integers, the channel
   scales as one multiply per emitted spike;
3. runs the fixed-point SNN in neurodeploy's simulator on the digits test split and prints
   float-SNN vs fixed-point-SNN accuracy (`nd.verify`);
4. prints the synaptic memory of the ±1 layers at 1 bit, as Loihi 2 stores them, and at 8 bits;
5. runs `--lava N` samples in Lava (`Loihi2SimCfg(select_tag="fixed_pt")`) and checks that every
   layer's payload train and the read-out state equal our simulator's, bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "models"))
import neurodeploy as nd  # noqa: E402
from neurodeploy.reports.memory import binary_weight_memory  # noqa: E402
from neurodeploy.sim import engine  # noqa: E402
from neurodeploy.schemes.reverb import kernel as sim_reverb  # noqa: E402
from neurodeploy.train.data import digits  # noqa: E402
from train_digits_reverb import build_model  # noqa: E402


def load_trained() -> tuple[torch.nn.Module, dict]:
    with open(os.path.join(ROOT, "models", "digits_reverb.json")) as f:
        card = json.load(f)
    model = build_model()
    model.load_state_dict(torch.load(os.path.join(ROOT, "models", "digits_reverb.pt"), weights_only=True))
    return model.eval(), card


def lava_check(net, x: np.ndarray) -> None:
    """Every payload train and the read-out state: Lava vs our simulator (raises on a difference)."""
    from neurodeploy.schemes.reverb.lava import run_lava
    lava = run_lava(net.graph, x)
    ours = sim_reverb.run(engine.prepare(net.graph), x)
    for name, train in ours.trains.items():
        if not np.array_equal(train.cpu().numpy(), lava.trains[name]):
            raise SystemExit(f"Lava and neurodeploy differ in layer {name}")
    if not np.array_equal(ours.readout_state.cpu().numpy().reshape(len(x), -1), lava.readout_state):
        raise SystemExit("Lava and neurodeploy differ in the read-out state")
    print(f"Lava: {len(x)} samples, every payload train and the read-out state bit-identical "
          f"({lava.total_seconds:.1f} s in Lava)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payload-bits", type=int, default=16, help="bits of a graded spike (default 16)")
    ap.add_argument("--lava", type=int, default=3, help="samples to run in Lava too (0: skip)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model, card = load_trained()
    xtr, _, xte, yte = digits(card.get("seed", 0))
    t = int(card["timesteps"])
    net = nd.compile(model, xtr[:2], target="loihi2", scheme="reverb", timesteps=t,
                     payload_bits=args.payload_bits, calibration=xtr)
    print(net.summary())
    r = nd.verify(net, model, xte, yte)
    print(f"T = {t}, payload bits = {args.payload_bits}: float SNN {100 * r['accuracy']['float_snn']:.2f}%, "
          f"fixed-point SNN {100 * r['accuracy']['fixed_point_snn']:.2f}%, "
          f"agreement {100 * r['agreement']['fixed_vs_float_snn']:.2f}% ({len(xte)} test images)")
    mem = binary_weight_memory(net.graph)
    tot = mem["totals"]
    print(f"synaptic memory: {tot['bytes_1bit']} B at 1 bit per ±1 weight, {tot['bytes_stored']} B as stored "
          f"({mem['binary_weight_bits_stored']} bits), {tot['bytes_8bit']} B at 8 bits "
          f"(8-bit / stored = {mem['ratio_8bit_over_stored']:.2f}x)")
    if args.lava:
        lava_check(net, xte[:args.lava])


if __name__ == "__main__":
    main()
