"""`--workers N`: a command's batches (compare: its configurations) as Ray tasks, merged in input order.

    results = map_items(setup, task, context, items, workers=2)       # [task(setup(context), item), ...]
    results = map_batches(setup, task, context, x, batch_size, workers=2, ray_address="head:6379")

`workers=1` (the default) runs the items one after the other in this process and never imports
ray.  `workers=N > 1` runs each item as a Ray task: on a local Ray instance of N CPUs started
here on demand (and shut down afterwards, also when the run is interrupted), on the instance this
process already joined (`ray.init()` by the caller: used as it is, left running), or on the cluster
at `ray_address` (`ray start --head` there; its address on the command line).  At most 2N tasks
are in flight, so the inputs travel to the cluster batch by batch, not all at once.

Results are the serial run's, byte for byte: each task gets its item and the shared context (our
own objects and numpy arrays through Ray's object store; no user file is pickled), every worker
pins its CPU numerics (`reproducible.pin_cpu_numerics`: one thread, the same float code path on
any x86-64 CPU), and the results are returned in input order whatever order the tasks finish in.
A worker process that dies has its task run again (Ray's `max_retries`, MAX_RETRIES times).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Sequence

from .errors import NeurodeployError
from .progress import progress_bar

__all__ = ["check_workers", "map_items", "map_batches", "MAX_RETRIES"]

MAX_RETRIES = 3                 # re-runs of a task whose worker process died (Ray's max_retries)
CONNECT_TIMEOUT_S = 5.0         # an unreachable --ray-address is reported after this long
IN_FLIGHT_PER_WORKER = 2        # tasks queued per worker: one running, one ready to start
# what a Ray instance we start needs: no usage statistics sent anywhere, no dashboard
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


def check_workers(workers, ray_address: str | None = None, device: str = "cpu") -> int:
    """The number of workers: an integer >= 1; a cluster address and a GPU device need the Ray path."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise NeurodeployError(f"{workers!r} is not a number of workers (an integer >= 1)", "--workers",
                               "use --workers 1 (the default, no Ray) or e.g. --workers 4")
    if ray_address is not None and workers == 1:
        raise NeurodeployError("a Ray cluster runs batches in parallel; --workers 1 runs them here",
                               f"--ray-address {ray_address}", "add --workers N (N > 1), or drop --ray-address")
    if workers > 1 and str(device) != "cpu":
        raise NeurodeployError(f"Ray workers simulate on CPUs, not on {device}", "--workers",
                               "drop --device, or use --workers 1 for a GPU run")
    if ray_address is not None:
        _check_reachable(ray_address)           # before the work, and in bounded time
    return workers


def map_batches(setup: Callable, task: Callable, context, x, batch_size: int, *, workers: int = 1,
                ray_address: str | None = None, progress: bool = False, desc: str = "", unit: str = "sample") -> list:
    """`map_items` over the batches x[0:batch_size], x[batch_size:2*batch_size], ... (a memory-mapped x
    is read one batch at a time); the progress bar counts samples."""
    from .sim.core import check_batch_size
    batch_size = check_batch_size(batch_size)
    starts = range(0, len(x), batch_size)
    return map_items(setup, task, context, _Batches(x, starts, batch_size), workers=workers,
                     ray_address=ray_address, progress=progress, desc=desc, unit=unit,
                     sizes=[min(batch_size, len(x) - s) for s in starts])


class _Batches(Sequence):
    """x's batches, sliced when asked for (a memory map stays on disk until a batch is sent)."""

    def __init__(self, x, starts: range, batch_size: int):
        self.x, self.starts, self.batch_size = x, starts, batch_size

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        start = self.starts[i]
        return self.x[start:start + self.batch_size]


def map_items(setup: Callable, task: Callable, context, items: Sequence, *, workers: int = 1,
              ray_address: str | None = None, progress: bool = False, desc: str = "", unit: str = "it",
              sizes: Sequence[int] | None = None) -> list:
    """[task(setup(context), item) for item in items], in input order.

    setup and task are module-level functions (a worker imports them by name); setup runs once per
    worker process (its result is kept there for the following items of this run).  sizes: what
    each item adds to the progress bar (default 1 each).  workers=1: here, one by one, no Ray."""
    check_workers(workers, ray_address)
    sizes = [1] * len(items) if sizes is None else list(sizes)
    with progress_bar(total=sum(sizes), desc=desc, unit=unit, enabled=progress) as bar:
        if workers == 1:
            state = setup(context)
            results = []
            for item, size in zip(items, sizes):
                results.append(task(state, item))
                bar.update(size)
            return results
        with ray_instance(workers, ray_address) as ray:
            return _map_on_ray(ray, setup, task, context, items, sizes, workers, bar)


