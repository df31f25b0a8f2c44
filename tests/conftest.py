"""Shared pytest set-up: the --runslow switch, the repository's paths, the Lava fixtures and the digits data.

Tests import the paths (`from conftest import ROOT, MODELS, DATA`) and ask for the fixtures by name:
`lava` (Lava installed, with neurodeploy's compatibility hook: skipped only when lava-nc is not
installed at all; any other failure fails the test), `netx` (the same for lava-dl's NetX), and
`digits` (the digits test split the models in models/ were trained for).
"""
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = ROOT.parent / "shared" / "data"          # real data beside the clone (CI has the same layout)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one intra-op thread for a module of tiny-tensor tests: on a shared 2-core machine
    a second thread mostly waits.  Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
