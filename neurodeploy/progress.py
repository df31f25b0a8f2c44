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


COMPILE_STAGES = ("front end", "passes", "scheme flow", "allocation", "checks")


@contextlib.contextmanager
def stage_bar(stages: tuple, desc: str, enabled: bool = True):
    """A bar over named stages: yields `stage(name)`, called as each stage starts (the bar counts the
    stages finished and shows the one running)."""
    with progress_bar(total=len(stages), desc=desc, unit="stage", enabled=enabled) as bar:
        started = []

        def stage(name: str) -> None:
            if started:
                bar.update(1)
            started.append(name)
            bar.set_postfix_str(name)

        yield stage
