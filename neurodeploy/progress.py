"""Progress bars (tqdm on stderr) that stay quiet when not wanted or not a terminal."""
from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True):
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
               disable=not enabled or not sys.stderr.isatty(), dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
