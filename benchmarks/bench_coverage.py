#!/usr/bin/env python
"""Coverage of torchvision's architectures: which compile, which are exact, and why the rest are refused.

    python benchmarks/bench_coverage.py [--archs resnet18 ...] [--sizes 32 224]
        [--exporters onnx-ts onnx-dynamo pt2 module] [--schemes bitplane sws rate sdnn]
        [--timeout 300] [--json coverage.json] [--markdown coverage.md]

Each architecture is built by torchvision with random weights from seed 0 and 10 classes (plus
`resnet18_cifar`: ResNet-18 with the stem CIFAR code gives it, a 3x3 stride-1 convolution and no
max pool; and `vit_tiny`: torchvision's VisionTransformer class with 2 layers, 2 heads, width 64 and
4x4 patches at 32x32 / 16x16 at 224x224, since vit_b_16's 86 M weights are too large here), its
BatchNorm statistics measured on real CIFAR-10 images (`cifar_nets.calibrate_batchnorm`; images
bilinearly resized to the input size and normalised by CIFAR's mean/std, so the inputs are signed
as in real use), and every ReLU swapped for QCFS(7) by `neurodeploy.nn.relu_to_qcfs` on 64 of
those images.  Where `relu_to_qcfs` refuses (a network without ReLU modules, or one calling
`F.relu`), the network keeps its own activations and the cell is marked with a dagger.  It is then
handed to neurodeploy four ways:
* `onnx-ts`     -- `torch.onnx.export(dynamo=False)` (the TorchScript exporter), then the .onnx file;
* `onnx-dynamo` -- `torch.onnx.export(dynamo=True)`, then the .onnx file;
* `pt2`         -- `torch.export.export` + `torch.export.save`, then the .pt2 file;
* `module`      -- `neurodeploy.compile(module, example)` (the PyTorch front end in memory);
and compiled per scheme with `calibration=` the 64 images and `chips="auto"`, then `verify`d on a few
CIFAR test images against the model it was compiled from.  A cell reads
* `exact` -- compiled, and the SNN equals the integer reference on every layer (0 conversion
  mismatches) on those images;
* `compiles (...)` -- compiled, not exact: the figure is the SNN's agreement with the quantised ANN;
* `refused: ...` -- the first line of the NeurodeployError (the exporter's or relu_to_qcfs's
  error where those fail first);
* `timeout after N s` -- the cell (run in its own process) passed `--timeout`.
Schemes: bitplane, sws, rate and sdnn convert a trained ANN; reverb (binary ±1 weights, trained as
a ReverB SNN) and cuba (a trained LIF SNN, from NIR) have no ANN to convert, so they are n/a here.

`--json FILE` keeps every cell measured so far: a run adds its cells to those already in FILE
(same cell: replaced), so the grid can be measured in parts; `--markdown FILE` writes the table of
all cells in the JSON (`--table-only`: without measuring any).  `--cell ARCH SIZE EXPORTER SCHEME` runs one cell in this process (what the
grid's subprocesses do) and prints its JSON.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import io
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_data  # noqa: E402

DEFAULT_DATA = bench_data.cifar_subset()
ARCHS = ["resnet18", "resnet18_cifar", "resnet50", "vgg11_bn", "vgg16_bn", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0",
         "densenet121", "shufflenet_v2_x0_5", "efficientnet_b0", "regnet_x_400mf", "vit_tiny"]
EXPORTERS = ["onnx-ts", "onnx-dynamo", "pt2", "module"]
SCHEMES = ["bitplane", "sws", "rate", "sdnn"]
NOT_APPLICABLE = {"reverb": "needs a ReverB-trained SNN (binary ±1 weights), not a converted ANN",
                  "cuba": "needs a trained LIF SNN (NIR), not a converted ANN"}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
N_CALIBRATION = 64
N_VERIFY = {32: 4, 224: 2}     # test images per cell: enough to show a mismatch, cheap at 224x224


# --- one cell (in its own process) --------------------------------------------------------------
def images(path: Path, split: str, n: int, size: int):
    """n CIFAR images of the split, resized to size x size (bilinear), normalised by mean/std: (N, 3, size, size)."""
    import numpy as np
    import torch
    from cifar_nets import cifar_images
    x = torch.from_numpy(cifar_images(path, split, n))
    if size != 32:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    with np.load(path) as d:
        y = d[f"{split}_y"][:n].astype(np.int64)
    return np.ascontiguousarray(x.numpy(), dtype=np.float32), y


def build(arch: str, size: int, x_cal):
    """torchvision's arch, 10 classes, seed 0, BatchNorm calibrated, ReLUs -> QCFS(7); returns (model, note)."""
    import torch
    import torchvision
    from cifar_nets import calibrate_batchnorm

    from neurodeploy.nn import relu_to_qcfs
    torch.manual_seed(0)
    if arch == "vit_tiny":        # torchvision's VisionTransformer class at a small configuration
        patch = 4 if size == 32 else 16
        model = torchvision.models.VisionTransformer(image_size=size, patch_size=patch, num_layers=2, num_heads=2,
                                                     hidden_dim=64, mlp_dim=128, num_classes=10)
    elif arch == "resnet18_cifar":    # ResNet-18 as CIFAR code adapts it: 3x3 stride-1 stem, no max pool
        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    else:
        model = torchvision.models.get_model(arch, weights=None, num_classes=10)
    x = torch.from_numpy(x_cal)
    calibrate_batchnorm(model, x)
    try:
        relu_to_qcfs(model, 7, x)
    except ValueError as exc:          # no ReLU module, or a functional F.relu: keep the model's own activations
        return model.eval(), f"relu_to_qcfs: {str(exc).splitlines()[0]}"
    return model.eval(), None


