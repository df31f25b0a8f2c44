"""The simulator's public entry points (`prepare`, `run_batch`, `simulate`); the code is in `sim/core.py`."""
from .core import *  # noqa: F401,F403
from .core import _bias, _branch_current, _run_bitplane, _run_rate, _shape_after  # noqa: F401
