#!/usr/bin/env python
"""Train a small QCFS CNN on scikit-learn's 8x8 handwritten digits and export it.

    python models/train_digits.py [--epochs N] [--out models/] [--seed S]

Writes to ``--out``: digits_qcfs.onnx (BatchNormalization kept),
digits_qcfs_folded.onnx (BN folded into Conv), digits_qcfs.pt (state_dict),
digits_test_x.npy / digits_test_y.npy (float32 (N,1,8,8) in [0,1] / int64),
digits_calib_x.npy (256 training samples) and digits_qcfs.json (metadata; the
accuracies there are computed with onnxruntime on the exported files).

Inputs are pixel/16.  The first layer is a fixed QCFS(16, lam=1) input
quantiser, exact on these inputs: its integer codes are the pixel values 0..16.

The same files, bit for bit, on any x86-64 CPU with AVX2 (Intel or AMD, any core count): `setup`
pins the float code path first (`neurodeploy.reproducible.pin_cpu_numerics`, one thread); about
4 s of training on one core.  (Two intra-op threads made it 35x slower on a loaded 2-core machine,
140 s instead of 4 s: every tiny kernel waits for the other thread.)
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from neurodeploy.reproducible import numerics_settings, pin_cpu_numerics  # noqa: E402
from neurodeploy.train.checkpoint import write_model_card  # noqa: E402
from neurodeploy.nn import QCFS, export_onnx  # noqa: E402

SEED = 0
LEVELS = 15


def setup(seed: int) -> None:
    """Seed every generator and pin the float arithmetic to one code path on every x86-64 CPU
    (one thread, MKL's CNR branch COMPATIBLE, ATen's AVX2 kernels: `neurodeploy.reproducible`),
    so that retraining writes the committed files bit for bit; before torch computes anything."""
    pin_cpu_numerics()
    torch.manual_seed(seed)
    np.random.seed(seed)


def load_data(seed: int = SEED):
    """Stratified 75/25 split of sklearn digits -> float32 (N,1,8,8) in [0,1], int64 labels
    (one definition of the split for every model: neurodeploy.train.data.digits)."""
    from neurodeploy.train.data import digits
    return digits(seed)


def build_model() -> nn.Sequential:
    return nn.Sequential(
        QCFS(levels=16, init_lambda=1.0, trainable=False),  # input quantiser
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), QCFS(LEVELS),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), QCFS(LEVELS),
        nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )


@torch.no_grad()
def init_lambdas(model: nn.Module, x: torch.Tensor, percentile: float = 99.9) -> None:
    """Set each trainable QCFS lam to the given percentile of its input on batch ``x``."""
    def pre(mod, inp):
        mod.lam.fill_(max(float(torch.quantile(inp[0].flatten().double(), percentile / 100)), 1e-3))

    hooks = [m.register_forward_pre_hook(pre) for m in model.modules()
             if isinstance(m, QCFS) and m.lam.requires_grad]
    model.train()
    model(x)
    for h in hooks:
        h.remove()


def train(model: nn.Module, xtr: np.ndarray, ytr: np.ndarray, epochs: int, seed: int,
          batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 1e-4) -> float:
    """Adam + cosine LR; returns the training wall time in seconds."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    init_lambdas(model, x[torch.randperm(len(x), generator=g)[:batch_size]])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    for ep, loss, acc in run_epochs(model, x, y, opt, sched, epochs, batch_size, g):
        if ep == 1 or ep % 5 == 0 or ep == epochs:
            print(f"epoch {ep:3d}/{epochs}  loss {loss:.4f}  train acc {acc:.4f}"
                  f"  ({time.perf_counter() - t0:.1f}s)", flush=True)
    return time.perf_counter() - t0


