#!/usr/bin/env python
"""Train a small residual QCFS CNN on scikit-learn's 8x8 digits and export it.

    python models/train_digits_resnet.py [--epochs N] [--out models/] [--seed S]

Same data, split, training loop and outputs as ``train_digits.py``, with the
prefix ``digits_resnet_``: digits_resnet_qcfs.onnx, digits_resnet_qcfs_folded.onnx,
digits_resnet_qcfs.pt, digits_resnet_qcfs.json, digits_resnet_{test_x,test_y,calib_x}.npy
(the .npy files equal the digits_*.npy ones for the same seed).

Architecture (QCFS levels 15, after a fixed QCFS(16, lam=1) input quantiser)::

    stem:    conv3x3(1->16) BN QCFS                       8x8x16
    block1:  QCFS(BN(conv3x3(QCFS(BN(conv3x3(x))))) + x) 8x8x16  (identity shortcut)
    block2:  QCFS(BN(conv3x3(QCFS(BN(conv3x3/2(x))))))
               + BN(conv1x1/2(x))                         4x4x32  (projection shortcut)
    head:    GlobalAvgPool -> Flatten -> Linear(32, 10)
"""

from __future__ import annotations

import argparse
import os
import sys

from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import train_digits as td  # noqa: E402
from neurodeploy.nn import QCFS  # noqa: E402

LEVELS = 15


class Block(nn.Module):
    """``QCFS(BN(conv(QCFS(BN(conv(x))))) + shortcut(x))``; shortcut is the identity
    or, when the stride or width changes, ``BN(conv1x1(x))``."""

    def __init__(self, cin: int, cout: int, stride: int = 1, levels: int = LEVELS):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = QCFS(levels)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        # The join happens on pre-activations, then one quantiser (standard ResNet order).
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


def build_model(width: int = 16) -> nn.Sequential:
    return nn.Sequential(
        QCFS(levels=16, init_lambda=1.0, trainable=False),  # input quantiser
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), QCFS(LEVELS),
        Block(width, width),
        Block(width, 2 * width, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10),
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=td.SEED)
    args = ap.parse_args(argv)

    td.setup(args.seed)
    data = td.load_data(args.seed)
    xtr, ytr, xte, yte = data
    print(f"digits: {len(xtr)} train / {len(xte)} test, seed {args.seed}", flush=True)
    model = build_model()
    t = td.train(model, xtr, ytr, args.epochs, args.seed)
    print(f"trained in {t:.1f}s; torch test acc {td.torch_accuracy(model, xte, yte):.4f}", flush=True)
    meta = {"model": "digits_resnet_qcfs", "seed": args.seed, "epochs": args.epochs,
            "train_time_s": round(t, 3), "architecture": str(model)}
    return td.export_all(model, "digits_resnet_qcfs", args.out, data, meta, data_prefix="digits_resnet")


if __name__ == "__main__":
    main()
