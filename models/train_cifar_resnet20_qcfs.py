#!/usr/bin/env python
"""Train a CIFAR-10 ResNet-20 with QCFS activations and export it.

    python models/train_cifar_resnet20_qcfs.py [DATA.npz] [--epochs N] [--levels L] [--out models/] [--seed S]

DATA: an ``.npz`` with ``train_x``/``test_x`` (N, 32, 32, 3) uint8 NHWC and ``train_y``/``test_y``
labels, default ``../shared/data/cifar10_subset.npz`` beside the repository, or
``$NEURODEPLOY_DATA/cifar10_subset.npz`` (the real CIFAR-10 subset: 10,000 training and 5,000 test
images; never copied into the repository).

Writes to ``--out``: cifar_resnet20_qcfs.pt (state dict, ``torch.load(..., weights_only=True)``
into ``build_model(levels)``), cifar_resnet20_qcfs.onnx (BatchNormalization kept) and
cifar_resnet20_qcfs.json (the model card: accuracies of the float QCFS ANN on all test images,
by PyTorch and by onnxruntime on the exported file).

Architecture (He et al. 2016, CIFAR variant, 0.27 M parameters)::

    input:   QCFS(255, lam=1), fixed           the pixel codes 0..255 of x = pixel / 255
    stem:    conv3x3(3->16) BN QCFS(L)         32x32x16
    stage 1: 3 basic blocks, 16 channels       32x32
    stage 2: 3 basic blocks, 32 channels       16x16  (first block stride 2)
    stage 3: 3 basic blocks, 64 channels        8x8   (first block stride 2)
    head:    GlobalAvgPool -> Flatten -> Linear(64, 10)

    basic block: QCFS(BN(conv3x3(QCFS(BN(conv3x3(x))))) + shortcut(x))

with the option-A shortcut where the shape changes, as the common CIFAR code writes it (`option_a`:
every second pixel and zero channels on either side -- a strided Slice plus a zero channel Pad in
the ONNX file, which both front ends read), and the identity elsewhere; ``--shortcut B`` trains
option B instead (``BN(conv1x1/2(x))``, 2,752 more parameters).

Inputs are ``pixel / 255`` in [0, 1], without mean/std normalisation: the BatchNorm after the
stem convolution learns the scale.  The first layer is a fixed QCFS(255, lam=1) input quantiser,
exact on these inputs: its codes are the pixels.  The same network rebuilt for mean/std-normalised
(signed) inputs, as the common CIFAR code feeds it, is compiled and verified on real images in
tests/test_cifar_resnet20.py (`normalised_variant`).

Size: 269,742 parameters (option B: 272,494); the state dict is 1.1 MB and the ONNX file 1.1 MB (float32).
Time: 8 epochs on the 10,000-image subset take about 24 CPU minutes on an idle core (one thread,
pinned numerics; 74 minutes on the shared machine that trained the committed model); 56.5% float
test accuracy on its 5,000 test images (the model card; option B reached 58.9%).

Training: SGD (momentum 0.9, Nesterov), weight decay 5e-4 on convolution and linear weights,
cosine learning rate from 0.1, batch 128, random crop (4-pixel zero padding) and horizontal flip
drawn from a seeded generator; each trainable QCFS lam starts at the 99.9th percentile of its
input on one training batch.  The float arithmetic is pinned first
(`neurodeploy.reproducible.pin_cpu_numerics`, one thread), so a rerun writes the same files bit
for bit on any x86-64 CPU with AVX2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import train_digits as td  # noqa: E402
from neurodeploy.nn import QCFS, export_onnx  # noqa: E402
from neurodeploy.reproducible import numerics_settings  # noqa: E402
from neurodeploy.train.checkpoint import write_model_card  # noqa: E402

PREFIX = "cifar_resnet20_qcfs"
# the shared data beside the clone, or where NEURODEPLOY_DATA points (as the tests read it)
DEFAULT_DATA = os.path.join(os.environ.get("NEURODEPLOY_DATA", os.path.join(HERE, "..", "..", "shared", "data")),
                            "cifar10_subset.npz")
LEVELS = 7            # L = 2^T - 1 (the error-free paper's choice): codes 0..7, T = 3 bit planes
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class LambdaLayer(nn.Module):
    """A module that applies a function: how the common CIFAR ResNet code writes its option-A
    shortcut (no parameters, so the state dict does not see it)."""

    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


def option_a(planes: int) -> LambdaLayer:
    """The option-A shortcut to ``planes`` channels, as the common CIFAR code writes it: every second
    pixel in each direction (strided Slice) and ``planes // 4`` zero channels on either side (a
    constant channel Pad) -- from ``planes // 2`` channels, parameter-free."""
    return LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))


SHORTCUTS = ("A", "B")
SHORTCUT = "A"        # the committed model's


class BasicBlock(nn.Module):
    """``QCFS(BN(conv3x3(QCFS(BN(conv3x3(x))))) + shortcut(x))``; the shortcut is the identity, or
    where the stride and the width change option A (`option_a`: subsample, zero channels) or
    option B (``BN(conv1x1/2(x))``)."""

    def __init__(self, cin: int, cout: int, stride: int, levels: int, shortcut: str = SHORTCUT):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = QCFS(levels)
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            if (stride, 2 * cin) != (2, cout):
                raise ValueError(f"option A halves the pixels and doubles the channels: not {cin} -> {cout}, "
                                 f"stride {stride}")
            self.shortcut = option_a(cout)
        elif shortcut == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, not {shortcut!r}")

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        # the join adds pre-activations, then one quantiser (the standard ResNet order)
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


