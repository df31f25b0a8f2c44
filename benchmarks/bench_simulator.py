"""Speed of the bit-accurate simulator against peers measured in the same run.

Peers, on the same compiled network and the same inputs:
- step-by-step: the same SNN simulated one time step at a time (one synapse call per plane,
  float64 everywhere, no plane batching) -- what a straightforward PyTorch SNN loop does;
- integer reference: the quantised ANN in numpy int64 (no time steps);
- onnxruntime: the float ANN (not an SNN; the cost floor of the model itself).
Outputs are checked to be identical where they must be.

    python benchmarks/bench_simulator.py [--model models/digits_resnet_qcfs.onnx] [--repeat 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurodeploy.compiler import compile_model
from neurodeploy.ir import neurons as nrn
from neurodeploy.reports.verify import run_onnx
from neurodeploy.schemes.bitplane import kernel as bp
from neurodeploy.sim import engine
from neurodeploy.sim.reference import reference
from neurodeploy.ir.synapse_ops import apply_ops


def step_by_step(net, x: np.ndarray) -> np.ndarray:
    """The same SNN, one time step and one synapse call at a time, in float64."""
    xt = torch.as_tensor(x)
    planes = {net.input.name: bp.encode_planes(engine.input_codes(net.input, xt), net.input.neuron.n_steps)}
    u = None
    for layer in net.neuron_layers():
        u = 0
        for b in layer.branches:
            src = planes[b.source].to(torch.float64)
            weights = {i: torch.as_tensor(np.asarray(op.weight), dtype=torch.float64)
                       for i, op in enumerate(b.ops) if hasattr(op, "weight")}
            acc = 0
            for t in range(src.shape[1]):                      # accumulate plane by plane
                acc = 2 * acc + apply_ops(b.ops, src[:, t], weights)
            u = u + acc * float(1 << b.weight_exp)
        u = u + torch.as_tensor(layer.bias, dtype=torch.float64).reshape((1, -1) + (1,) * (u.ndim - 2))
        if isinstance(layer.neuron, nrn.Readout):
            break
        planes[layer.name] = bp.emit(u.round().to(torch.int64), layer.neuron)
    return (u * net.output.neuron.output_scale).to(torch.float32).numpy().reshape(len(x), -1)


def timed(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/digits_resnet_qcfs.onnx")
    ap.add_argument("--input", default="models/digits_test_x.npy")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine more threads make timings erratic)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = compile_model(args.model, "loihi2", "bitplane")
    x = np.load(args.input)
    n = len(x)
    t_sim, (y_sim, _) = timed(lambda: engine.simulate(net, x, batch_size=512), args.repeat)
    t_step, y_step = timed(lambda: step_by_step(net, x), args.repeat)
    t_ref, (_, u_ref) = timed(lambda: reference(net, x), args.repeat)
    t_ort, _ = timed(lambda: run_onnx(args.model, x, 512), args.repeat)
    y_ref = (u_ref.reshape(n, -1) * net.output.neuron.output_scale).astype(np.float32)
    assert np.array_equal(y_sim, y_step), "step-by-step simulation disagrees"
    assert np.array_equal(y_sim, y_ref), "integer reference disagrees"
    print(f"model {args.model}, {n} samples, latency {net.meta['latency_steps']} steps, best of {args.repeat}")
    print(f"{'engine':<34}{'samples/s':>12}{'speed vs ours':>15}")
    for name, t in (("neurodeploy simulator (bit-exact)", t_sim), ("step-by-step float64 SNN loop", t_step),
                    ("integer reference ANN (numpy)", t_ref), ("float ANN (onnxruntime)", t_ort)):
        print(f"{name:<34}{n / t:>12.0f}{t_sim / t:>14.2f}x")
    print("outputs identical: simulator == step-by-step == integer reference")


if __name__ == "__main__":
    main()
