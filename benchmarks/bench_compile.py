#!/usr/bin/env python
"""Compile work per scheme at CIFAR scale: where the time goes, against the front end in the same run.

    python benchmarks/bench_compile.py [--models resnet20 resnet18 resnet50_224 vgg11_224 vgg16_224] [--schemes bitplane rate sws sdnn]
                                       [--data ../shared/data/cifar10_subset.npz] [--json out.json]
                                       [--isolate [--timeout S]] [--simulate N]

Models: `resnet20` -- the trained CIFAR-10 ResNet-20 of models/ (QCFS L = 7, 0.27 M weights);
`resnet18` -- torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no
max pool), random weights, BatchNorm statistics from 256 CIFAR training images, every ReLU
swapped for QCFS(7) by `relu_to_qcfs` (11 M weights); `resnet50_224` -- torchvision's ResNet-50
at 3x224x224 (CIFAR images resized) as torchvision builds it (its stem's padded 3x3/2 max pool
included), random weights, BatchNorm statistics from 16 images, QCFS(7), 23.5 M weights; `vgg11_224` -- torchvision's VGG-11-BN at 3x224x224 as
torchvision builds it (its max pools are unpadded; the 7x7 adaptive pool is the identity there), random
weights, 10 classes, BatchNorm statistics and QCFS(7) as resnet50_224, 128.8 M weights; `vgg16_224` -- the
same for VGG-16-BN (134.3 M weights).  Calibration: 64
CIFAR training images (16 at 224).

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

`--isolate` runs every (model, scheme) in its own process (with `--timeout` seconds at most), so
**peak RSS** is that compile's own (the child's ru_maxrss), and ends with a table of weights against
front-end seconds, compile seconds and peak RSS, each also per million weights (`print_scaling`: do
they grow linearly with the weights?).  `--simulate N` then also simulates N
test images (one batch) of each compiled network in a fresh process that loads it from disk, and
prints how much that process's peak RSS grew in the simulation against the bound computed from the
network (`simulate_bound_mib`: the activations live at the network's widest point for the batch, plus
the weights once), and exits with an error where it grew beyond SIM_BOUND_FACTOR times the bound
(+ SIM_LIBRARY_MIB); beside it, the int64 codes of the largest layer and of all layers (what a
whole-network pass would hold).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_data  # noqa: E402

from neurodeploy.reproducible import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from neurodeploy.compiler import compile_graph  # noqa: E402
from neurodeploy.errors import NeurodeployError  # noqa: E402
from neurodeploy.frontends.torch import load_torch  # noqa: E402
from neurodeploy.ir.synapses import weighted_op  # noqa: E402
from neurodeploy.schemes.base import chips_count  # noqa: E402
from neurodeploy.target.allocation import (allocate, branch_connectivity, check_fits, chip_limits,  # noqa: E402
                                           synapse_bits)

DEFAULT_DATA = bench_data.cifar_subset()


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


def resized(x: np.ndarray, size: int) -> np.ndarray:
    """Images (N, 3, 32, 32) bilinearly resized to size x size."""
    t = torch.nn.functional.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(t.numpy(), dtype=np.float32)


def build(name: str, train_x: np.ndarray):
    """(model, its calibration / example images)."""
    if name == "resnet20":
        import train_cifar_resnet20_qcfs as cifar
        return cifar.load_model(str(ROOT / "models" / f"{cifar.PREFIX}.pt")), train_x[:64]
    if name in ("resnet18", "resnet50_224", "vgg11_224", "vgg16_224"):
        import torchvision
        from neurodeploy.nn import relu_to_qcfs
        torch.manual_seed(0)
        if name == "resnet18":
            model, x = torchvision.models.resnet18(num_classes=10), train_x
            model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            model.maxpool = torch.nn.Identity()
        elif name in ("vgg11_224", "vgg16_224"):
            build_vgg = torchvision.models.vgg11_bn if name == "vgg11_224" else torchvision.models.vgg16_bn
            model, x = build_vgg(num_classes=10), resized(train_x[:16], 224)
        else:
            model, x = torchvision.models.resnet50(num_classes=10), resized(train_x[:16], 224)
        model.train()
        with torch.no_grad():
            for i in range(0, len(x), 64):
                model(torch.from_numpy(x[i:i + 64]))
        model.eval()
        return relu_to_qcfs(model, 7, torch.from_numpy(x[:64])), x[:64]
    raise SystemExit(f"unknown model {name!r}: use resnet20, resnet18, resnet50_224, vgg11_224 or vgg16_224")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux: KiB


# Simulate's memory bound.  A layer-by-layer run holds, while it computes layer i, the activations still
# to be read (`sim.core.release_sources`: every earlier layer, and the input, that layer i or a later
# one reads) and layer i's own output; every element at most 8 bytes (int64 / float64 codes, U).  So
# a batch of N holds at most  A = 8 * N * max_i (sum of live_i sizes + size of layer i)  bytes of
# activations -- the widest point of the network, not its depth.  Beside them: the weights, each once
# in its synapse call's dtype (at most 8 bytes: the codes engine's copies, `core.layer_arith`), plus
# the float64 copy of one layer's weights while it is converted (16 bytes per weight of the largest
# layer):  W = 8 * weights + 16 * largest layer's weights.  Bound = A + W.
# The factor on it: a synapse call reads its input converted to its own dtype and writes its output
# before it is added into U, and oneDNN may reorder both into its blocked layout: at most one more
# copy of each live activation and of the output, so the activations' part may double.  Hence
# peak - before <= SIM_BOUND_FACTOR * (A + W) + SIM_LIBRARY_MIB with SIM_BOUND_FACTOR = 2; the constant
# is for the libraries' pages that the first synapse calls map and the allocator's slack (measured:
# simulating one CIFAR ResNet-20 image raises a fresh process's peak by 7.5 MiB, 4x below it).
SIM_BOUND_FACTOR = 2
SIM_LIBRARY_MIB = 32


def check_simulate_bound(row: dict) -> str:
    """The simulate row's peak RSS increase against its bound: a line to print; SystemExit beyond it."""
    grew = row["peak_rss_simulate_mib"] - row["rss_before_simulate_mib"]
    bound = row["activations_bound_mib"] + row["weights_bound_mib"]
    allowed = SIM_BOUND_FACTOR * bound + SIM_LIBRARY_MIB
    line = (f"peak RSS +{grew:,.0f} MiB (from {row['rss_before_simulate_mib']:,.0f}) against the bound "
            f"A + W = {row['activations_bound_mib']:,.0f} + {row['weights_bound_mib']:,.0f} MiB "
            f"({grew / bound:.2f}x; allowed {SIM_BOUND_FACTOR}x + {SIM_LIBRARY_MIB} MiB = {allowed:,.0f} MiB); "
            f"int64 codes of the largest layer {row['largest_layer_codes_mib']:,.0f} MiB, "
            f"of all layers {row['all_layers_codes_mib']:,.0f} MiB")
    if grew > allowed:
        raise SystemExit(f"simulate exceeded its memory bound: {line}")
    return line


