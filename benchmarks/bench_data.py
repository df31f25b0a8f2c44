"""Where the benchmarks find the shared real data: the rule of the tests (tests/conftest.py's DATA).

$NEURODEPLOY_DATA if set (a git worktree, whose ../shared is not the data's), else ../shared/data
beside the repository (a clone with the shared folder beside it, as CI lays it out)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("NEURODEPLOY_DATA", ROOT.parent / "shared" / "data"))


def cifar_subset() -> Path:
    """The CIFAR-10 subset (train_x/y, test_x/y) the CIFAR benchmarks read by default."""
    return data_dir() / "cifar10_subset.npz"
