"""Digest every artifact neurodeploy produces from the models in models/, to prove a change byte-identical.

    python scripts/artifact_digest.py --write before.json          # on the old commit
    python scripts/artifact_digest.py --check before.json          # on the new one: exit 1 on any difference

Compiles every model in models/ with every scheme and the option variants the tests use (bitplane
lossy, rate reset zero / calibrated, sws Ts 0/1/2, calibrated, β = 3, sdnn, cuba and reverb from
the trained SNNs, through the CLI, the Python API and .pt2 programs), writes each network as
`neurodeploy compile` does (ir.json, params.npz, summary.md) and records the sha256 of every file,
plus the sha256 of what each network does: simulator outputs and spike counts, `verify`, the cost
report, NIR / NetX exports where the scheme has them, and (with --lava) Lava's own run.  A model a
scheme refuses is recorded by its one-line error, so refusals are compared too.  Wall-clock times
(compile, simulate) are printed per stage and in total as a speed check; they are not compared.
Run from the repository root with PYTHONPATH pointing at the tree under test.  The .pt2 programs
and QDQ exports are written once into --cache and reused, so that two trees see the same files.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import sys
import time
import os
from pathlib import Path

# pinned numerics (NEURODEPLOY_PIN_NUMERICS=1, as the tests run) must come before torch first computes;
# the commands this script runs through cli.main would pin too late otherwise
if os.environ.get("NEURODEPLOY_PIN_NUMERICS") == "1":
    from neurodeploy.reproducible import pin_cpu_numerics
    pin_cpu_numerics()

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path.cwd()
MODELS = ROOT / "models"
sys.path.insert(0, str(MODELS))

X = np.load(MODELS / "digits_test_x.npy")
Y = np.load(MODELS / "digits_test_y.npy")
CAL = np.load(MODELS / "digits_calib_x.npy")
RES_X = np.load(MODELS / "digits_resnet_test_x.npy")
RES_Y = np.load(MODELS / "digits_resnet_test_y.npy")
RES_CAL = np.load(MODELS / "digits_resnet_calib_x.npy") if (MODELS / "digits_resnet_calib_x.npy").exists() else CAL
SIM_N = 64          # samples simulated / verified per network
REPORT_N = 16       # samples of the cost report

ONNX = ["digits_qcfs", "digits_qcfs_folded", "digits_resnet_qcfs", "digits_resnet_qcfs_folded", "digits_qat"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(path: Path) -> dict:
    return {str(p.relative_to(path)): sha(p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()}


def json_digest(obj) -> str:
    return sha(json.dumps(obj, sort_keys=True, default=_jsonable).encode())


def _jsonable(o):
    if isinstance(o, np.ndarray):
        return {"array": o.dtype.str, "shape": list(o.shape), "sha": sha(np.ascontiguousarray(o).tobytes())}
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return o.name
    return repr(o)


class Digest:
    def __init__(self, out: Path, only: str | None):
        self.out, self.only = out, only
        self.entries: dict = {}
        self.times: dict = {}

    def wanted(self, name: str) -> bool:
        return self.only is None or any(part in name for part in self.only.split(","))

    @contextlib.contextmanager
    def timed(self, name: str, stage: str):
        t0 = time.perf_counter()
        yield
        self.times.setdefault(name, {})[stage] = time.perf_counter() - t0

    def record(self, name: str, key: str, value) -> None:
        self.entries.setdefault(name, {})[key] = value


def _quiet(fn, *a, **k):
    """Run fn with stdout/stderr captured (progress bars, CLI prints)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        return fn(*a, **k)


def behaviour(d: Digest, name: str, net, x: np.ndarray, y: np.ndarray, model=None, ann: bool = True) -> None:
    """Simulator outputs, verify and the cost report of one compiled network."""
    from neurodeploy.reports.costs import cost_report
    from neurodeploy.sim.engine import simulate
    with d.timed(name, "simulate"):
        out, spikes = simulate(net, x[:SIM_N], batch_size=32)
    d.record(name, "simulate", {"out": sha(out.tobytes()), "spikes": json_digest(spikes)})
    if model is not None:
        from neurodeploy import api
        with d.timed(name, "verify"):
            r = api.verify(net, model, x[:SIM_N], y[:SIM_N], batch_size=32)
        d.record(name, "verify", json_digest(r))
    onnx_model = model if (ann and isinstance(model, (str, Path)) and str(model).endswith(".onnx")) else None
    with d.timed(name, "report"):
        try:
            # labels only where the scheme has a quantised ANN to compare with (cuba/reverb: none)
            rep = cost_report(net, x[:REPORT_N], 8, labels=y[:REPORT_N] if ann else None, model_path=onnx_model)
            d.record(name, "report", json_digest(rep))
        except Exception as exc:            # noqa: BLE001 - recorded, compared like any output
            d.record(name, "report", f"error: {type(exc).__name__}: {exc}")