def export(model, example, exporter: str, path: Path) -> None:
    import torch
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "pt2":
            torch.export.save(torch.export.export(model, (example,)), str(path))
        else:
            torch.onnx.export(model, (example,), str(path), dynamo=exporter == "onnx-dynamo", input_names=["x"])


def first_line(exc: BaseException, folder: Path | None = None) -> str:
    """The error's first line, the exported files' temporary folder left out of the paths it names."""
    text = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
    text = (text.strip().splitlines() or [type(exc).__name__])[0]
    return text.replace(f"{folder}/", "") if folder else text


def run_cell(arch: str, size: int, exporter: str, scheme: str, data: Path, cache: Path | None) -> dict:
    """Build, export, compile and verify one cell; the dict of its outcome."""
    from neurodeploy.reproducible import pin_cpu_numerics
    pin_cpu_numerics()
    import torch

    from neurodeploy import api
    from neurodeploy.errors import NeurodeployError
    t0 = time.perf_counter()
    cell = {"arch": arch, "size": size, "exporter": exporter, "scheme": scheme}
    x_cal, _ = images(data, "train", N_CALIBRATION, size)
    x_test, y_test = images(data, "test", N_VERIFY[size], size)
    model, cell["note"] = build(arch, size, x_cal)
    example = torch.from_numpy(x_cal[:1])
    source = model
    if exporter != "module":
        cache = cache or Path(tempfile.mkdtemp())
        source = cache / f"{arch}-{size}-{exporter}{'.pt2' if exporter == 'pt2' else '.onnx'}"
        if not source.exists():       # one export per (arch, size, exporter), shared by the schemes
            try:
                export(model, example, exporter, source.with_suffix(".tmp" + source.suffix))
            except Exception as exc:  # noqa: BLE001 -- the exporter's own failure is the cell's outcome
                return {**cell, "status": "refused", "reason": f"export failed: {first_line(exc)}",
                        "seconds": time.perf_counter() - t0}
            source.with_suffix(".tmp" + source.suffix).rename(source)
        source = str(source)
    try:
        t1 = time.perf_counter()
        net = api.compile(source, example if exporter == "module" else None, scheme=scheme,
                          calibration=x_cal, chips="auto")
        cell["compile_seconds"] = time.perf_counter() - t1
        alloc = net.graph.meta["allocation"]
        cell.update(chips=alloc.get("chips"), cores=alloc["total_cores"])
        r = api.verify(net, source, x_test, y_test)
    except NeurodeployError as exc:
        return {**cell, "status": "refused", "reason": first_line(exc, cache), "seconds": time.perf_counter() - t0,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    mismatches = sum(int(l["conversion_mismatches"] or 0) for l in r["layers"])
    cell.update(status="exact" if mismatches == 0 else "compiles", conversion_mismatches=mismatches,
                agreement=r["agreement"]["snn_vs_quantised_ann"], seconds=time.perf_counter() - t0,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return cell


# --- the grid -----------------------------------------------------------------------------------
def key(cell: dict) -> tuple:
    return cell["arch"], int(cell["size"]), cell["exporter"], cell["scheme"]


def run_in_subprocess(arch, size, exporter, scheme, args, cache: Path) -> dict:
    cmd = [sys.executable, __file__, "--cell", arch, str(size), exporter, scheme, "--data", str(args.data),
           "--cache", str(cache)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"arch": arch, "size": size, "exporter": exporter, "scheme": scheme, "status": "timeout",
                "reason": f"timeout after {args.timeout:g} s", "seconds": time.perf_counter() - t0}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    err = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"arch": arch, "size": size, "exporter": exporter, "scheme": scheme, "status": "crashed",
            "reason": f"exit {done.returncode}: {err}", "seconds": time.perf_counter() - t0}


def short_reason(reason: str) -> str:
    """A refusal as a table cell: without the model file or module it starts with, the scheme (the
    row names it) and the hint after " -- " (the JSON keeps the whole line)."""
    reason = re.sub(r"^(\S+\.(onnx|pt2)|\w+ \(torch\.nn\.Module\)): ", "", reason)
    reason = re.sub(r" \(scheme '\w+'\)", "", reason.split(" -- ")[0])
    return reason.replace("|", "/")


def label(cell: dict) -> str:
    dagger = " †" if cell.get("note") else ""
    if cell["status"] == "exact":
        return f"exact ({cell['chips']} chip{'s' if cell['chips'] != 1 else ''}){dagger}"
    if cell["status"] == "compiles":
        return f"compiles ({100 * cell['agreement']:.0f}% agree, {cell['conversion_mismatches']} mism.){dagger}"
    if cell["status"] != "refused":
        return cell["reason"] + dagger
    reason = short_reason(cell["reason"])
    return f"refused: {reason[:120]}{'…' if len(reason) > 120 else ''}{dagger}"


def markdown(cells: list[dict]) -> str:
    cells = sorted(cells, key=lambda c: (ARCHS.index(c["arch"]) if c["arch"] in ARCHS else 99, c["size"],
                                         SCHEMES.index(c["scheme"]) if c["scheme"] in SCHEMES else 99,
                                         EXPORTERS.index(c["exporter"])))
    exporters = [e for e in EXPORTERS if any(c["exporter"] == e for c in cells)]
    rows = {}
    for c in cells:
        rows.setdefault((c["arch"], c["size"], c["scheme"]), {})[c["exporter"]] = label(c)
    compiled = sum(c["status"] in ("exact", "compiles") for c in cells)
    exact = sum(c["status"] == "exact" for c in cells)
    out = [f"{compiled} of {len(cells)} cells compile, {exact} exact "
           f"({sum(c['status'] == 'timeout' for c in cells)} timed out).", "",
           "| architecture | input | scheme | " + " | ".join(exporters) + " |",
           "|---|---|---|" + "---|" * len(exporters)]
    for (arch, size, scheme), by in rows.items():
        out.append(f"| {arch} | 3×{size}×{size} | {scheme} | " + " | ".join(by.get(e, "–") for e in exporters) + " |")
    kinds = collections.Counter(re.sub(r"^(node|module) '[^']*' \([^)]*\)( at \S+)?: ", "", short_reason(c["reason"]))[:90]
                                for c in cells if c["status"] == "refused")
    out += ["", "Refusals by reason: " + "; ".join(f"{n} × {why}" for why, n in kinds.most_common()) + "."]
    notes = sorted({f"{c['arch']}: {c['note']}" for c in cells if c.get("note")})
    if notes:
        out += ["", "† the network keeps its own activations (no QCFS swap): " + "; ".join(notes)]
    out += ["", "n/a: " + "; ".join(f"{s} {why}" for s, why in NOT_APPLICABLE.items()) + "."]
    return "\n".join(out) + "\n"


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS, metavar="ARCH")
    ap.add_argument("--sizes", nargs="+", type=int, default=[32], choices=sorted(N_VERIFY))
    ap.add_argument("--exporters", nargs="+", default=EXPORTERS, choices=EXPORTERS)
    ap.add_argument("--schemes", nargs="+", default=["bitplane"], choices=SCHEMES)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per cell (default 300)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIFAR-10 .npz (train_x/y, test_x/y)")
    ap.add_argument("--json", type=Path, help="cells measured so far: this run's cells are added / replaced")
    ap.add_argument("--markdown", type=Path, help="write the table of every cell in --json (or of this run)")
    ap.add_argument("--table-only", action="store_true", help="measure nothing: write --markdown from --json")
    ap.add_argument("--cell", nargs=4, metavar=("ARCH", "SIZE", "EXPORTER", "SCHEME"), help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cell:
        arch, size, exporter, scheme = args.cell
        print(json.dumps(run_cell(arch, int(size), exporter, scheme, args.data, args.cache)))
        return []
    known = {key(c): c for c in json.loads(args.json.read_text())} if args.json and args.json.exists() else {}
    grid = [] if args.table_only else \
        [(a, s, e, sc) for s in args.sizes for sc in args.schemes for a in args.archs for e in args.exporters]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{len(grid)} cells, {args.timeout:g} s each at most ({started})", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        for i, (arch, size, exporter, scheme) in enumerate(grid, 1):
            cell = run_in_subprocess(arch, size, exporter, scheme, args, Path(cache))
            known[key(cell)] = cell
            print(f"[{i}/{len(grid)}] {arch} {size} {exporter} {scheme}: {label(cell)}  "
                  f"({cell['seconds']:.0f} s)", flush=True)
            if args.json:          # after every cell: an interrupted run keeps what it measured
                args.json.write_text(json.dumps(sorted(known.values(), key=key), indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(list(known.values())))
    return list(known.values())


if __name__ == "__main__":
    main()