def run_epochs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt, sched, epochs: int, batch_size: int,
               g: torch.Generator, transform=None):
    """Cross-entropy training, one optimiser and scheduler step per batch of a fresh permutation
    drawn from `g` every epoch; `transform(batch, g)` (augmentation) draws from `g` too.  Yields
    (epoch from 1, mean loss, training accuracy) after each epoch."""
    lossf = nn.CrossEntropyLoss()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        tot, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            out = model(x[idx] if transform is None else transform(x[idx], g))
            loss = lossf(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        yield ep + 1, tot / len(x), correct / len(x)


@torch.no_grad()
def torch_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def onnx_predict(path: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output on ``x``, the model as written: `neurodeploy verify`'s own runner (no
    fusion of a QDQ model into the integer kernels onnxruntime picks per CPU)."""
    from neurodeploy.reports.verify import run_onnx
    return run_onnx(path, x)


def export_all(model: nn.Module, prefix: str, out: str, data, meta: dict, data_prefix: str = "digits") -> dict:
    """Write <prefix>.onnx, <prefix>_folded.onnx, <prefix>.pt, <prefix>.json and
    <data_prefix>_{test_x,test_y,calib_x}.npy; return the metadata written to the json."""
    xtr, ytr, xte, yte = data
    model.eval()
    os.makedirs(out, exist_ok=True)
    p = os.path.join(out, f"{prefix}.onnx")
    pf = os.path.join(out, f"{prefix}_folded.onnx")
    example = torch.from_numpy(xte[:1])
    export_onnx(model, example, p, fold_bn=False)
    export_onnx(model, example, pf, fold_bn=True)
    torch.save(model.state_dict(), os.path.join(out, f"{prefix}.pt"))
    data_files = [f"{data_prefix}_test_x.npy", f"{data_prefix}_test_y.npy", f"{data_prefix}_calib_x.npy"]
    np.save(os.path.join(out, data_files[0]), xte.astype(np.float32))
    np.save(os.path.join(out, data_files[1]), yte.astype(np.int64))
    np.save(os.path.join(out, data_files[2]), xtr[:256].astype(np.float32))

    with torch.no_grad():
        ref = model(torch.from_numpy(xte)).numpy()
    res = {}
    for tag, path in (("onnx", p), ("onnx_folded", pf)):
        o = onnx_predict(path, xte)
        res[f"test_accuracy_{tag}"] = float((o.argmax(1) == yte).mean())
        res[f"max_abs_diff_vs_torch_{tag}"] = float(np.abs(o - ref).max())
        res[f"argmax_agreement_vs_torch_{tag}"] = float((o.argmax(1) == ref.argmax(1)).mean())
    meta = dict(meta)
    meta["test_accuracy"] = res["test_accuracy_onnx"]
    meta["test_accuracy_torch"] = float((ref.argmax(1) == yte).mean())
    meta.update(res)
    meta["n_train"], meta["n_test"], meta["n_calib"] = int(len(xtr)), int(len(xte)), int(min(256, len(xtr)))
    meta["lambdas"] = {n: float(m.lam.detach()) for n, m in model.named_modules() if isinstance(m, QCFS)}
    meta["levels"] = {n: m.levels for n, m in model.named_modules() if isinstance(m, QCFS)}
    meta["files"] = sorted([os.path.basename(p), os.path.basename(pf), f"{prefix}.pt", f"{prefix}.json",
                            *data_files])
    meta["torch_version"] = torch.__version__
    meta["numerics"] = numerics_settings()
    write_model_card(os.path.join(out, f"{prefix}.json"), meta,
                     ("test_accuracy", "test_accuracy_torch", "test_accuracy_onnx_folded",
                      "max_abs_diff_vs_torch_onnx", "max_abs_diff_vs_torch_onnx_folded",
                      "train_time_s"))
    return meta


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)

    setup(args.seed)
    data = load_data(args.seed)
    xtr, ytr, xte, yte = data
    print(f"digits: {len(xtr)} train / {len(xte)} test, seed {args.seed}", flush=True)
    model = build_model()
    t = train(model, xtr, ytr, args.epochs, args.seed)
    print(f"trained in {t:.1f}s; torch test acc {torch_accuracy(model, xte, yte):.4f}", flush=True)
    meta = {"model": "digits_qcfs", "seed": args.seed, "epochs": args.epochs, "train_time_s": round(t, 3),
            "architecture": str(model)}
    return export_all(model, "digits_qcfs", args.out, data, meta)


if __name__ == "__main__":
    main()
