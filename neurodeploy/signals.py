"""SIGINT and SIGTERM: stop cleanly, whatever the command was doing.

Python turns SIGINT (Ctrl-C) into KeyboardInterrupt, so every `finally:` that removes a temporary
file runs.  SIGTERM (what `kill`, systemd, Slurm and CI runners send) would instead kill the process
on the spot and leave `.tmp-*` files behind; `handled()` makes it raise `Terminated`, a
KeyboardInterrupt, so that it takes the same path: temporary files removed, one line on stderr,
exit status 128 + 15 = 143 (130 for Ctrl-C), as shells report a process killed by that signal.
A reader that closes our stdout early (`neurodeploy ... | head`) ends the command quietly with 141
(128 + SIGPIPE), its outputs written.

`deferred()` holds both signals back for a few file-system calls that must not be cut in half
(replacing an output directory: old out, new in); a signal that arrives meanwhile is delivered
right after.
"""
from __future__ import annotations

import contextlib
import signal
import threading

SIGINT_EXIT, SIGTERM_EXIT, SIGPIPE_EXIT = 128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGPIPE  # 130, 143, 141
_HELD = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM while `handled()` is active; a KeyboardInterrupt so Ctrl-C's clean-up applies."""


def exit_status(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return SIGTERM_EXIT if isinstance(exc, Terminated) else SIGINT_EXIT


def silence_stdout() -> None:
    """After a broken pipe on stdout: point it at /dev/null, so that Python's final flush at exit does
    not print a second error (the shell's reader is gone; there is nobody to tell)."""
    import os
    import sys
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):     # stdout is not a real file (e.g. captured)
        pass


def _raise_terminated(signum, frame):
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled():
    """SIGTERM raises Terminated (SIGINT keeps raising KeyboardInterrupt) inside the block; the
    previous handlers come back after it.  Outside the main thread (where Python cannot install
    handlers) it does nothing."""
    if not _in_main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    old_int = signal.getsignal(signal.SIGINT)
    if old_int is signal.SIG_DFL:            # started with SIGINT at its default: make Ctrl-C raise again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def deferred():
    """Hold SIGINT and SIGTERM back during the block; one that arrived is acted on right after it.

    Done with Python-level handlers that only take note (blocking the signals with pthread_sigmask
    would not do: the kernel hands a process-directed signal to any thread not blocking it, e.g. one
    of torch's, and Python then runs the handler in the main thread all the same)."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in _HELD}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler) -> None:
    """Act on a held signal as its handler would have."""
    if callable(handler):
        handler(signum, None)               # raises KeyboardInterrupt / Terminated
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)         # the default action (terminate)