def simulate_bound_mib(graph, n: int) -> dict:
    """The activations A and weights W (MiB) that bound simulating a batch of n (comment above), and the
    int64 codes of the largest layer and of all layers (what a whole-network pass would hold)."""
    size = {layer.name: int(np.prod(layer.shape)) for layer in graph.layers}
    layers = graph.neuron_layers()
    last_read = {}
    for i, layer in enumerate(layers):
        for b in layer.branches:
            last_read[b.source] = i
    done, widest = [graph.input.name], 0
    for i, layer in enumerate(layers):
        live = sum(size[s] for s in done if last_read.get(s, -1) >= i)
        widest = max(widest, live + size[layer.name])
        done.append(layer.name)
    weights = [int(np.size(weighted_op(b.ops).weight)) for layer in layers for b in layer.branches]
    mib = 2 ** 20
    return {"activations_bound_mib": 8 * n * widest / mib,
            "weights_bound_mib": (8 * sum(weights) + 16 * max(weights)) / mib,
            "largest_layer_codes_mib": max(size.values()) * n * 8 / mib,
            "all_layers_codes_mib": sum(size.values()) * n * 8 / mib}


def simulate_peak(out_dir: Path, x: np.ndarray) -> dict:
    """In this (fresh) process: load the network, simulate x as one batch; peak RSS before / after,
    and its bound (`simulate_bound_mib`), in MiB."""
    from neurodeploy import api
    net = api.load(out_dir)
    before = peak_rss_mib()
    with Clock() as sim:
        api.simulate(net, x, batch_size=len(x))
    return {"simulate_batch": len(x), "simulate_cpu_s": sim.cpu, "rss_before_simulate_mib": before,
            "peak_rss_simulate_mib": peak_rss_mib(), **simulate_bound_mib(net.graph, len(x))}


