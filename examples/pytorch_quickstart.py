#!/usr/bin/env python
"""PyTorch quickstart: a trained nn.Module -> an exact spiking network for Loihi 2.

    python examples/pytorch_quickstart.py [--out quickstart_out]

1. train a small ReLU CNN on scikit-learn's 8x8 digits (a few seconds);
2. swap its ReLUs for QCFS activations and fine-tune briefly (neurodeploy.train.finetune);
3. compile the nn.Module (torch.export under the hood), simulate it bit-accurately, verify it
   against the float model layer by layer, and save the compiled network;
4. save the model as a torch.export program (.pt2), which the API and the command line read too.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from neurodeploy import api as nd  # noqa: E402  (`import neurodeploy as nd` where __init__ exposes the API)
from neurodeploy.train.finetune import accuracy, finetune_qcfs  # noqa: E402


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]          # (N, 1, 8, 8) in [0, 1]
    return train_test_split(x, d.target.astype(np.int64), test_size=0.25, stratify=d.target, random_state=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="quickstart_out", help="where to write the compiled network and model.pt2")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    xtr, xte, ytr, yte = digits()

    # 1. any ReLU CNN made of Conv2d / BatchNorm / ReLU / pooling / Linear
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 15 * 22)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(15):
        model.train()
        for idx in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    print(f"ReLU CNN:               test accuracy {accuracy(model, (xte, yte)):.4f}")

    # 2. ReLU -> QCFS(Q=4) with calibrated thresholds, then fine-tune
    finetune_qcfs(model, (xtr, ytr), epochs=10, lr=1e-3, levels=4, calib_data=xtr[:512])
    print(f"QCFS CNN (fine-tuned):  test accuracy {accuracy(model, (xte, yte)):.4f}")

    # 3. compile, simulate, verify, save
    net = nd.compile(model, torch.from_numpy(xte[:1]), target="loihi2", scheme="bitplane",
                     calibration=xtr[:256])                  # 8-bit input quantiser from 256 samples
    print(net.summary())
    logits = nd.simulate(net, xte)
    print(f"SNN:                    test accuracy {np.mean(logits.argmax(1) == yte):.4f}")
    report = nd.verify(net, model, xte, yte)
    mismatches = sum(l["conversion_mismatches"] for l in report["layers"])
    print(f"verify: {mismatches} conversion mismatches over {len(report['layers'])} layers -> "
          f"{'EXACT' if report['guarantee_holds'] else 'NOT EXACT'}")
    net.save(os.path.join(args.out, "digits_bitplane"))

    # 4. a program file: `nd.compile(path)` (or `neurodeploy compile model.pt2 -o DIR`) reads it
    path = os.path.join(args.out, "model.pt2")
    torch.export.save(torch.export.export(model.eval(), (torch.from_numpy(xte[:1]),)), path)
    again = nd.compile(path, calibration=xtr[:256])
    assert np.array_equal(nd.simulate(again, xte), logits)
    print(f"wrote {args.out}/digits_bitplane/ and {path}")
    return 0 if report["guarantee_holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
