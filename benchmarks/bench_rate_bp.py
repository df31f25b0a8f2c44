#!/usr/bin/env python
"""BPTT vs rate-based backprop (rate_M) on a small LIF CNN on sklearn digits: memory, time, accuracy.

    python benchmarks/bench_rate_bp.py [--device cpu|cuda] [--epochs 15] [--seeds 2] [--with-rate-s]
                                       [--timesteps 2 4 6 8] [--decays 0.2 0.5 0.8 1.0] [--decay-T 6]

For every T, both methods are measured in the same run, on the same model
(``models/train_digits_lif.py``'s conv-BN-LIF x2 CNN, Yu et al.'s neuron: soft
reset, v >= v_th, lambda=0.2 unless ``--reset zero``), batch 64:

* **saved** -- training memory that depends on the method, counted exactly: the
  bytes of the distinct tensors autograd saves for the backward (parameters
  excluded; ``torch.autograd.graph.saved_tensors_hooks``) plus the rate-BP
  records kept until the backward (per-neuron rate and eligibility sums, BN
  statistics).  This is what BPTT multiplies by T.  It leaves out what both
  methods hold alike (weights, gradients, optimizer state, the input batch) and
  transient workspace.
* **cuda peak** (``--device cuda`` only) -- ``torch.cuda.max_memory_allocated``
  during one training step minus the allocation before it: everything the step
  allocates, transient buffers included.  (Max RSS of a CPU process is not
  used: for a model this small it is the ~300 MB of the torch runtime.)
* **ms/it** -- median wall time of a training iteration (forward(s), backward,
  Adam step; ``cuda.synchronize`` around it on GPU) over ``--iters`` iterations
  after warm-up.
* **acc** -- test accuracy (75/25 split, seed 0) after ``--epochs`` epochs of
  ``neurodeploy.train.fit`` (Adam 1e-2, cosine), mean over ``--seeds`` seeds.

Then the decay sweep: test accuracy for lambda in ``--decays`` at T = ``--decay-T``.
``--with-rate-s`` adds ``rate_S`` (spike phase one step at a time, per-step BN
statistics) to both tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "models"))
from train_digits_lif import build_model  # noqa: E402

from neurodeploy.train.fit import fit, predict  # noqa: E402
from neurodeploy.train.rate_bp import SavedTensorMeter, time_major, train_step  # noqa: E402

def load(path: str | None):
    if path:
        d = np.load(path)
        return d["xtr"], d["ytr"], d["xte"], d["yte"]
    from neurodeploy.train.data import digits
    return digits(0)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(method, T, neuron, data, dev, iters, seed=0):
    """(saved bytes, cuda peak bytes or None, median ms per iteration) for one configuration."""
    xtr, ytr = data[0], data[1]
    torch.manual_seed(seed)
    model = build_model(neuron=neuron).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    lf = nn.CrossEntropyLoss()
    xb, yb = torch.from_numpy(xtr[:64]).to(dev), torch.from_numpy(ytr[:64]).to(dev)

    def it(meter=None):
        opt.zero_grad(set_to_none=True)
        _, _, held = train_step(model, time_major(xb, T), yb, lf, method, meter)
        opt.step()
        return held

    for _ in range(3):  # warm-up; also creates grads and Adam state so the peak below is steady-state
        it()
    meter = SavedTensorMeter(model)
    held = it(meter)
    saved = meter.nbytes + held
    cuda_peak = None
    if dev.type == "cuda":
        sync(dev)
        opt.zero_grad(set_to_none=True)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        train_step(model, time_major(xb, T), yb, lf, method)
        opt.step()
        sync(dev)
        cuda_peak = torch.cuda.max_memory_allocated(dev) - base
    times = []
    for _ in range(iters):
        sync(dev)
        t0 = time.perf_counter()
        it()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return saved, cuda_peak, 1e3 * statistics.median(times)


def accuracy(method, T, neuron, data, dev, epochs, seeds):
    xtr, ytr, xte, yte = data
    accs = []
    for s in range(seeds):
        torch.manual_seed(s)
        model = build_model(neuron=neuron).to(dev)
        fit(model, (xtr, ytr), epochs=epochs, timesteps=T, method=method, lr=1e-2, weight_decay=1e-4,
            progress=False, seed=s, measure_memory=False)
        accs.append(float((predict(model, xte, T).argmax(1) == yte).mean()))
    return float(np.mean(accs)), accs


def kib(b):
    return f"{b / 1024:.0f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timesteps", type=int, nargs="+", default=[2, 4, 6, 8])
    ap.add_argument("--decays", type=float, nargs="+", default=[0.2, 0.5, 0.8, 1.0])
    ap.add_argument("--decay-T", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--reset", default="subtract", choices=["subtract", "zero"])
    ap.add_argument("--with-rate-s", action="store_true", help="also measure rate_S (single-step spike phase)")
    ap.add_argument("--data", default=None, help="npz with xtr, ytr, xte, yte (default: sklearn digits)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    data = load(args.data)
    neuron = {"reset": args.reset, "strict": False}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"# device: {name}; torch {torch.__version__}; LIF lambda=0.2 reset={args.reset}; batch 64; "
          f"{args.epochs} epochs x {args.seeds} seeds", flush=True)
    res = {"config": vars(args), "device": name, "timesteps": {}, "decay": {}}

    methods = ("bptt", "rate_M", "rate_S") if args.with_rate_s else ("bptt", "rate_M")
    cuda = dev.type == "cuda"
    cols = ["T", "method", "saved KiB", "x bptt"] + (["cuda KiB", "x bptt"] if cuda else []) + \
        ["ms/it", "x bptt", "test acc"]
    rows = []
    for T in args.timesteps:
        r = {}
        for m in methods:
            saved, cpk, ms = measure(m, T, neuron, data, dev, args.iters)
            acc, accs = accuracy(m, T, neuron, data, dev, args.epochs, args.seeds)
            r[m] = {"saved_bytes": saved, "cuda_peak_bytes": cpk, "ms_per_iter": ms, "acc": acc, "accs": accs}
        res["timesteps"][T] = r
        b = r["bptt"]
        for m in methods:
            q = r[m]
            row = [str(T), m, kib(q["saved_bytes"]), f"{q['saved_bytes'] / b['saved_bytes']:.2f}"]
            if cuda:
                row += [kib(q["cuda_peak_bytes"]), f"{q['cuda_peak_bytes'] / b['cuda_peak_bytes']:.2f}"]
            row += [f"{q['ms_per_iter']:.2f}", f"{q['ms_per_iter'] / b['ms_per_iter']:.2f}", f"{q['acc']:.4f}"]
            rows.append(row)
        print("  done T =", T, flush=True)

    drows = []
    for lam in args.decays:
        nd = dict(neuron, decay=lam)
        r = {m: accuracy(m, args.decay_T, nd, data, dev, args.epochs, args.seeds) for m in methods}
        res["decay"][lam] = {m: {"acc": a, "accs": accs} for m, (a, accs) in r.items()}
        drows.append([f"{lam:g}"] + [f"{r[m][0]:.4f}" for m in methods] +
                     [f"{r['rate_M'][0] - r['bptt'][0]:+.4f}"])

    def table(header, body):
        w = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        print(" | ".join(h.rjust(n) for h, n in zip(header, w)))
        print("-|-".join("-" * n for n in w))
        for row in body:
            print(" | ".join(x.rjust(n) for x, n in zip(row, w)))

    print("\n## memory / time / accuracy vs T (x bptt = ratio to BPTT at the same T)")
    table(cols, rows)
    print(f"\n## decay lambda at T={args.decay_T}: test accuracy")
    table(["lambda", *methods, "rate_M - bptt"], drows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
