"""The command line starts at once: building the parser (every `--help`, `--version`, and the first
step of every command) imports none of the heavy libraries (torch, matplotlib, onnx, Lava, ...),
which the commands import only when they run.  Each case runs in a fresh interpreter, so the
modules a case loads are exactly those its start-up needs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("torch", "matplotlib", "onnx", "onnxruntime", "onnxscript", "lava", "h5py", "scipy", "sklearn", "nir",
         "networkx", "brevitas", "qonnx", "ray")

PROBE = """
import json, sys
sys.argv = ["neurodeploy", *json.loads(sys.argv[1])]
from neurodeploy.cli import main
try:
    status = main()
except SystemExit as exc:          # --help and --version end in argparse's exit
    status = exc.code
heavy = %r
print(json.dumps({"status": status, "loaded": sorted(m for m in heavy if m in sys.modules)}))
""" % (HEAVY,)


def _start(*argv: str) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argv))], cwd=ROOT, capture_output=True,
                       text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("compile", "--help"), ("simulate", "--help"),
                                  ("verify", "--help"), ("report", "--help"), ("compare", "--help"),
                                  ("export", "--help")])
def test_help_and_version_import_nothing_heavy(argv):
    out = _start(*argv)
    assert out["status"] in (0, None) and out["loaded"] == [], out


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The check can fail: a command that runs (a compile of a missing file ends in a one-line error
    after its imports) loads torch, and the probe reports it."""
    out = _start("compile", str(tmp_path / "no-such-model.onnx"), "-o", str(tmp_path / "never-written"))
    assert out["status"] == 2 and "torch" in out["loaded"], out
