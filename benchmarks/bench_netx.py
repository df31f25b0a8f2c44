"""Imported Lava-DL NetX networks: our simulator vs lava-dl's netx run by Lava (fixed_pt), same inputs.

For each SLAYER-trained network of the shared data (PilotNet SDNN and LIF, the MNIST and Oxford
tutorials) this imports the file (`neurodeploy.frontends.netx`), runs one sample in our
simulator and in `netx.hdf5.Network` under Loihi2SimCfg(select_tag="fixed_pt")
(`backends.netx_run`), checks that every block's output and the readout agree bit for bit, and
prints both wall-clock times and their ratio, measured in this run on this machine.

    python benchmarks/bench_netx.py [--data ../shared/data/lava-dl] [--only pilotnet_sdnn,oxford]
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from neurodeploy.backends.netx_run import run_netx  # noqa: E402
from neurodeploy.frontends.netx import import_netx  # noqa: E402
from neurodeploy.frontends.netx.options import NetxOptions  # noqa: E402
from neurodeploy.frontends.netx.verify import compare_with_lava  # noqa: E402
from neurodeploy.registry import get_scheme  # noqa: E402
from neurodeploy.sim import engine  # noqa: E402

GTS = "tests/lava/lib/dl/netx/gts"
TUT = "tutorials/lava/lib/dl/netx"


def cases(data: Path) -> dict:
    """name -> (file, NetxOptions, one input sample (1, ...))."""
    rng = np.random.default_rng(0)
    sdnn_x = np.load(data / GTS / "pilotnet_sdnn/input.npy")[..., 0].transpose(2, 1, 0)[None].astype(np.float32)
    lif_x = np.load(data / GTS / "pilotnet_lif/image.npy").transpose(2, 1, 0)[None].astype(np.float32)
    return {
        "pilotnet_sdnn": (data / GTS / "pilotnet_sdnn/network.net", NetxOptions(), sdnn_x),
        "pilotnet_lif": (data / GTS / "pilotnet_lif/network.net", NetxOptions(timesteps=24, reset_interval=17),
                         lif_x),
        "mnist": (data / TUT / "mnist/trained_mnist_network.net", NetxOptions(timesteps=32),
                  (rng.random((1, 32, 784)) < 0.2).astype(np.float32)),
        "oxford": (data / TUT / "oxford/Trained/network.net", NetxOptions(timesteps=2000),
                   (rng.random((1, 2000, 200)) < 0.005).astype(np.float32)),
    }


def check(graph, path, x, lava) -> None:
    """Every block's output and the readout equal Lava's (`frontends.netx.verify.compare_with_lava`)."""
    layers, _ = compare_with_lava(graph, path, x, lava)
    for name, counts in layers.items():
        if counts["mismatches"]:
            raise SystemExit(f"{name}: {counts['mismatches']} of {counts['compared']} values differ from Lava")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "lava-dl"))
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for our simulator (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_cases = cases(Path(args.data))
    names = [n for n in args.only.split(",") if n] or list(all_cases)
    print(f"{'network':15s} {'scheme':6s} {'steps':>6s} {'ours (s)':>9s} {'Lava (s)':>9s} {'Lava / ours':>11s}  bit-exact")
    for name in names:
        path, opts, x = all_cases[name]
        graph = import_netx(path, options=opts)
        steps = get_scheme(graph.scheme).netx_files().run_steps(graph)
        t0 = time.perf_counter()
        engine.simulate(graph, x)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        lava = run_netx(graph, path, x, steps)
        t_lava = time.perf_counter() - t0
        check(graph, path, x, lava)
        print(f"{name:15s} {graph.scheme:6s} {steps:6d} {ours:9.2f} {t_lava:9.2f} {t_lava / ours:11.1f}  yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
