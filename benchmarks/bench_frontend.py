"""What reading a model costs: normalisation and the proof against the rest of compiling.

A CIFAR ResNet-20 (option-A shortcuts, QCFS, random weights, 3x32x32), exported with the
TorchScript and the dynamo ONNX exporters and read through torch.export.  Prints, per source, the
time of reading without the proof, of the proof, and of the whole bitplane compile, and the
proof's share -- each against the others measured in the same run (no absolute claims).

    python benchmarks/bench_frontend.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from neurodeploy import api  # noqa: E402
from neurodeploy.frontends.onnx import load_onnx  # noqa: E402
from neurodeploy.frontends.torch import load_torch  # noqa: E402
from neurodeploy.nn import QCFS  # noqa: E402
from bench_lava import _best_of  # noqa: E402  (best wall time after two warm-up calls)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1, self.act1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), QCFS(8)
        self.conv2, self.bn2, self.act2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), QCFS(8)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        s = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return self.act2(y + s)


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QCFS(255, 1.0, trainable=False)
        self.conv, self.bn, self.act = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), QCFS(8)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(self.act(self.bn(self.conv(self.quant(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ResNet20().eval()
    x = torch.rand(2, 3, 32, 32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for dynamo in (False, True):
            p = Path(tmp) / f"r20_{int(dynamo)}.onnx"
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), p, dynamo=dynamo, opset_version=18)
            paths["onnx dynamo" if dynamo else "onnx torchscript"] = p
        for label, p in paths.items():
            read = _best_of(lambda: load_onnx(p, prove=False), args.repeat)
            proven = _best_of(lambda: load_onnx(p), args.repeat)
            total = _best_of(lambda: api.compile(p, chips=8), args.repeat)
            rows.append((label, read, proven - read, total))
        read = _best_of(lambda: load_torch(model, x, prove=False), args.repeat)
        proven = _best_of(lambda: load_torch(model, x), args.repeat)
        total = _best_of(lambda: api.compile(model, x, chips=8), args.repeat)
        rows.append(("torch.export", read, proven - read, total))
    print(f"ResNet-20 (CIFAR, 3x32x32), seconds, best of {args.repeat} after 2 warm-ups, 1 thread")
    print(f"{'source':18s} {'read':>8s} {'proof':>8s} {'compile':>8s}  proof/compile  read/compile")
    for label, read, proof, total in rows:
        print(f"{label:18s} {read:8.2f} {proof:8.2f} {total:8.2f}  {proof / total:13.2f}  {read / total:12.2f}")


if __name__ == "__main__":
    main()
