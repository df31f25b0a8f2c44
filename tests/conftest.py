"""Shared pytest set-up: one float code path on every CPU, the --runslow switch.

Every expected value in this suite must hold on any x86-64 CPU (Intel or AMD, AVX2 or AVX-512,
any core count).  Tests that train a model, or compare float results of PyTorch, would otherwise
see the CPU's BLAS kernels and thread count in their last bits, and training grows those bits into
different weights.  So the whole session runs on the pinned path of
`neurodeploy.reproducible.pin_cpu_numerics` (one thread, MKL's CNR branch COMPATIBLE, no
oneDNN/NNPACK, ATen's AVX2 kernels), set here before anything imports torch; the `neurodeploy`
commands the tests start inherit it (NEURODEPLOY_PIN_NUMERICS=1).  onnxruntime picks its kernels
per CPU whatever we do: comparisons with it carry tolerances derived from float32 arithmetic.
"""
from neurodeploy.reproducible import pin_cpu_numerics

import pytest

pin_cpu_numerics()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