def save(d: Digest, name: str, net) -> Path:
    from neurodeploy.compiler import save_artifact
    from neurodeploy.reports.summary import summary_markdown
    path = d.out / name
    save_artifact(net, path, {"summary.md": summary_markdown(net)})
    d.record(name, "files", tree_digest(path))
    return path


def compile_file(d: Digest, name: str, model: Path, scheme: str, x, y, cal=None, verify: bool = True, **opts):
    """The CLI's path: compile_model + save_artifact, then behaviour."""
    from neurodeploy.compiler import compile_model
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.schemes import CompileOptions
    if not d.wanted(name):
        return None
    try:
        with d.timed(name, "compile"):
            net = compile_model(model, "loihi2", scheme, CompileOptions(calibration=cal, **opts))
    except NeurodeployError as exc:
        d.record(name, "error", exc.one_line())
        return None
    save(d, name, net)
    behaviour(d, name, net, x, y, model if verify else None)
    return net


def exports(d: Digest, name: str, fmt: str, suffix: str) -> None:
    """`neurodeploy export` of a saved network."""
    from neurodeploy.cli import main
    if not d.wanted(name) or not (d.out / name).is_dir():
        return
    out = d.out / f"{name}.{suffix}"
    rc = _quiet(main, ["export", str(d.out / name), "--format", fmt, "-o", str(out)])
    d.record(name, f"export_{fmt}", sha(out.read_bytes()) if rc == 0 else f"rc {rc}")


def onnx_configs(d: Digest) -> None:
    for stem in ONNX:
        path = Path("models") / f"{stem}.onnx"
        resnet = "resnet" in stem
        x, y, cal = (RES_X, RES_Y, RES_CAL) if resnet else (X, Y, CAL)
        compile_file(d, f"{stem}.bitplane", path, "bitplane", x, y)
        for t in (2, 3):
            compile_file(d, f"{stem}.bitplane_lossy_T{t}", path, "bitplane", x, y, timesteps=t, lossy=True)
        compile_file(d, f"{stem}.rate", path, "rate", x, y)
        compile_file(d, f"{stem}.rate_T8_zero", path, "rate", x, y, timesteps=8, reset="zero")
        compile_file(d, f"{stem}.rate_T16_cal", path, "rate", x, y, cal=cal, timesteps=16)
        for ts in (0, 1, 2):
            compile_file(d, f"{stem}.sws_Ts{ts}_static", path, "sws", x, y, silent_steps=ts, state_bound="static")
        compile_file(d, f"{stem}.sws_calibrated", path, "sws", x, y, cal=cal)
        compile_file(d, f"{stem}.sws_beta3_Tc5", path, "sws", x, y, beta=3, coding_steps=5, silent_steps=1)
        compile_file(d, f"{stem}.sdnn", path, "sdnn", x, y, cal=cal)
        compile_file(d, f"{stem}.sdnn_nocal", path, "sdnn", x, y)
        compile_file(d, f"{stem}.cuba", path, "cuba", x, y, timesteps=4)
        compile_file(d, f"{stem}.reverb", path, "reverb", x, y, cal=cal)
        for scheme in ("rate", "rate_T8_zero"):
            exports(d, f"{stem}.{scheme}", "nir", "nir")
        exports(d, f"{stem}.sdnn", "netx", "h5")
        exports(d, f"{stem}.bitplane", "nir", "nir")        # refused: recorded as its exit status


def cli_configs(d: Digest) -> None:
    """A few compiles through `neurodeploy compile` itself (the options' way through argparse)."""
    from neurodeploy.cli import main
    np.save(d.out / "cal.npy", CAL)
    runs = {
        "cli.bitplane": ["models/digits_qcfs.onnx"],
        "cli.bitplane_lossy": ["models/digits_qcfs.onnx", "--timesteps", "2", "--lossy"],
        "cli.rate_zero": ["models/digits_qcfs.onnx", "--scheme", "rate", "--timesteps", "8", "--reset", "zero"],
        "cli.sws_cal": ["models/digits_qat.onnx", "--scheme", "sws", "--silent-steps", "1",
                        "--calibration", str(d.out / "cal.npy"), "--state-bound", "calibrated"],
        "cli.sdnn": ["models/digits_qcfs.onnx", "--scheme", "sdnn", "--calibration", str(d.out / "cal.npy")],
        "cli.bad_timesteps": ["models/digits_qcfs.onnx", "--timesteps", "2"],
    }
    for name, args in runs.items():
        if not d.wanted(name):
            continue
        with d.timed(name, "compile"):
            rc = _quiet(main, ["compile", *args, "-o", str(d.out / name)])
        d.record(name, "rc", rc)
        if rc == 0:
            d.record(name, "files", tree_digest(d.out / name))


