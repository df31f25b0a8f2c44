"""`verify --workers 2` against `--workers 1` on the CIFAR-10 ResNet-20 of models/: time, speed-up,
identical results asserted.

    python benchmarks/bench_workers.py [--samples 512] [--batch-size 64] [--workers 2]

The network is models/cifar_resnet20_qcfs.onnx compiled for bitplane; the inputs are the first
--samples test images of cifar10_subset.npz (../shared/data/ or $NEURODEPLOY_DATA).  Every run is `neurodeploy.verify`
(the float model in onnxruntime, the integer reference, the SNN simulation, layer by layer) on the
same pinned CPU numerics (`reproducible.pin_cpu_numerics`: one thread per process, as each worker
has), so the serial run is one core and the Ray run N cores.  Three timings:

- serial: --workers 1, in this process, no Ray;
- Ray, cold: --workers N as the command runs it: a local Ray instance started for the run (its
  start, the workers' imports of torch & co.) and shut down after;
- Ray, warm: the same on an instance already up whose workers have run once (a cluster's steady
  state, `--ray-address`).

The speed-up is measured, not promised: on a machine whose cores are shared with other work it is
below N.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neurodeploy.reproducible import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()          # before torch runs: the serial run computes on the workers' float path

import numpy as np  # noqa: E402

import neurodeploy as nd  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_data  # noqa: E402

MODEL = ROOT / "models" / "cifar_resnet20_qcfs.onnx"


def cifar_test(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n test images (N, 3, 32, 32) float32 in [0, 1] and their labels."""
    with np.load(path) as d:
        x, y = d["test_x"][:n], d["test_y"][:n]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255), y.astype(np.int64)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=str(bench_data.cifar_subset()),
                    help="cifar10_subset.npz (default: $NEURODEPLOY_DATA or ../shared/data/ beside the repository)")
    args = ap.parse_args()
    x, y = cifar_test(Path(args.data), args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        net = nd.compile(str(MODEL), scheme="bitplane", chips=4)      # 298 cores of 128 per chip
        net.save(Path(tmp) / "net")          # the workers get the network through Ray's object store
        net = nd.load(Path(tmp) / "net")

        def verify(workers: int) -> dict:
            return nd.verify(net, str(MODEL), x, y, batch_size=args.batch_size, workers=workers)

        t_serial, serial = timed(lambda: verify(1))
        t_cold, cold = timed(lambda: verify(args.workers))
        import ray
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            verify(args.workers)                # the workers' start and imports
            t_warm, warm = timed(lambda: verify(args.workers))
        finally:
            ray.shutdown()
    same = json.dumps(serial, sort_keys=True)
    assert json.dumps(cold, sort_keys=True) == same and json.dumps(warm, sort_keys=True) == same, \
        "--workers changed verify's result"
    n = args.samples
    print(f"verify, {MODEL.name} (bitplane), {n} CIFAR-10 test images, batches of {args.batch_size}; "
          f"results identical (conversion mismatches {sum(l['conversion_mismatches'] for l in serial['layers'])}, "
          f"SNN accuracy {100 * serial['accuracy']['snn']:.2f}%)")
    print(f"  {'run':<42}{'seconds':>9}{'samples/s':>11}{'speed-up':>10}")
    for label, t in ((f"--workers 1 (serial, no Ray)", t_serial),
                     (f"--workers {args.workers}, Ray started for the run", t_cold),
                     (f"--workers {args.workers}, Ray already up (warm)", t_warm)):
        print(f"  {label:<42}{t:>9.2f}{n / t:>11.1f}{t_serial / t:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
