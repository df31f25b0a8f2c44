"""Shared pytest set-up: one float code path on every CPU, the --runslow switch, the repository's
paths, the Lava fixtures and the digits data.

Every expected value in this suite must hold on any x86-64 CPU (Intel or AMD, AVX2 or AVX-512,
any core count).  Tests that train a model, or compare float results of PyTorch, would otherwise
see the CPU's BLAS kernels and thread count in their last bits, and training grows those bits into
different weights.  So the whole session runs on the pinned path of
`neurodeploy.reproducible.pin_cpu_numerics` (one thread, MKL's CNR branch COMPATIBLE, no
oneDNN/NNPACK, ATen's AVX2 kernels), set here before anything imports torch; the `neurodeploy`
commands the tests start inherit it (NEURODEPLOY_PIN_NUMERICS=1).  onnxruntime picks its kernels
per CPU whatever we do: comparisons with it carry tolerances derived from float32 arithmetic.

Tests import the paths (`from conftest import ROOT, MODELS, DATA`) and ask for the fixtures by name:
`lava` (Lava installed, with neurodeploy's compatibility hook: skipped only when lava-nc is not
installed at all; any other failure fails the test), `netx` (the same for lava-dl's NetX), and
`digits` (the digits test split the models in models/ were trained for).
"""
import os
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.reproducible import pin_cpu_numerics

pin_cpu_numerics()

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
# real data beside the clone (CI has the same layout); NEURODEPLOY_DATA points elsewhere (a worktree)
DATA = Path(os.environ.get("NEURODEPLOY_DATA", ROOT.parent / "shared" / "data"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lava():
    """Lava (lava-nc) importable through neurodeploy's compatibility hook; the test is skipped only
    when lava-nc is not installed."""
    pytest.importorskip("lava")
    from neurodeploy.backends.lava import ensure_lava
    ensure_lava()


@pytest.fixture(scope="session")
def netx(lava):
    """Lava-DL's NetX (lava.lib.dl.netx) importable; skipped only when lava-dl is not installed."""
    return pytest.importorskip("lava.lib.dl.netx")


@pytest.fixture(scope="session")
def digits():
    """The digits test split of models/: (x float32 (N, 1, 8, 8), y int (N,))."""
    return np.load(MODELS / "digits_test_x.npy"), np.load(MODELS / "digits_test_y.npy")


def pytest_terminal_summary(terminalreporter):
    """The adversarial suites' counts per category (tests/adversarial.py), when any ran."""
    import adversarial
    line = adversarial.summary_line()
    if line:
        terminalreporter.write_line(line)
