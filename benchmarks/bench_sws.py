#!/usr/bin/env python
"""Stepwise weighted spikes (`sws`, TSA neurons): quantised ANN vs SNN over Tc and Ts, plus the ablation.

    python benchmarks/bench_sws.py [--models digits_qcfs digits_resnet_qcfs] [--tc 4 5 6 8] [--ts 0 1 2]
                                   [--state-bound static calibrated] [--json out.json]

For every model (sklearn digits test split, 450 samples) and every (Tc, Ts):
* **Q-ANN** -- accuracy of the integer quantised ANN the scheme compiles (every activation
  re-quantised to 2^Tc - 1 levels, 8-bit weights; `schemes.sws.kernel.reference`),
* **SNN** -- accuracy of the stepwise-weighted-spike simulation (`schemes.sws.kernel.run_batch`),
* **agree** -- SNN vs quantised-ANN prediction agreement,
* **code mm** -- fraction of hidden-layer activations whose decoded digits differ from the
  quantised ANN's codes (conversion error),
* **T_inf** -- latency Tc + Ts*L in steps, **OPF** -- operations per frame (Eq. 10:
  amplifications + fan-out x spikes, encoder digits included),
* **bound** -- how the threshold unit D was sized against Loihi 2's 24-bit state: `static`
  (worst case, no input can overflow) or `calibrated` (membrane peak over the calibration
  samples x 4), **min D** -- the smallest D of the hidden layers (coarsest weight/bias steps),
  **ovf** -- (sample, neuron) state overflows on the test split (0 means the SNN stayed exact).
The QDQ model gets its calibration samples too (they only size D; its quantisers are its own).
Then the paper's ablation (Fig. 5b) at Tc = 8: threshold theta vs theta/2, Ts = 0/1/2.
`digits_qat` (models/train_digits_qat.py) is the paper's own setting: a PyTorch-QAT 8-bit model
(QDQ ONNX) whose quantisers are used as they are (no re-quantisation), so only Tc = 8 applies.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurodeploy.errors import UnsupportedError  # noqa: E402
from neurodeploy.frontends.onnx import load_onnx  # noqa: E402
from neurodeploy.reports.verify import run_onnx  # noqa: E402
from neurodeploy.schemes import CompileOptions  # noqa: E402
from neurodeploy.schemes.sws import Sws  # noqa: E402
from neurodeploy.sim import engine  # noqa: E402
from neurodeploy.schemes.sws import costs as sws_costs  # noqa: E402
from neurodeploy.schemes.sws import kernel as sws  # noqa: E402
from neurodeploy.target import load_target  # noqa: E402


def data(model: str):
    pre = ROOT / "models" / model.replace("_qcfs", "").replace("_qat", "")
    return np.load(f"{pre}_test_x.npy"), np.load(f"{pre}_test_y.npy"), np.load(f"{pre}_calib_x.npy")


def run_one(model, graph, x, y, calib, tc, ts, full=False, with_ops=True, bound="calibrated"):
    net = Sws().compile(graph, load_target("loihi2"),
                        CompileOptions(calibration=calib, coding_steps=tc, silent_steps=ts, full_threshold=full,
                                       state_bound=bound))
    overflows: dict = {}
    r = sws.run_batch(engine.prepare(net), x, overflows=overflows)
    codes, u = sws.reference(net, x)
    p_q, p_s = u.reshape(len(x), -1).argmax(1), r.output.numpy().argmax(1)
    hidden = [l.name for l in net.neuron_layers() if not l.is_readout]
    mm = sum(int(np.count_nonzero(r.codes[n].numpy() != codes[n])) for n in hidden)
    el = sum(int(codes[n].size) for n in hidden)
    ops = sws_costs.ops_per_frame(net, x) if with_ops else None
    units = [int(net.meta["quantisation"][n]["unit"]) for n in hidden]
    return {"model": model, "Tc": tc, "Ts": ts, "threshold": "theta" if full else "theta/2",
            "state_bound": bound, "min_unit": min(units), "overflows": int(sum(overflows.values())),
            "q_ann": float(np.mean(p_q == y)), "snn": float(np.mean(p_s == y)),
            "agree": float(np.mean(p_q == p_s)), "code_mismatch": mm / el,
            "latency": net.meta["latency_steps"], "opf": None if ops is None else ops.total,
            "opf_amp": None if ops is None else ops.amplifications}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["digits_qcfs", "digits_resnet_qcfs", "digits_qat"])
    ap.add_argument("--tc", nargs="+", type=int, default=[4, 5, 6, 8])
    ap.add_argument("--ts", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--state-bound", nargs="+", default=["static", "calibrated"], choices=["static", "calibrated"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rows, ablation = [], []
    t0 = time.time()
    for model in args.models:
        x, y, calib = data(model)
        path = ROOT / "models" / f"{model}.onnx"
        graph = load_onnx(path)
        fl = float(np.mean(run_onnx(path, x).argmax(1) == y))
        print(f"\n{model}: float (onnxruntime) accuracy {fl*100:.2f}%  ({len(x)} test samples)")
        print(f"  {'Tc':>3} {'Ts':>3} {'bound':>10} {'min D':>6} {'Q-ANN':>7} {'SNN':>7} {'agree':>7} {'code mm':>9} "
              f"{'ovf':>4} {'T_inf':>6} {'OPF':>10}")
        for tc in args.tc:
            for ts in args.ts:
                for bound in args.state_bound:
                    try:
                        r = run_one(model, graph, x, y, calib, tc, ts, bound=bound)
                    except UnsupportedError:          # a QDQ model's 8-bit codes need Tc = 8
                        print(f"  {tc:>3} {ts:>3}   (8-bit QDQ model: Tc = 8 only)")
                        break
                    r["float"] = fl
                    rows.append(r)
                    print(f"  {tc:>3} {ts:>3} {bound:>10} {r['min_unit']:>6} {r['q_ann']*100:6.2f}% {r['snn']*100:6.2f}% "
                          f"{r['agree']*100:6.2f}% {r['code_mismatch']*100:8.3f}% {r['overflows']:>4} {r['latency']:>6} "
                          f"{r['opf']:>10.0f}")
        print(f"  ablation (Tc = 8, {args.state_bound[-1]} state bound): SNN accuracy [agreement with Q-ANN]")
        print(f"  {'threshold':>10} " + " ".join(f"{'Ts=' + str(ts):>17}" for ts in (0, 1, 2)))
        for full in (True, False):
            cells = []
            for ts in (0, 1, 2):
                r = run_one(model, graph, x, y, calib, 8, ts, full=full, with_ops=False, bound=args.state_bound[-1])
                ablation.append(r)
                cells.append(f"{r['snn']*100:6.2f}% [{r['agree']*100:6.2f}%]")
            print(f"  {'theta' if full else 'theta/2':>10} " + " ".join(f"{c:>17}" for c in cells))
    print(f"\n({time.time() - t0:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"sweep": rows, "ablation": ablation}, indent=1))


if __name__ == "__main__":
    main()