# -- the Ray side ---------------------------------------------------------------------------------

_worker_state: dict = {}         # in a worker process: {run token: setup's result}, the latest run only


def _run_task(token: str, boxed_context: list, setup: Callable, task: Callable, item):
    """A Ray task: the item's result.  The context comes boxed in a list so that Ray hands over its
    reference unresolved: it is fetched (and `setup` run) once per worker process and run."""
    from .reproducible import pin_cpu_numerics
    pin_cpu_numerics()          # same float code path and one thread in every worker: idempotent
    if token not in _worker_state:
        import copy

        import ray
        _worker_state.clear()   # a worker lives on across runs: keep only this one's state
        # a copy: the object store hands out read-only arrays, which torch warns about wrapping
        _worker_state[token] = setup(copy.deepcopy(ray.get(boxed_context[0])))
    return task(_worker_state[token], _writable(item))


def _writable(item):
    """An array from the object store (read-only) as a writable copy; anything else as it is."""
    import numpy as np
    return np.array(item) if isinstance(item, np.ndarray) and not item.flags.writeable else item


def _map_on_ray(ray, setup, task, context, items, sizes, workers, bar) -> list:
    remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_run_task)
    token = uuid.uuid4().hex
    boxed = [ray.put(context)]
    refs: list = []
    pending: dict = {}
    results: list = [None] * len(items)
    next_item = 0
    try:
        while next_item < len(items) or pending:
            while next_item < len(items) and len(pending) < IN_FLIGHT_PER_WORKER * workers:
                ref = remote.remote(token, boxed, setup, task, items[next_item])
                pending[ref] = next_item
                refs.append(ref)
                next_item += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                results[i] = _result(ray, ref, i)
                bar.update(sizes[i])
    except BaseException:       # an error or Ctrl-C: stop what is still queued or running
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    return results


def _result(ray, ref, i: int):
    """A task's value; its error re-raised as the serial run raises it (a NeurodeployError stays one)."""
    import copy
    try:
        return copy.deepcopy(ray.get(ref))      # writable arrays, as the serial run's (the store's are read-only)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
        raise NeurodeployError(f"the Ray worker running item {i} died {MAX_RETRIES + 1} times "
                               f"({type(exc).__name__})", "--workers",
                               "check the workers' memory (a batch may be too large: lower --batch-size)") from None


@contextlib.contextmanager
def ray_instance(workers: int, address: str | None):
    """Yields the ray module, connected: to `address`, to the instance this process already joined,
    or to a local one of `workers` CPUs started here, which is shut down on the way out (an error or
    Ctrl-C included)."""
    os.environ.update(RAY_ENV)          # before ray is imported: it reads them at import and start
    import ray
    if ray.is_initialized():
        yield ray
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        try:
            if address is None:
                ray.init(num_cpus=workers, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        finally:
            if threading.current_thread() is threading.main_thread():
                # ray.init makes SIGTERM exit on the spot (sys.exit); ours (`signals.handled`) cleans up as
                # Ctrl-C does and says so: back to it
                signal.signal(signal.SIGTERM, sigterm)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        where = f"--ray-address {address}" if address else "--workers"
        raise NeurodeployError(f"cannot start Ray ({_first_line(exc)})", where,
                               "check the address (`ray status` on the head node prints it)" if address
                               else "use --workers 1 to run without Ray") from None
    except BaseException:           # Ctrl-C while Ray starts: what started goes too
        ray.shutdown()
        raise
    try:
        yield ray
    finally:
        ray.shutdown()      # disconnects from a cluster; stops the local instance we started

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _check_reachable(address: str) -> None:
    """A cluster address (host:port, ray://host:port) that nothing answers at is a one-line error after at
    most CONNECT_TIMEOUT_S, not Ray's long retry loop; "auto" (the cluster this machine belongs to) is
    left to Ray."""
    if address == "auto":
        return
    where, hint = f"--ray-address {address}", "start the cluster with `ray start --head` and pass the address it prints"
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise NeurodeployError("is not a Ray cluster address (HOST:PORT)", where, hint)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise NeurodeployError(f"cannot reach a Ray cluster there ({reason})", where, hint) from None