def torch_configs(d: Digest, cache: Path) -> None:
    """nn.Modules through the Python API, and .pt2 programs through compile_model."""
    from neurodeploy import api as nd
    from neurodeploy.compiler import compile_model
    from neurodeploy.schemes import CompileOptions
    import train_digits as td
    import train_digits_lif as tl
    import train_digits_reverb as tr
    qcfs = td.build_model()
    qcfs.load_state_dict(torch.load(MODELS / "digits_qcfs.pt"))
    qcfs.eval()
    lif = tl.build_model()
    lif.load_state_dict(torch.load(MODELS / "digits_lif.pt", weights_only=True))
    lif.eval()
    reverb = tr.build_model()
    reverb.load_state_dict(torch.load(MODELS / "digits_reverb.pt", weights_only=True))
    reverb.eval()
    xt = torch.from_numpy(X[:1])

    def api(name, model, example, ann=True, **kw):
        if not d.wanted(name):
            return None
        with d.timed(name, "compile"):
            net = nd.compile(model, example, **kw)
        save(d, name, net.graph)
        behaviour(d, name, net.graph, X, Y, model, ann=ann)
        return net

    api("api.qcfs_module.bitplane", qcfs, xt, scheme="bitplane")
    api("api.qcfs_module.rate_T8", qcfs, xt, scheme="rate", timesteps=8)
    api("api.qcfs_module.sws", qcfs, xt, scheme="sws", calibration=X[:128], silent_steps=1)
    api("api.lif.cuba", lif, torch.from_numpy(X[:2]), ann=False, scheme="cuba", timesteps=4, calibration=X[:200])
    api("api.reverb.T4", reverb, torch.from_numpy(X[:2]), ann=False, scheme="reverb", timesteps=4,
        calibration=X[:200])
    api("api.reverb.T4_p8", reverb, torch.from_numpy(X[:2]), ann=False, scheme="reverb", timesteps=4,
        payload_bits=8, calibration=X[:200])
    if d.wanted("api.lif.compile_lif"):
        from neurodeploy.schemes.cuba import compile_lif
        net = compile_lif(lif, X[:8], timesteps=4, calibration=X, input_bits=4)
        save(d, "api.lif.compile_lif", net)
        behaviour(d, "api.lif.compile_lif", net, X, Y, lif, ann=False)
    exports(d, "api.lif.cuba", "netx", "h5")
    exports(d, "api.lif.compile_lif", "netx", "h5")

    # a QAT module (test_api's), compiled through its QDQ export
    if d.wanted("api.qat_module.sws"):
        from neurodeploy.nn import qat
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(256, 10))
        q = qat.prepare_qat(m)
        q.train()
        with torch.no_grad():
            for i in range(0, 256, 32):
                q(torch.from_numpy(X[i:i + 32]))
        q.eval()
        with d.timed("api.qat_module.sws", "compile"):
            net = nd.compile(q, torch.from_numpy(X[:4]), target="cpu", scheme="sws")
        save(d, "api.qat_module.sws", net.graph)
        behaviour(d, "api.qat_module.sws", net.graph, X, Y, None)

    # .pt2 programs, written once into the cache
    from neurodeploy.nn.program import export_program
    progs = {"qcfs": (qcfs, xt), "lif": (lif, torch.from_numpy(X[:2])), "reverb": (reverb, torch.from_numpy(X[:2]))}
    for key, (model, example) in progs.items():
        p = cache / f"{key}.pt2"
        if not p.exists():
            export_program(model, example, p)
    for name, key, scheme, kw in [("pt2.qcfs.bitplane", "qcfs", "bitplane", {}),
                                  ("pt2.qcfs.rate", "qcfs", "rate", {"timesteps": 8}),
                                  ("pt2.lif.cuba", "lif", "cuba", {"timesteps": 4, "calibration": X[:200]}),
                                  ("pt2.reverb.reverb", "reverb", "reverb", {"timesteps": 4, "calibration": X[:200]})]:
        if not d.wanted(name):
            continue
        with d.timed(name, "compile"):
            net = compile_model(cache / f"{key}.pt2", "loihi2", scheme, CompileOptions(**kw))
        save(d, name, net)
        behaviour(d, name, net, X, Y, cache / f"{key}.pt2" if key != "lif" else None, ann=key == "qcfs")


