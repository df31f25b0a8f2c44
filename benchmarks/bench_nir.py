#!/usr/bin/env python
"""NIR graphs from four SNN libraries on Loihi 2: the agreement table (issue #15).

    python benchmarks/bench_nir.py [--libraries snntorch norse sinabs spikingjelly] [--epochs 12]
                                   [--input-bits 6] [--lava-samples 3] [--json out.json]

For each library (models/nir_libraries.py), trained and measured in this one run on sklearn
digits (75/25 split, seed 0, T = 10 steps of constant input):

* the library trains a small SNN (BPTT with its own surrogate gradients, Adam, --epochs epochs)
  and exports it with its own NIR exporter;
* ``neurodeploy compile x.nir --scheme cuba --nir-from LIB`` (``--input-bits`` bits of input);
* **float acc** -- the library's own float simulation on the 450 test digits;
* **reading** -- our float reading of the graph (``frontends.nir.float_sim``) vs the library:
  fraction of equal predictions (checks the conventions ``--nir-from`` stands for);
* **ours acc**, **agreement** -- our fixed-point simulator (what Loihi 2 computes): accuracy and the
  fraction of digits where it predicts the library's class;
* **Lava bit-exact** -- our per-step spikes and readout equal Lava's ``fixed_pt`` run of the emitted
  processes (``Loihi2SimCfg``) on the first ``--lava-samples`` digits;
* **library ms / ours ms** -- wall time of the library's float simulation and of our simulator on
  the 450 digits, measured here, and their ratio (speed is reported, never asserted).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))

from neurodeploy.reproducible import pin_cpu_numerics  # noqa: E402

pin_cpu_numerics()      # the float path of the test session: training gives the tests' networks bit for bit

import nir_libraries as nl  # noqa: E402

from neurodeploy.compiler import compile_model  # noqa: E402
from neurodeploy.frontends.nir import read_nir  # noqa: E402
from neurodeploy.frontends.nir.float_sim import simulate as float_reading  # noqa: E402
from neurodeploy.schemes.cuba import kernel as sim_cuba  # noqa: E402
from neurodeploy.schemes.cuba.options import CubaOptions  # noqa: E402
from neurodeploy.train.data import digits  # noqa: E402


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _lava_bit_exact(net, x) -> bool:
    from neurodeploy.backends.lava import ensure_lava
    ensure_lava()
    from neurodeploy.schemes.cuba.lava import run_lava
    ours, lava = sim_cuba.trace(net, x), run_lava(net, x)
    return (all(np.array_equal(lava.spikes[k], s) for k, s in ours.spikes.items())
            and np.array_equal(lava.readout_v, ours.readout_v)
            and np.array_equal(lava.output, sim_cuba.simulate(net, x)))


def run(name: str, data, epochs: int, input_bits: int, lava_samples: int, workdir: Path) -> dict:
    xtr, ytr, xte, yte = data
    lib = nl.library(name)
    model = nl.train(lib, xtr, ytr, epochs=epochs)
    path = nl.export(lib, model, workdir)
    net = compile_model(path, "loihi2", "cuba", CubaOptions(calibration=lib.inputs(xtr), timesteps=nl.T,
                                                            input_bits=input_bits, **lib.nir_options))
    x = lib.inputs(xte)
    lib_out, lib_s = _timed(lib.run, model, xte)
    ours, ours_s = _timed(sim_cuba.simulate, net, x)
    reading = float_reading(read_nir(path), lib.conventions, x, nl.T)
    return {"library": name, "version": lib.version, "network": lib.network,
            "float_acc": float(np.mean(lib_out.argmax(1) == yte)),
            "reading": float(np.mean(reading.argmax(1) == lib_out.argmax(1))),
            "ours_acc": float(np.mean(ours.argmax(1) == yte)),
            "agreement": float(np.mean(ours.argmax(1) == lib_out.argmax(1))),
            "lava_bit_exact": _lava_bit_exact(net, x[:lava_samples]) if lava_samples else None,
            "library_ms": 1e3 * lib_s, "ours_ms": 1e3 * ours_s}


def table(rows: list[dict]) -> str:
    lines = ["| library | version | network | float acc | reading = library | ours acc | agreement | "
             "Lava bit-exact | library ms | ours ms | library/ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lava = "n/a" if r["lava_bit_exact"] is None else ("yes" if r["lava_bit_exact"] else "NO")
        lines.append(f"| {r['library']} | {r['version']} | {r['network']} | {r['float_acc']:.2%} | "
                     f"{r['reading']:.2%} | {r['ours_acc']:.2%} | {r['agreement']:.2%} | {lava} | "
                     f"{r['library_ms']:.0f} | {r['ours_ms']:.0f} | {r['library_ms'] / r['ours_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--libraries", nargs="+", default=list(nl.LIBRARIES), choices=list(nl.LIBRARIES))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--input-bits", type=int, default=6)
    p.add_argument("--lava-samples", type=int, default=3, help="digits run in Lava (0: skip Lava)")
    p.add_argument("--json", help="also write the rows as JSON")
    args = p.parse_args(argv)
    nl.quiet()
    data = digits(0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.libraries:
            rows.append(run(name, data, args.epochs, args.input_bits, args.lava_samples, Path(d)))
            print(f"{name}: done", file=sys.stderr)
    print(f"NIR -> Loihi 2 (cuba), sklearn digits, 450 test samples, T = {nl.T}, input bits {args.input_bits}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
