"""Our bit-accurate simulator vs Lava's CPU simulation (fixed_pt models) on one compiled network.

Both run the same compiled `bitplane` network in the same process.  Ours runs every test
sample (best of --repeat); Lava, which runs each process in a forked OS process and
exchanges messages every time step, runs only --lava-samples of them.  For Lava we time two
runs (1 sample and N samples) and report both the end-to-end rate (compile + run, N samples)
and the marginal rate (N-1 samples / extra time), which excludes Lava's fixed compile and
process start-up cost.  Readout states, outputs and every layer's spikes are checked to be
identical on the samples both ran.

    python benchmarks/bench_lava.py [--model models/digits_qcfs.onnx] [--lava-samples 10]
    python benchmarks/bench_lava.py --scheme sws [--model models/digits_resnet_qcfs.onnx]
    python benchmarks/bench_lava.py --scheme reverb [--payload-bits 16]   # models/digits_reverb.pt

With --scheme sws the --model (default digits_qcfs.onnx) is compiled with scheme="sws"
(Tc = 8, Ts = 2, calibrated state bound from models/digits_calib_x.npy); Lava pipelines the
frames in one network (schemes/sws/lava/) and every layer's codes are checked identical.
With --scheme reverb the network is the trained ReverB CNN (models/digits_reverb.pt, T from
its .json) compiled with scheme="reverb"; Lava runs its samples back to back in one network
(schemes/reverb/lava/) and every layer's payload trains are checked identical.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neurodeploy.backends.lava import ensure_lava, plan_network, run_lava  # noqa: E402
from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.schemes.bitplane import kernel as bp  # noqa: E402
from neurodeploy.sim.engine import prepare, run_batch, simulate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "digits_qcfs.onnx"))
    ap.add_argument("--data", default=None, help="test inputs .npy (default: models/<prefix>_test_x.npy)")
    ap.add_argument("--lava-samples", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for our simulator (default 1: stable timings on a shared machine)")
    ap.add_argument("--scheme", choices=["bitplane", "sws", "reverb"], default="bitplane")
    ap.add_argument("--payload-bits", type=int, default=16, help="reverb: graded-spike payload width")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.scheme == "reverb":
        return bench_reverb(args)
    if args.scheme == "sws":
        return bench_sws(args)

    lava_version = ensure_lava()
    model = Path(args.model)
    x = _test_inputs(args, model)
    graph = compile_model(model, "loihi2", "bitplane")
    plan = plan_network(graph)
    n_lava = max(2, min(args.lava_samples, len(x)))
    print(f"model {model.name}: {len(graph.layers)} layers, sample period {plan.period} Lava steps; "
          f"lava-nc {lava_version}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs")

    # ours: all samples, best of --repeat after two untimed warm-up passes over the same
    # batches (torch's first calls on new shapes are much slower)
    for _ in range(2):
        simulate(graph, x)
    ours_t, ours_out = float("inf"), None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours_out, _ = simulate(graph, x)
        ours_t = min(ours_t, time.perf_counter() - t0)
    ours_rate = len(x) / ours_t

    # Lava: 1 sample, then n_lava samples
    one = run_lava(graph, x[:1], record_planes=False)
    res = run_lava(graph, x[:n_lava])
    e2e_rate = n_lava / res.total_seconds
    marginal = (n_lava - 1) / max(res.total_seconds - one.total_seconds, 1e-9)

    # identical results on the samples both ran
    sim = run_batch(prepare(graph), x[:n_lava])
    same_state = np.array_equal(res.readout_state, sim.output_state.numpy())
    same_out = np.array_equal(res.outputs, ours_out[:n_lava]) and np.array_equal(res.outputs, sim.output.numpy())
    same_spikes = all(np.array_equal(res.planes[name], bp.encode_planes(sim.codes[name], p.shape[1]).numpy())
                      for name, p in res.planes.items())

    print(f"ours  (neurodeploy.sim): {len(x)} samples in {ours_t:.3f} s  -> {ours_rate:10.1f} samples/s")
    print(f"lava  (Loihi2SimCfg fixed_pt): {n_lava} samples in {res.total_seconds:.2f} s end-to-end "
          f"(run incl. compile {res.run_seconds:.2f} s, {res.steps} steps) -> {e2e_rate:8.3f} samples/s; "
          f"marginal {marginal:8.3f} samples/s ({1 / marginal / plan.period * 1e3:.2f} ms/step)")
    print(f"speed-up of ours: {ours_rate / e2e_rate:,.0f}x end-to-end, {ours_rate / marginal:,.0f}x marginal")
    print(f"identical on {n_lava} samples: readout state {same_state}, outputs {same_out}, "
          f"spikes of every layer {same_spikes}")
    ok = same_state and same_out and same_spikes
    assert ok, "Lava and neurodeploy.sim disagree"
    return 0


def _best_of(fn, repeat: int) -> float:
    """Best wall time of `repeat` calls after two untimed warm-up calls."""
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _test_inputs(args, model: Path) -> np.ndarray:
    return np.load(Path(args.data) if args.data else model.with_name(model.stem.replace("_qcfs", "") + "_test_x.npy"))


def _ours_vs_lava(label: str, x: np.ndarray, n_lava: int, ours, lava, identical, repeat: int) -> int:
    """Time `ours(x)` (all samples, best of `repeat`) and `lava(x[:n])` (one untimed warm-up run,
    then 1 and n_lava samples: end-to-end and marginal rates), print the ratios, and assert that
    every check in `identical(lava_result)` ({what: bool}) holds."""
    ours_t = _best_of(lambda: ours(x), repeat)
    ours_rate = len(x) / ours_t
    lava(x[:1])                                   # untimed: the first Lava run pays imports and forks
    one = lava(x[:1])
    res = lava(x[:n_lava])
    e2e_rate = n_lava / res.total_seconds
    marginal = (n_lava - 1) / max(res.total_seconds - one.total_seconds, 1e-9)
    same = identical(res)
    print(f"ours  ({label}): {len(x)} samples in {ours_t:.3f} s -> {ours_rate:10.1f} samples/s")
    print(f"lava  (Loihi2SimCfg fixed_pt): {n_lava} samples in {res.total_seconds:.2f} s end-to-end "
          f"({res.steps} steps) -> {e2e_rate:8.3f} samples/s; marginal {marginal:8.3f} samples/s")
    print(f"speed-up of ours: {ours_rate / e2e_rate:,.0f}x end-to-end, {ours_rate / marginal:,.0f}x marginal")
    print(f"identical on {n_lava} samples: " + ", ".join(f"{k} {v}" for k, v in same.items()))
    assert all(same.values()), "Lava and neurodeploy.sim disagree"
    return 0


def bench_sws(args) -> int:
    """Ours vs Lava on an sws network (TSA neurons; images/s, same run, codes checked identical)."""
    from neurodeploy.schemes.sws import lava as sws_lava
    from neurodeploy.schemes import CompileOptions

    lava_version = ensure_lava()
    model = Path(args.model)
    x = _test_inputs(args, model)
    cal = np.load(ROOT / "models" / "digits_calib_x.npy")
    graph = compile_model(model, "loihi2", "sws", CompileOptions(calibration=cal, coding_steps=8, silent_steps=2))
    n_lava = max(2, min(args.lava_samples, len(x)))
    print(f"sws {model.name}: {len(graph.layers)} layers, Tc = 8, Ts = 2; lava-nc {lava_version}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    sim = run_batch(prepare(graph), x[:n_lava])

    def identical(res) -> dict:
        return {"codes of every layer": all(np.array_equal(res.codes[k], v.numpy()) for k, v in sim.codes.items()),
                "readout state": np.array_equal(res.readout_state, sim.output_state.numpy().reshape(n_lava, -1)),
                "outputs": np.array_equal(res.outputs, sim.output.numpy())}
    return _ours_vs_lava("neurodeploy.schemes.sws.kernel", x, n_lava, lambda xs: simulate(graph, xs),
                         lambda xs: sws_lava.run_lava(graph, xs, record_digits=False), identical, args.repeat)


def bench_reverb(args) -> int:
    """Ours vs Lava on the trained ReverB digits CNN (images/s, same run, outputs checked identical)."""
    import json

    import neurodeploy as nd
    from neurodeploy.schemes.reverb import lava as reverb_lava
    from neurodeploy.schemes.reverb import kernel as rsim
    sys.path.insert(0, str(ROOT / "models"))
    import train_digits_reverb as tdr

    lava_version = ensure_lava()
    cfg = json.loads((ROOT / "models" / "digits_reverb.json").read_text())
    model = tdr.build_model()
    model.load_state_dict(torch.load(ROOT / "models" / "digits_reverb.pt", weights_only=True))
    model.eval()
    x = np.load(Path(args.data) if args.data else ROOT / "models" / "digits_test_x.npy")
    cal = np.load(ROOT / "models" / "digits_calib_x.npy")
    t = int(cfg["timesteps"])
    graph = nd.compile(model, torch.from_numpy(x[:8]), target="loihi2", scheme="reverb", timesteps=t,
                       payload_bits=args.payload_bits, calibration=cal).graph
    n_lava = max(2, min(args.lava_samples, len(x)))
    print(f"reverb digits CNN: {len(graph.layers)} layers, T = {t}, {args.payload_bits}-bit payloads; "
          f"lava-nc {lava_version}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    sim = rsim.run(rsim.prepare(graph), x[:n_lava])

    def identical(res) -> dict:
        return {"payload trains": all(np.array_equal(res.trains[k], v.numpy()) for k, v in sim.trains.items()),
                "readout state": np.array_equal(res.readout_state, sim.readout_state.numpy().reshape(n_lava, -1)),
                "outputs": np.array_equal(res.output, nd.simulate(graph, x[:n_lava]))}
    return _ours_vs_lava("neurodeploy.schemes.reverb.kernel", x, n_lava, lambda xs: nd.simulate(graph, xs),
                         lambda xs: reverb_lava.run_lava(graph, xs), identical, args.repeat)


if __name__ == "__main__":
    sys.exit(main())