def lava_configs(d: Digest) -> None:
    """Lava's own fixed-point run of a few emitted networks (2 samples each; slow)."""
    from neurodeploy.cli import main
    x = d.out / "lava_x.npy"
    np.save(x, X[:2])
    for name in ("digits_qcfs.bitplane", "digits_qcfs.rate_T8_zero", "digits_qcfs.sws_Ts1_static",
                 "api.reverb.T4"):
        if not (d.out / name).is_dir():
            continue
        out = d.out / f"{name}.lava.npy"
        with d.timed(name, "lava"):
            rc = _quiet(main, ["simulate", str(d.out / name), "--input", str(x), "--output", str(out),
                               "--engine", "lava"])
        d.record(name, "lava", sha(np.load(out).tobytes()) if rc == 0 else f"rc {rc}")
    if (d.out / "api.lif.compile_lif").is_dir() and d.wanted("api.lif.compile_lif"):
        from neurodeploy.ir.serialize import load
        try:
            from neurodeploy.schemes.cuba import lava as cuba_lava
        except ImportError:                 # before schemes/cuba/lava (47bd241)
            from neurodeploy.sim import cuba as cuba_lava
        net = load(d.out / "api.lif.compile_lif")
        with d.timed("api.lif.compile_lif", "lava"):
            tr = cuba_lava.run_lava(net, X[:2])
        d.record("api.lif.compile_lif", "lava", sha(tr.output.tobytes()))


def compare(old: dict, new: dict) -> list[str]:
    diffs = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None or b is None:
            diffs.append(f"{name}: only in {'new' if a is None else 'old'}")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) == b.get(key):
                continue
            if key == "files" and isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
                for f in sorted(set(a[key]) | set(b[key])):
                    if a[key].get(f) != b[key].get(f):
                        diffs.append(f"{name}: {f} differs")
            else:
                diffs.append(f"{name}: {key}: {str(a.get(key))[:120]} -> {str(b.get(key))[:120]}")
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/artifact_digest", help="scratch directory (replaced)")
    ap.add_argument("--cache", default="/tmp/artifact_digest_cache", help="where the .pt2 programs are kept")
    ap.add_argument("--write", metavar="FILE", help="write the digests as JSON")
    ap.add_argument("--check", metavar="FILE", help="compare with digests written by --write; exit 1 on a difference")
    ap.add_argument("--only", help="run only the configurations whose name contains one of these (comma-separated)")
    ap.add_argument("--lava", action="store_true", help="also run Lava on a few networks (slow)")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    d = Digest(out, args.only)
    t0 = time.perf_counter()
    _quiet(onnx_configs, d)
    _quiet(cli_configs, d)
    _quiet(torch_configs, d, cache)
    if args.lava:
        _quiet(lava_configs, d)
    total = time.perf_counter() - t0
    stages: dict = {}
    for times in d.times.values():
        for k, v in times.items():
            stages[k] = stages.get(k, 0.0) + v
    print(f"{len(d.entries)} configurations, {sum(len(e.get('files', {})) for e in d.entries.values())} files, "
          f"{total:.1f} s; " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(stages.items())))
    if args.write:
        Path(args.write).write_text(json.dumps({"digests": d.entries, "times": d.times}, indent=1, sort_keys=True))
    if args.check:
        old = json.loads(Path(args.check).read_text())
        if not args.lava:               # a run without Lava compares everything but Lava's outputs
            old["digests"] = {k: {kk: vv for kk, vv in v.items() if kk != "lava"} for k, v in old["digests"].items()}
            old["times"] = {k: {kk: vv for kk, vv in v.items() if kk != "lava"} for k, v in old["times"].items()}
        diffs = compare(old["digests"], d.entries) if args.only is None else \
            compare({k: v for k, v in old["digests"].items() if d.wanted(k)}, d.entries)
        old_stages: dict = {}
        for times in old["times"].values():
            for k, v in times.items():
                old_stages[k] = old_stages.get(k, 0.0) + v
        print("timing vs the recorded run: " + ", ".join(
            f"{k} {v:.1f} s (was {old_stages.get(k, float('nan')):.1f} s)" for k, v in sorted(stages.items())))
        if diffs:
            print(f"{len(diffs)} differences:")
            print("\n".join("  " + s for s in diffs))
            return 1
        print("identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
