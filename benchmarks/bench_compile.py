#!/usr/bin/env python
"""Compile work per scheme at CIFAR scale: where the time goes, against the front end in the same run.

    python benchmarks/bench_compile.py [--models resnet20 resnet18] [--schemes bitplane rate sws sdnn]
                                       [--data ../shared/data/cifar10_subset.npz] [--json out.json]

Models: `resnet20` -- the trained CIFAR-10 ResNet-20 of models/ (QCFS L = 7, 0.27 M weights);
`resnet18` -- torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no
max pool), random weights, BatchNorm statistics from 256 CIFAR training images, every ReLU
swapped for QCFS(7) by `relu_to_qcfs` (11 M weights).  Calibration: 64 CIFAR training images.

For each model and scheme, in CPU seconds of this process (one thread: the numerics are pinned),
with the wall clock beside it (the machine may be shared):
* **front end** -- nn.Module -> float graph (torch.export and the handlers), measured once per
  model: the peer every other figure is divided by;
* **compile** -- float graph -> spiking network (the scheme's flow, then core allocation);
* **allocation** -- of which the core allocation (`target.allocation.check_fits`);
* **structure** -- the cost report's structural part: every branch's connectivity and the
  number of cores each source neuron's spikes reach (`branch_connectivity`, `dest_cores`);
* **weights / synapses** -- distinct weights and expanded connections (fan-in summed), so
  the figures can be read per weight and per synapse;
* **peak RSS** -- the process's peak resident memory after each model (monotone over the run:
  run one model at a time for its own figure).
A scheme that refuses the model prints its one-line refusal instead.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))

from neurodeploy.reproducible import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from neurodeploy.compiler import compile_graph  # noqa: E402
from neurodeploy.errors import NeurodeployError  # noqa: E402
from neurodeploy.frontends.torch import load_torch  # noqa: E402
from neurodeploy.ir.synapses import weighted_op  # noqa: E402
from neurodeploy.target.allocation import (allocate, branch_connectivity, check_fits, chip_limits,  # noqa: E402
                                           synapse_bits)

DEFAULT_DATA = Path(os.environ.get("NEURODEPLOY_DATA", ROOT.parent / "shared" / "data")) / "cifar10_subset.npz"


class Clock:
    """CPU seconds of this process and wall seconds of a block."""

    def __enter__(self):
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = time.process_time() - self.cpu0, time.perf_counter() - self.wall0


def images(path: Path, split: str, n: int) -> np.ndarray:
    with np.load(path) as d:
        return np.ascontiguousarray(d[f"{split}_x"][:n].transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255)


def build(name: str, train_x: np.ndarray):
    if name == "resnet20":
        import train_cifar_resnet20_qcfs as cifar
        return cifar.load_model(str(ROOT / "models" / f"{cifar.PREFIX}.pt"))
    if name == "resnet18":
        import torchvision
        from neurodeploy.nn import relu_to_qcfs
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
        model.train()
        with torch.no_grad():
            for i in range(0, len(train_x), 64):
                model(torch.from_numpy(train_x[i:i + 64]))
        model.eval()
        return relu_to_qcfs(model, 7, torch.from_numpy(train_x[:64]))
    raise SystemExit(f"unknown model {name!r}: use resnet20 or resnet18")


def structure(net) -> int:
    """The cost report's structural part: connectivity and destination cores of every branch;
    returns the number of synapses (expanded connections)."""
    lim = chip_limits(net)
    branches = branch_connectivity(net)
    for layer in net.neuron_layers():
        bounds, _ = allocate(synapse_bits(net, lim, layer, branches[layer.name], 0), lim)
        for bi in branches[layer.name]:
            bi.conn.dest_cores(bounds)
    return sum(int(bi.conn.fan_in.sum()) for infos in branches.values() for bi in infos)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    ap.add_argument("--schemes", nargs="+", default=["bitplane", "rate", "sws", "sdnn"])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIFAR-10 .npz (train_x, test_x)")
    ap.add_argument("--chips", type=int, default=64, help="chips available to the allocation")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    train_x = images(args.data, "train", 256)
    calibration = train_x[:64]
    rows = []
    print(f"{'model':<9}{'scheme':<10}{'front end':>15}{'compile':>15}{'/front':>8}{'allocation':>15}"
          f"{'structure':>15}{'cores':>7}{'weights':>11}{'synapses':>14}   (CPU s / wall s)")
    for name in args.models:
        model = build(name, train_x)
        example = torch.from_numpy(train_x[:1])
        with Clock() as fe:
            graph = load_torch(model, example)
        for scheme in args.schemes:
            row = {"model": name, "scheme": scheme, "front_end_cpu_s": fe.cpu, "front_end_wall_s": fe.wall}
            try:
                with Clock() as cc:
                    net = compile_graph(graph, "loihi2", scheme, {"calibration": calibration, "chips": args.chips})
            except NeurodeployError as exc:
                row["refused"] = exc.one_line()
                rows.append(row)
                print(f"{name:<9}{scheme:<10}{fe.cpu:>7.2f}/{fe.wall:<7.1f} refused after {cc.cpu:.2f} s: "
                      f"{exc.one_line()}", flush=True)
                continue
            with Clock() as al:
                alloc = check_fits(net, args.chips)
            with Clock() as st:
                synapses = structure(net)
            weights = sum(int(np.size(weighted_op(b.ops).weight)) for layer in net.neuron_layers()
                          for b in layer.branches)
            row.update(compile_cpu_s=cc.cpu, compile_wall_s=cc.wall, allocation_cpu_s=al.cpu,
                       structure_cpu_s=st.cpu, cores=alloc["total_cores"], weights=weights, synapses=synapses)
            rows.append(row)
            print(f"{name:<9}{scheme:<10}{fe.cpu:>7.2f}/{fe.wall:<7.1f}{cc.cpu:>7.2f}/{cc.wall:<7.1f}"
                  f"{cc.cpu / fe.cpu:>8.2f}{al.cpu:>7.2f}/{al.wall:<7.1f}{st.cpu:>7.2f}/{st.wall:<7.1f}"
                  f"{alloc['total_cores']:>7}{weights:>11,}{synapses:>14,}", flush=True)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux: KiB
        for row in rows:
            if row["model"] == name:
                row["peak_rss_mib"] = peak_mib
        print(f"{name}: peak RSS of this process so far {peak_mib:,.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