def isolated(args) -> list[dict]:
    """Every (model, scheme) in its own process, then (--simulate) its simulation in another."""
    rows = []
    for name in args.models:
        for scheme in args.schemes:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, __file__, "--models", name, "--schemes", scheme, "--data", str(args.data),
                       "--chips", str(args.chips), "--json", f"{tmp}/row.json"]
                if args.simulate:
                    cmd += ["--save", f"{tmp}/net"]
                try:
                    subprocess.run(cmd, check=True, timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    rows.append({"model": name, "scheme": scheme, "refused": f"timeout after {args.timeout:g} s"})
                    print(f"{name} {scheme}: timeout after {args.timeout:g} s", flush=True)
                    continue
                (row,) = json.loads(Path(f"{tmp}/row.json").read_text())
                if args.simulate and "refused" not in row:
                    done = subprocess.run([sys.executable, __file__, "--simulate-saved", f"{tmp}/net",
                                           "--simulate", str(args.simulate), "--data", str(args.data)],
                                          check=True, capture_output=True, text=True, timeout=args.timeout)
                    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(f"{name} {scheme}: simulate {row['simulate_batch']} images in {row['simulate_cpu_s']:.1f} "
                          f"CPU s: {check_simulate_bound(row)}", flush=True)
                rows.append(row)
    return rows


def print_scaling(rows: list[dict]) -> None:
    """Per compiled (model, scheme): weights against front-end and compile CPU seconds and the compile's
    own peak RSS (--isolate), and each per million weights: does the cost grow linearly with them?"""
    done = [r for r in rows if "refused" not in r]
    if not done:
        return
    print(f"\n{'model':<14}{'scheme':<10}{'weights':>13}{'front end s':>13}{'compile s':>11}{'peak MiB':>10}"
          f"   per M weights: {'front s':>8}{'compile s':>10}{'peak MiB':>10}")
    for r in done:
        m = r["weights"] / 1e6
        print(f"{r['model']:<14}{r['scheme']:<10}{r['weights']:>13,}{r['front_end_cpu_s']:>13.1f}"
              f"{r['compile_cpu_s']:>11.1f}{r['peak_rss_mib']:>10,.0f}   {'':>15}{r['front_end_cpu_s'] / m:>8.2f}"
              f"{r['compile_cpu_s'] / m:>10.3f}{r['peak_rss_mib'] / m:>10.0f}", flush=True)


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
    ap.add_argument("--chips", type=chips_count, default="auto", help="chips available to the allocation (default auto: as many as needed)")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--isolate", action="store_true", help="each (model, scheme) in its own process: its own peak RSS")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per process with --isolate (default 1800)")
    ap.add_argument("--simulate", type=int, default=0, metavar="N",
                    help="with --isolate: also simulate N test images as one batch in a fresh process")
    ap.add_argument("--save", type=Path, help=argparse.SUPPRESS)           # --isolate's child: save the network
    ap.add_argument("--simulate-saved", type=Path, help=argparse.SUPPRESS)  # --simulate's child
    args = ap.parse_args(argv)
    if args.simulate_saved:
        from neurodeploy import api
        side = api.load(args.simulate_saved).input_shape[-1]
        x = images(args.data, "test", args.simulate)
        print(json.dumps(simulate_peak(args.simulate_saved, x if side == 32 else resized(x, side))))
        return []
    if args.isolate:
        rows = isolated(args)
        print_scaling(rows)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return rows
    train_x = images(args.data, "train", 256)
    rows = []
    print(f"{'model':<9}{'scheme':<10}{'front end':>15}{'compile':>15}{'/front':>8}{'allocation':>15}"
          f"{'structure':>15}{'cores':>7}{'weights':>11}{'synapses':>14}   (CPU s / wall s)")
    for name in args.models:
        model, calibration = build(name, train_x)
        example = torch.from_numpy(calibration[:1])
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
                       structure_cpu_s=st.cpu, cores=alloc["total_cores"], chips=alloc["chips"], weights=weights,
                       synapses=synapses)
            if args.save:
                from neurodeploy.compiler import save_artifact
                save_artifact(net, args.save)
            rows.append(row)
            print(f"{name:<9}{scheme:<10}{fe.cpu:>7.2f}/{fe.wall:<7.1f}{cc.cpu:>7.2f}/{cc.wall:<7.1f}"
                  f"{cc.cpu / fe.cpu:>8.2f}{al.cpu:>7.2f}/{al.wall:<7.1f}{st.cpu:>7.2f}/{st.wall:<7.1f}"
                  f"{alloc['total_cores']:>7}{weights:>11,}{synapses:>14,}   {alloc['chips']} chip(s)", flush=True)
        peak_mib = peak_rss_mib()
        for row in rows:
            if row["model"] == name:
                row["peak_rss_mib"] = peak_mib
        print(f"{name}: peak RSS of this process so far {peak_mib:,.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