def build_model(levels: int = LEVELS, blocks_per_stage: int = 3, widths=(16, 32, 64),
                num_classes: int = 10, shortcut: str = SHORTCUT) -> nn.Sequential:
    """ResNet-(6n+2) for 3x32x32 inputs in [0, 1] with QCFS(levels) activations (n = 3: ResNet-20)
    and option-A or option-B shortcuts where a stage begins."""
    layers: list[nn.Module] = [
        QCFS(levels=255, init_lambda=1.0, trainable=False),       # input quantiser: the pixel codes
        nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), QCFS(levels),
    ]
    cin = widths[0]
    for stage, cout in enumerate(widths):
        for i in range(blocks_per_stage):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1, levels, shortcut))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def load_model(path: str, levels: int = LEVELS, shortcut: str = SHORTCUT) -> nn.Sequential:
    """The trained model from its state dict (read with weights_only=True), in eval mode."""
    model = build_model(levels, shortcut=shortcut)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def load_cifar(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): x float32 (N, 3, 32, 32) = pixel / 255, y int64."""
    with np.load(path) as d:
        def images(a):
            return np.ascontiguousarray(a.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255.0)
        return (images(d["train_x"]), d["train_y"].astype(np.int64),
                images(d["test_x"]), d["test_y"].astype(np.int64))


def augment(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded batch and horizontal flip, drawn from `g`."""
    n, _, h, w = x.shape
    xp = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]               # (n, 1, h, 1)
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (n, 1, 1, w)
    return xp[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on convolution and linear weights only (not on BN, biases or QCFS lam)."""
    decay, rest = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (decay if isinstance(m, (nn.Conv2d, nn.Linear)) and name == "weight" else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train(model: nn.Module, data, epochs: int, seed: int, batch_size: int = 128, lr: float = 0.1,
          weight_decay: float = 5e-4) -> tuple[float, list]:
    """SGD + cosine schedule with augmentation; returns (wall time in s, per-epoch history)."""
    xtr, ytr = data[:2]
    g = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    td.init_lambdas(model, x[torch.randperm(len(x), generator=g)[:batch_size]])
    opt = torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    t0 = time.perf_counter()
    for ep, loss, acc in td.run_epochs(model, x, y, opt, sched, epochs, batch_size, g, transform=augment):
        # (accuracy on the augmented training batches; the test set is scored once, by `export`)
        row = {"epoch": ep, "loss": round(loss, 6), "train_accuracy": acc, "time": round(time.perf_counter() - t0, 1)}
        history.append(row)
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return time.perf_counter() - t0, history


def export(model: nn.Module, out: str, data, meta: dict) -> dict:
    """Write <PREFIX>.pt, <PREFIX>.onnx and <PREFIX>.json; return the model card."""
    _, _, xte, yte = data
    model.eval()
    os.makedirs(out, exist_ok=True)
    pt, onnx_path = os.path.join(out, f"{PREFIX}.pt"), os.path.join(out, f"{PREFIX}.onnx")
    torch.save(model.state_dict(), pt)
    export_onnx(model, torch.from_numpy(xte[:1]), onnx_path, fold_bn=False)
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(xte[i:i + 500])).numpy() for i in range(0, len(xte), 500)])
    o = td.onnx_predict(onnx_path, xte)
    meta = dict(meta)
    meta.update({
        "test_accuracy": float((ref.argmax(1) == yte).mean()),          # the float QCFS ANN, PyTorch
        "test_accuracy_onnx": float((o.argmax(1) == yte).mean()),      # the same, onnxruntime on the file
        "argmax_agreement_vs_torch_onnx": float((o.argmax(1) == ref.argmax(1)).mean()),
        "n_test": int(len(xte)),
        "lambdas": {n: float(m.lam.detach()) for n, m in model.named_modules() if isinstance(m, QCFS)},
        "levels": {n: m.levels for n, m in model.named_modules() if isinstance(m, QCFS)},
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "files": sorted(os.path.basename(p) for p in (pt, onnx_path)) + [f"{PREFIX}.json"],
        "torch_version": torch.__version__,
        "numerics": numerics_settings(),
    })
    write_model_card(os.path.join(out, f"{PREFIX}.json"), meta,
                     ("test_accuracy", "test_accuracy_onnx", "argmax_agreement_vs_torch_onnx", "train_time_s"))
    return meta


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help="CIFAR-10 .npz (train_x/train_y/test_x/test_y)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--levels", type=int, default=LEVELS, help="QCFS levels L of every activation")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shortcut", choices=SHORTCUTS, default=SHORTCUT,
                    help="where a stage begins: A = subsample + zero channels (the common CIFAR code's, "
                         f"parameter-free), B = BN(conv1x1/2) projection (default {SHORTCUT}: the committed model's)")
    args = ap.parse_args(argv)

    td.setup(args.seed)
    # deterministic mode fills every new tensor with NaN first (a fifth of this training's time);
    # no kernel here reads memory it did not write, so the results are the same without it
    torch.utils.deterministic.fill_uninitialized_memory = False
    data = load_cifar(args.data)
    print(f"CIFAR-10 {os.path.basename(args.data)}: {len(data[0])} train / {len(data[2])} test, "
          f"seed {args.seed}, QCFS L = {args.levels}, option-{args.shortcut} shortcuts", flush=True)
    model = build_model(args.levels, shortcut=args.shortcut)
    t, history = train(model, data, args.epochs, args.seed)
    print(f"trained in {t:.1f}s", flush=True)
    meta = {"model": PREFIX, "data": os.path.basename(args.data), "n_train": int(len(data[0])),
            "seed": args.seed, "epochs": args.epochs, "train_time_s": round(t, 3), "history": history,
            "architecture": str(model)}
    return export(model, args.out, data, meta)


if __name__ == "__main__":
    main()
