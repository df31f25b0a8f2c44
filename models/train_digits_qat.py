#!/usr/bin/env python
"""Train a small ReLU CNN on scikit-learn's 8x8 digits, QAT-fine-tune it to 8 bits, export QDQ ONNX.

    python models/train_digits_qat.py [--epochs N] [--qat-epochs M] [--out models/] [--seed S]

Writes to ``--out``: digits_qat.onnx (QuantizeLinear/DequantizeLinear, for
``neurodeploy compile models/digits_qat.onnx --scheme sws``) and digits_qat.json (metadata and
accuracies: float ReLU model, QAT model in PyTorch, the QDQ file in onnxruntime).  Test data:
the split of models/train_digits.py (digits_test_x.npy / digits_test_y.npy, inputs pixel/16).

Recipe (the SWS paper's A.2, scaled down): float training (Adam, cosine), then
`neurodeploy.nn.qat.prepare_qat` (Conv+BN+ReLU fused, quint8 activations, qint8 weights), QAT
with a small learning rate; BN statistics frozen after 3 QAT epochs, scales/zero points 2
epochs later.  Deterministic for a given seed, the same bits on any x86-64 CPU (fixed generators,
the float code path pinned by ``train_digits.setup``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from finetune_digits_qcfs import build_relu_model  # noqa: E402
from train_digits import onnx_predict, setup, torch_accuracy as accuracy  # noqa: E402
from neurodeploy.reproducible import numerics_settings  # noqa: E402
from neurodeploy.train.checkpoint import write_model_card  # noqa: E402
from neurodeploy.nn.qat import export_qat_onnx, freeze, prepare_qat  # noqa: E402

SEED = 0


# the float network is finetune_digits_qcfs.py's ReLU CNN (Conv-BN-ReLU x2 with average pooling,
# sws has no max-pool rule, then a linear readout); seeding and float code path as train_digits.py
build_model = build_relu_model


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int,
          on_epoch=None, batch_size: int = 64) -> float:
    """Adam + cosine LR over `epochs`; `on_epoch(ep)` runs before each epoch; returns seconds."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(x) + batch_size - 1) // batch_size))
    lossf = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for ep in range(epochs):
        if on_epoch is not None:
            on_epoch(ep)
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = lossf(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30, help="float training epochs")
    ap.add_argument("--qat-epochs", type=int, default=10, help="QAT fine-tuning epochs")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)

    setup(args.seed)
    from neurodeploy.train.data import digits
    xtr, ytr, xte, yte = digits(args.seed)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model = build_model()
    t_float = train(model, x, y, args.epochs, 1e-2, args.seed)
    acc_float = accuracy(model, xte, yte)
    print(f"float ReLU CNN: test acc {acc_float:.4f} ({t_float:.1f}s)", flush=True)

    qat = prepare_qat(model)

    def schedule(ep: int) -> None:         # paper A.2: freeze BN, then the quantisers
        if ep == 3:
            freeze(qat, observers=False, batchnorm=True)
        if ep == 5:
            freeze(qat, observers=True, batchnorm=False)

    t_qat = train(qat, x, y, args.qat_epochs, 1e-3, args.seed + 1, on_epoch=schedule)
    acc_qat = accuracy(qat, xte, yte)
    print(f"QAT (8-bit fake quant, PyTorch): test acc {acc_qat:.4f} ({t_qat:.1f}s)", flush=True)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "digits_qat.onnx")
    export_qat_onnx(qat, torch.from_numpy(xte[:1]), path)
    out = onnx_predict(path, xte)            # onnxruntime on the QDQ file, once
    acc_onnx = float((out.argmax(1) == yte).mean())
    with torch.no_grad():
        ref = qat.eval()(torch.from_numpy(xte)).numpy()
    meta = {
        "model": "digits_qat", "seed": args.seed, "epochs": args.epochs, "qat_epochs": args.qat_epochs,
        "architecture": str(build_model()), "qconfig": "quint8 0..255 per-tensor activations, qint8 -127..127 per-tensor symmetric weights",
        "test_accuracy_float_relu": acc_float, "test_accuracy_qat_torch": acc_qat,
        "test_accuracy_qdq_onnx": acc_onnx,
        "argmax_agreement_onnx_vs_torch": float((out.argmax(1) == ref.argmax(1)).mean()),
        "max_abs_diff_onnx_vs_torch": float(np.abs(out - ref).max()),
        "train_time_s": round(t_float + t_qat, 3), "n_train": int(len(xtr)), "n_test": int(len(xte)),
        "files": ["digits_qat.onnx", "digits_qat.json"], "torch_version": torch.__version__,
        "numerics": numerics_settings(),
    }
    write_model_card(os.path.join(args.out, "digits_qat.json"), meta,
                     ("test_accuracy_float_relu", "test_accuracy_qat_torch",
                      "test_accuracy_qdq_onnx", "argmax_agreement_onnx_vs_torch",
                      "train_time_s"))
    return meta


if __name__ == "__main__":
    main()
