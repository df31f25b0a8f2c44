"""`--workers N`: simulate, verify and compare as Ray tasks give the serial run's bytes (neurodeploy.workers).

One local Ray instance of 2 CPUs (the module fixture `ray_cluster`, started in this process) serves
the in-process runs, which find it already joined and use it as it is; the command lines started as
processes join it by its address (--ray-address).  Only `test_local_instance_started_and_interrupted`
starts (and must stop) an instance of its own.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT
from neurodeploy.cli import main
from test_cli import run

MODEL = ROOT / "models" / "digits_qcfs.onnx"
X = ROOT / "models" / "digits_test_x.npy"
Y = ROOT / "models" / "digits_test_y.npy"


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray instance of 2 CPUs, joined by this process; yields its address (HOST:PORT)."""
    ray = pytest.importorskip("ray")
    from neurodeploy.workers import RAY_ENV
    os.environ.update(RAY_ENV)
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("workers") / "net"
    assert main(["compile", str(MODEL), "-o", str(out)]) == 0
    return out


def _main(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().out


def _files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_simulate_verify_compare_are_the_serial_bytes(ray_cluster, compiled, tmp_path, capsys):
    """--workers 2 (7 batches of 64 over 2 workers, finishing in any order) writes and prints what
    --workers 1 does: simulate's .npy byte for byte and its JSON but for the timing; verify's JSON and
    text; compare's every file (networks, tables, plots, manifest) and its table."""
    runs = {}
    for n in ("1", "2"):
        rc, out = _main(capsys, "simulate", compiled, "--input", X, "-o", tmp_path / f"sim{n}.npy",
                        "--batch-size", "64", "--workers", n, "--json")
        assert rc == 0
        summary = json.loads(out)
        for timing in ("seconds", "samples_per_second", "output"):
            summary.pop(timing)
        verify = [_main(capsys, "verify", compiled, "--model", MODEL, "--input", X, "--labels", Y,
                        "--batch-size", "64", "--workers", n, *flags) for flags in (["--json"], [])]
        rc, table = _main(capsys, "compare", MODEL, "--input", X, "--labels", Y, "--schemes", "bitplane,rate",
                          "--rate-timesteps", "4,8", "--workers", n, "-o", tmp_path / f"cmp{n}")
        assert rc == 0
        runs[n] = {"npy": (tmp_path / f"sim{n}.npy").read_bytes(), "summary": summary, "verify": verify,
                   "compare": _files(tmp_path / f"cmp{n}"), "table": table}
    assert runs["1"]["verify"][0][0] == 0 and json.loads(runs["1"]["verify"][0][1])["samples"] == 450
    assert set(runs["1"]["compare"]) >= {"compare.json", "bitplane/ir.json", "rate_T4/ir.json", "rate_T8/ir.json"}
    for key in runs["1"]:
        assert runs["2"][key] == runs["1"][key], key


def _clean_error(capsys, argv, *needles) -> None:
    """main(argv) ends in one line on stderr and exit status 2 (argparse's errors and ours alike)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:           # argparse's usage errors
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (rc, err)
    for n in needles:
        assert n in err, (n, err)


def test_bad_worker_counts_and_addresses(compiled, tmp_path, capsys):
    """No Ray for these: one line, exit 2, nothing written; an address nothing listens at is
    refused after at most workers.CONNECT_TIMEOUT_S, before any work."""
    out = tmp_path / "y.npy"
    for n in ("0", "-2"):
        _clean_error(capsys, ["simulate", compiled, "--input", X, "-o", out, "--workers", n],
                     f"--workers: {n} is not a number of workers")
    _clean_error(capsys, ["verify", compiled, "--model", MODEL, "--input", X, "--labels", Y, "--workers", "0"],
                 "--workers")
    _clean_error(capsys, ["compare", MODEL, "--input", X, "--labels", Y, "--workers", "-1", "-o", tmp_path / "c"],
                 "--workers")
    _clean_error(capsys, ["simulate", compiled, "--input", X, "-o", out, "--workers", "two"], "--workers")
    _clean_error(capsys, ["simulate", compiled, "--input", X, "-o", out, "--ray-address", "127.0.0.1:1"],
                 "--ray-address 127.0.0.1:1", "--workers N")
    _clean_error(capsys, ["simulate", compiled, "--input", X, "-o", out, "--workers", "2", "--ray-address",
                          "127.0.0.1:1"], "--ray-address 127.0.0.1:1: cannot reach a Ray cluster there",
                 "ray start --head")
    _clean_error(capsys, ["verify", compiled, "--model", MODEL, "--input", X, "--labels", Y, "--workers", "2",
                          "--ray-address", "no-port"], "--ray-address no-port: is not a Ray cluster address")
    _clean_error(capsys, ["simulate", compiled, "--input", X, "-o", out, "--workers", "2", "--engine", "lava"],
                 "--engine lava", "drop --workers")
    assert not out.exists() and not (tmp_path / "c").exists()


def test_one_worker_never_imports_ray(compiled, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from neurodeploy.cli import main
        assert main(["simulate", {str(compiled)!r}, "--input", {str(X)!r}, "-o", {str(tmp_path / 'y.npy')!r}]) == 0
        assert main(["verify", {str(compiled)!r}, "--model", {str(MODEL)!r}, "--input", {str(X)!r},
                     "--labels", {str(Y)!r}]) == 0
        print("ray" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


# -- a worker that dies: its task runs again ------------------------------------------------------

def _marker(context):
    return context


def _die_once_then_double(marker, item):
    """Kills its own worker process the first time any task of the run gets here (the marker file
    says whether it happened); every other call doubles its item."""
    if item == 3 and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(1)
    return 2 * item


@pytest.mark.slow
def test_a_dying_worker_has_its_task_retried(ray_cluster, tmp_path):
    import ray
    from neurodeploy.workers import map_items
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])     # the workers cannot import tests/
    marker = tmp_path / "died"
    try:
        assert map_items(_marker, _die_once_then_double, str(marker), list(range(8)), workers=2) == \
            [2 * i for i in range(8)]
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()          # the worker did die, and the run still has every result


# -- a cluster by its address; an instance started for the run, interrupted -------------------------

@pytest.mark.slow
def test_cluster_by_address(ray_cluster, compiled, tmp_path):
    """A command started as a process joins the cluster at --ray-address; the same bytes."""
    assert main(["simulate", str(compiled), "--input", str(X), "-o", str(tmp_path / "a.npy")]) == 0
    r = run("simulate", compiled, "--input", X, "-o", tmp_path / "b.npy", "--batch-size", "100",
            "--workers", "2", "--ray-address", ray_cluster)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()


INTERRUPTED = """
import json, os, signal, sys, threading, time
from neurodeploy import signals
from neurodeploy.cli import main

def interrupt_when_ray_is_up():
    # Ray is up, and ray.init's own SIGTERM handler has given way to ours again
    while not getattr(sys.modules.get("ray"), "is_initialized", lambda: False)() \\
            or signal.getsignal(signal.SIGTERM) is not signals._raise_terminated:
        time.sleep(0.01)
    os.kill(os.getpid(), int(sys.argv[4]))

threading.Thread(target=interrupt_when_ray_is_up, daemon=True).start()
rc = main(["simulate", sys.argv[1], "--input", sys.argv[2], "-o", sys.argv[3], "--batch-size", "1", "--workers", "2"])
time.sleep(1)
children = []
for pid in os.listdir("/proc"):
    try:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        continue
    if pid.isdigit() and int(stat[1]) == os.getpid() and stat[0] != "Z":
        children.append(pid)
print(json.dumps({"rc": rc, "ray_up": sys.modules["ray"].is_initialized(), "children": children}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated (SIGTERM)")])
def test_local_instance_started_and_interrupted(tmp_path, sig, said):
    """Ctrl-C (or SIGTERM) while a local instance started for the run is up: exit 130 (143), no output
    file, the instance shut down (no process of it left, this process no longer joined)."""
    x = np.concatenate([np.load(X)] * 4)            # 1800 batches of 1: the run cannot finish first
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    out = tmp_path / "y.npy"
    net = tmp_path / "net"
    assert main(["compile", str(MODEL), "-o", str(net)]) == 0
    r = subprocess.run([sys.executable, str(script), str(net), str(tmp_path / "x.npy"), str(out), str(int(sig))],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result == {"rc": 128 + sig, "ray_up": False, "children": []}, r.stderr
    assert f"{said} -- no partial output was written" in r.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["interrupted.py", "net", "x.npy"]
