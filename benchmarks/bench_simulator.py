"""Speed of the bit-accurate simulator on a CIFAR-size network, against peers measured in the same run.

    python benchmarks/bench_simulator.py [--arch resnet18|resnet20] [--schemes bitplane,rate,sws,reverb,sdnn,cuba]
        [--samples 64] [--temporal-samples 16] [--slow-samples 4] [--batch 16] [--rounds 3] [--json out.json]

The network (benchmarks/cifar_nets.py): torchvision's BasicBlock ResNet-18 with the CIFAR stem at
3x32x32 (or the CIFAR ResNet-20), seeded random weights, BatchNorm statistics measured on real CIFAR-10
images (../shared/data/cifar10_subset.npz, `--data`), QCFS activations (Q = 7) behind an 8-bit input
quantiser; for reverb the same network as a ReverB SNN (binary 3x3 convolutions, T = 4, 16-bit
payloads); for sdnn the same QCFS network compiled with `--scheme sdnn` (its activations as
sigma-delta ReLUs, `--calibration` the 256 training images); for cuba, which compiles trained LIF
SNNs, the ReLU network's convolutions (BatchNorm folded, residual adds included) as a NIR graph of
CubaLIF neurons (`cifar_nets.lif_resnet_nir`, written with the nir library and compiled from the file
with `--nir-dt 1e-4`, T = 4, 8-bit input).  Inputs: CIFAR-10 test images.  Per scheme, on the same
inputs and batches:

- neurodeploy: our default engine;
- the same network with our slower engines (bitplane `--engine planes`; rate, sws, reverb, sdnn,
  cuba `--engine steps`), and for bitplane a plain step-by-step loop (one synapse call per bit
  plane, float64, as a straightforward PyTorch SNN simulation does it) and the integer reference of
  the quantised ANN (numpy int64), on the first --slow-samples samples;
- onnxruntime: the float QCFS ANN exported to ONNX (the cost floor of the model itself; for reverb the
  QCFS ANN of the same architecture, whose convolutions are the same; for cuba the ReLU ANN whose
  convolutions the LIF network has: the synapses' cost floor), 1 intra-op thread.
Outputs are asserted identical between our engines (and the integer reference).

Columns: samples per second by process CPU time (time.process_time, 1 thread: equal to wall-clock
time on an idle machine, and not inflated when a shared machine deschedules us; best of --rounds,
engines interleaved, each timed on its second call in a row) and by wall-clock time; for bitplane the ratio to onnxruntime's throughput; for
the temporal schemes the ratio to onnxruntime's throughput divided by T_eff, the time steps every layer
runs per sample (rate: T + depth, the lock-step run; sws: Tc + Ts, a TSA layer's local steps; reverb:
T; sdnn: depth + 1, the lock-step steps after which every layer has settled, the input sent once at
step 0 and every layer updated at every step (as `--engine steps` runs it; the default engine skips
the steps in which nothing reaches a layer: a layer h synapse hops deep receives input in at most h of
them, on this ResNet-18 9.5 of the 19 steps on average over its 18 layers, so part of its ratio is that
saving); cuba: T + depth, the lock-step run with the input sent at every step, every layer updated at
every step by both engines); memory: how far one run (all its samples, in batches) raises the process's resident set at its
peak (Linux's VmHWM after resetting it, free heap memory returned first; onnxruntime without its arena).  Targets: bitplane, reverb, sdnn and cuba compile for Loihi 2 (`--chips` as
needed), rate and sws for `--target cpu` (48-bit states): Loihi 2's 24-bit states cannot hold these
random networks' read-outs (the compiler refuses them), so those two run their states in float64.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
import cifar_nets  # noqa: E402
from neurodeploy.api import compile as nd_compile  # noqa: E402
from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.ir.synapse_ops import apply_ops  # noqa: E402
from neurodeploy.nn import export_onnx  # noqa: E402
from neurodeploy.schemes.bitplane import kernel as bp  # noqa: E402
from neurodeploy.sim import core, engine  # noqa: E402
from neurodeploy.sim.reference import reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LEVELS, REVERB_T, PAYLOAD_BITS, CHIPS = 7, 4, 16, 64
CUBA_T, CUBA_INPUT_BITS = 4, 8


def step_by_step(net, x: np.ndarray) -> np.ndarray:
    """A bitplane SNN one time step and one synapse call at a time, in float64 (readout U)."""
    xt = torch.as_tensor(np.array(x))
    planes = {net.input.name: bp.encode_planes(core.input_codes(net.input, xt), net.input.neuron.n_steps)}
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
        if layer.is_readout:
            break
        planes[layer.name] = bp.emit(u.round().to(torch.int64), layer.neuron)
    return u.round().to(torch.int64).numpy().reshape(len(x), -1)


def batched(fn, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([np.asarray(fn(x[i:i + batch])).reshape(min(batch, len(x) - i), -1)
                           for i in range(0, len(x), batch)])


def sim_engine(net, name: str):
    """Our simulator with engine `name`: x -> readout state (N, outputs) int64."""
    prep = engine.prepare(net, "cpu", name)
    return lambda xb: engine.run_batch(prep, xb, record_codes=False).output_state.reshape(len(xb), -1).numpy()


def ort_session(path: Path, arena: bool = True):
    """onnxruntime on one thread; arena=False: without its memory arena, which keeps the peak allocated
    between runs (for the memory column, whose runs must allocate what they use)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = arena
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda xb: sess.run(None, {sess.get_inputs()[0].name: xb})[0]


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def peak_memory(fn) -> float:
    """MB by which one call of fn raises the resident set at its peak: free heap memory handed back to
    the system first (malloc_trim), the kernel's high-water mark reset (/proc/self/clear_refs), then
    VmHWM after the call minus VmRSS before it.  -1 where Linux's /proc or glibc is missing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = _status_mb("VmRSS")
    except (OSError, AttributeError, StopIteration):
        return -1.0
    fn()
    return max(0.0, _status_mb("VmHWM") - start)


def measure(runs: dict, rounds: int) -> dict:
    """runs: name -> (fn, n samples); best CPU and wall seconds per name over rounds in which every run
    is called twice in a row and the second call timed (warm: in a long simulation every batch finds
    the memory the previous one freed; cold calls after another engine pay page faults instead)."""
    best = {name: [float("inf"), float("inf")] for name in runs}
    outs = {}
    for _ in range(rounds):
        for name, (fn, _) in runs.items():
            fn()
            c0, w0 = time.process_time(), time.perf_counter()
            outs[name] = fn()
            best[name][0] = min(best[name][0], time.process_time() - c0)
            best[name][1] = min(best[name][1], time.perf_counter() - w0)
    return {name: {"cpu_s": c, "wall_s": w, "samples": runs[name][1], "output": outs[name]}
            for name, (c, w) in best.items()}


def build_models(args, cache: Path):
    """The QCFS ResNet as ONNX (cached in `cache`) and the calibration images."""
    x_cal = cifar_nets.cifar_images(args.data, "train", 256)
    onnx_path = cache / f"{args.arch}_qcfs{LEVELS}_seed{args.seed}.onnx"
    if not onnx_path.exists():
        model = cifar_nets.qcfs_resnet(args.arch, x_cal, LEVELS, args.seed)
        export_onnx(model, torch.from_numpy(x_cal[:2]), onnx_path, fold_bn=True)
    return onnx_path, x_cal


def cuba_models(args, cache: Path, x_cal: np.ndarray) -> tuple[Path, Path]:
    """The LIF network as a NIR file and the ReLU ANN of its convolutions as ONNX (both cached in `cache`)."""
    import nir
    nir_path = cache / f"{args.arch}_cubalif_seed{args.seed}.nir"
    onnx_path = cache / f"{args.arch}_relu_seed{args.seed}.onnx"
    if not (nir_path.exists() and onnx_path.exists()):
        graph, relu = cifar_nets.lif_resnet_nir(args.arch, x_cal, args.seed)
        nir.write(str(nir_path), graph)
        export_onnx(relu, torch.from_numpy(x_cal[:2]), onnx_path, fold_bn=True)
    return nir_path, onnx_path


def compile_scheme(scheme: str, args, onnx_path: Path, x_cal: np.ndarray, cache: Path):
    """(network, target, compile CPU seconds, the ONNX model onnxruntime runs as its peer)."""
    peer = onnx_path
    if scheme == "cuba":                  # its files are built outside the compile time
        nir_path, peer = cuba_models(args, cache, x_cal)
    t0 = time.process_time()
    if scheme == "cuba":
        net = compile_model(nir_path, "loihi2", "cuba",
                            {"calibration": x_cal[:64], "timesteps": CUBA_T, "input_bits": CUBA_INPUT_BITS,
                             "nir_dt": 1e-4, "chips": CHIPS})
        target = "loihi2"
    elif scheme == "sdnn":
        net = compile_model(onnx_path, "loihi2", "sdnn", {"calibration": x_cal, "chips": CHIPS})
        target = "loihi2"
    elif scheme == "reverb":
        model = cifar_nets.reverb_resnet(args.arch, x_cal[:64], REVERB_T, args.seed)
        net = nd_compile(model, torch.from_numpy(x_cal[:2]), target="loihi2", scheme="reverb", timesteps=REVERB_T,
                         payload_bits=PAYLOAD_BITS, calibration=x_cal[:64], chips=CHIPS).graph
        target = "loihi2"
    elif scheme == "bitplane":
        net, target = compile_model(onnx_path, "loihi2", "bitplane", {"chips": CHIPS}), "loihi2"
    else:
        net, target = compile_model(onnx_path, "cpu", scheme), "cpu"
    return net, target, time.process_time() - t0, peer


def t_eff(scheme: str, net) -> int:
    if scheme == "rate":
        return int(net.meta["latency_steps"])                       # T + depth: every layer, every step
    if scheme == "sws":
        tsa = [l.neuron for l in net.neuron_layers() if not l.is_readout]
        return int(tsa[0].coding_steps) + max(int(n.silent_steps) for n in tsa)
    if scheme == "reverb":
        return int(net.input.neuron.timesteps)
    if scheme == "sdnn":
        return core.depth(net) + 1                                   # settled: every layer, every step
    if scheme == "cuba":
        return int(net.input.neuron.n_steps)                         # T + depth: every layer, every step
    return 1


def bench_scheme(scheme: str, args, onnx_path: Path, x_cal: np.ndarray, x_all: np.ndarray, cache: Path) -> dict:
    net, target, compile_s, peer = compile_scheme(scheme, args, onnx_path, x_cal, cache)
    ort = ort_session(peer)
    n = args.samples if scheme == "bitplane" else args.temporal_samples
    x, x_slow = x_all[:n], x_all[:args.slow_samples]
    slow = "planes" if scheme == "bitplane" else "steps"
    ours, slower = sim_engine(net, "neurodeploy"), sim_engine(net, slow)      # prepared once, as `simulate` does
    runs = {"neurodeploy": (lambda: batched(ours, x, args.batch), n),
            "onnxruntime": (lambda: batched(ort, x, args.batch), n),
            f"neurodeploy --engine {slow}": (lambda: batched(slower, x_slow, args.batch), len(x_slow))}
    if scheme == "bitplane":
        runs["step-by-step float64 loop"] = (lambda: batched(lambda xb: step_by_step(net, xb), x_slow, args.batch),
                                             len(x_slow))
        runs["integer reference (numpy)"] = (lambda: reference(net, x_slow)[1].reshape(len(x_slow), -1), len(x_slow))
    res = measure(runs, args.rounds)
    want = res["neurodeploy"]["output"]
    for name, r in res.items():
        if name != "onnxruntime":
            assert np.array_equal(r["output"], want[:len(r["output"])]), f"{scheme}: {name} disagrees with neurodeploy"
    ort_plain = ort_session(peer, arena=False)
    for name, (fn, _) in runs.items():
        res[name]["peak_mb"] = peak_memory(lambda: batched(ort_plain, x, args.batch) if name == "onnxruntime" else fn())
    for r in res.values():
        r.pop("output")
        r["samples_per_s_cpu"] = r["samples"] / r["cpu_s"]
        r["samples_per_s_wall"] = r["samples"] / r["wall_s"]
    te = t_eff(scheme, net)
    ort_rate = res["onnxruntime"]["samples_per_s_cpu"]
    for r in res.values():
        r["vs_onnxruntime_x_teff"] = r["samples_per_s_cpu"] * te / ort_rate
    return {"scheme": scheme, "target": target, "t_eff": te, "compile_cpu_s": compile_s, "onnxruntime_model": peer.name,
            "latency_steps": net.meta.get("latency_steps"), "engines": res}


def print_scheme(r: dict) -> None:
    te = r["t_eff"]
    bound = "onnxruntime" if te == 1 else f"onnxruntime/{te}"
    print(f"\n{r['scheme']} (--target {r['target']}, T_eff = {te}, compile {r['compile_cpu_s']:.1f} s CPU, "
          f"onnxruntime runs {r['onnxruntime_model']})")
    print(f"  {'engine':<34}{'samples':>8}{'samples/s cpu':>15}{'wall':>9}{'vs ' + bound:>22}{'peak MB':>9}")
    for name, e in r["engines"].items():
        print(f"  {name:<34}{e['samples']:>8}{e['samples_per_s_cpu']:>15.2f}{e['samples_per_s_wall']:>9.2f}"
              f"{e['vs_onnxruntime_x_teff']:>21.3f}x{e['peak_mb']:>9.0f}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(cifar_nets.STAGES), default="resnet18")
    ap.add_argument("--schemes", default="bitplane,rate,sws,reverb,sdnn,cuba")
    ap.add_argument("--data", default=str(bench_data.cifar_subset()),
                    help="cifar10_subset.npz (default: $NEURODEPLOY_DATA or ../shared/data/ beside the repository)")
    ap.add_argument("--samples", type=int, default=64, help="bitplane samples (default 64)")
    ap.add_argument("--temporal-samples", type=int, default=16,
                    help="rate, sws, reverb, sdnn, cuba samples (default 16)")
    ap.add_argument("--slow-samples", type=int, default=4, help="samples for the slow engines (default 4)")
    ap.add_argument("--batch", type=int, default=16, help="batch size of every engine (default 16)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds, best kept (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; onnxruntime always 1)")
    ap.add_argument("--cache", help="directory for the exported ONNX model (default: a temporary one)")
    ap.add_argument("--json", help="also write the results as JSON")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        onnx_path, x_cal = build_models(args, cache)
        x = cifar_nets.cifar_images(args.data, "test", max(args.samples, args.temporal_samples, args.slow_samples))
        print(f"{args.arch} (CIFAR stem, 3x32x32, QCFS Q={LEVELS}, seeded random weights, BatchNorm from CIFAR-10), "
              f"batch {args.batch}, {args.threads} thread(s), best of {args.rounds} rounds, torch {torch.__version__}")
        results = [bench_scheme(s, args, onnx_path, x_cal, x, cache) for s in args.schemes.split(",")]
    for r in results:
        print_scheme(r)
    print("\noutputs identical: neurodeploy == every slower engine (and bitplane's integer reference), asserted")
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "batch": args.batch, "results": results}, indent=1))
    return {"results": results}


if __name__ == "__main__":
    main()
