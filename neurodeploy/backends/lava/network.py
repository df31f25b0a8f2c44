"""The part of running a compiled network in Lava that every scheme's Lava back end shares.

`LavaNetwork` holds the connected processes of a network loaded with N samples, runs them
(terminating Lava's forked processes when a model fails, instead of hanging), reads the readout
and the spike sinks back (`collect`, per `mapping.NetworkPlan`; a scheme with another schedule
overrides it) and checks our process models' `error` Vars.  `adapt_port` and `lava_bias` map IR
shapes and biases to Lava's (W, H, C) layout.  Absolute imports: Lava re-executes this directory.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from neurodeploy.backends.lava.compat import ensure_lava
from neurodeploy.backends.lava.mapping import NetworkPlan, from_lava, lava_shape
from neurodeploy.errors import NeurodeployError

ensure_lava()

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402


@dataclass
class LavaNetwork:
    """The connected Lava processes of one compiled network, loaded with N samples."""
    plan: NetworkPlan
    n_samples: int
    input_planes: np.ndarray       # uint8 (N, T_in, *input shape), host-computed
    injector: object               # lava.proc.io.source.RingBuffer
    layers: dict                   # layer name -> BitplaneIF / BitplaneReadout (input -> injector)
    branches: dict                 # layer name -> [[processes of branch 0], ...]
    output_reader: object          # lava.proc.io.sink.RingBuffer on the readout's s_out
    spike_readers: dict = field(default_factory=dict)   # layer name -> sink on its s_out
    _ran: bool = False
    _failed: bool = False

    @property
    def num_steps(self) -> int:
        return self.n_samples * self.plan.period

    @property
    def readout(self):
        return self.layers[self.plan.graph.output.name]

    def run_config(self):
        return Loihi2SimCfg(select_tag="fixed_pt")

    def run(self) -> float:
        """Simulate all samples back to back; returns the wall time.

        If a process model fails, Lava raises but leaves its forked processes waiting (its
        own `stop()` would then block forever), so they are terminated here before the error
        is re-raised as a NeurodeployError.
        """
        t0 = time.perf_counter()
        try:
            self.injector.run(condition=RunSteps(num_steps=self.num_steps), run_cfg=self.run_config())
        except Exception as exc:
            self._failed = True
            self.stop()
            raise NeurodeployError(f"Lava simulation failed ({type(exc).__name__}: {exc})",
                                   "neurodeploy.backends.lava", "see the process model errors above") from exc
        self._ran = True
        return time.perf_counter() - t0

    def stop(self) -> None:
        """Shut Lava's runtime down (terminating its processes if a run failed)."""
        runtime = getattr(self.injector, "runtime", None)
        if runtime is None:
            return
        if not self._failed:
            self.injector.stop()
            return
        infra = getattr(runtime, "_messaging_infrastructure", None)
        for actor in list(getattr(infra, "actors", [])):
            if actor.is_alive():
                actor.terminate()
            actor.join(timeout=5)
        try:
            infra._smm.shutdown()
        except Exception:                           # noqa: BLE001 - best effort on a broken runtime
            pass

    def collect(self) -> tuple[np.ndarray, dict]:
        """(readout_state (N, F) int64, planes per layer) from the sinks, after all
        `num_steps` steps have run (`run()`, or `injector.run(RunSteps(num_steps), cfg)`)."""
        if not self._ran and getattr(self.injector, "runtime", None) is None:
            raise NeurodeployError("the Lava network has not been run", "LavaNetwork.collect", "call run() first")
        self.check_errors()
        plan, n, p = self.plan, self.n_samples, self.plan.period
        out_lp = plan.layers[plan.graph.output.name]
        data = np.asarray(self.output_reader.data.get()).astype(np.int64)     # (*lava shape, N*P)
        idx = np.arange(n) * p + out_lp.acc_end
        state = from_lava(np.moveaxis(data[..., idx], -1, 0), lead=1).reshape(n, -1)
        planes = {plan.graph.input.name: self.input_planes}
        for name, sink in self.spike_readers.items():
            lp = plan.layers[name]
            d = np.asarray(sink.data.get())
            t_idx = (np.arange(n)[:, None] * p + lp.emit_start + np.arange(lp.n_steps)[None, :]).reshape(-1)
            sel = np.moveaxis(d[..., t_idx], -1, 0).reshape((n, lp.n_steps) + d.shape[:-1])
            planes[name] = from_lava(sel, lead=2).astype(np.uint8)
        return state, planes

    def custom_processes(self) -> list:
        procs = [p for p in self.layers.values() if hasattr(p, "error")]
        procs += [p for made in self.branches.values() for branch in made for p in branch if hasattr(p, "error")]
        return procs

    def check_errors(self) -> None:
        """Raise if any of our process models caught an exception (see processes.GuardedModel)."""
        bad = [p.name for p in self.custom_processes() if int(np.asarray(p.error.get()).reshape(-1)[0])]
        if bad:
            raise NeurodeployError(f"Lava process model(s) failed: {', '.join(bad)}", "neurodeploy.backends.lava",
                                   "see the tracebacks printed above")


def adapt_port(port, from_shape: tuple, to_shape: tuple):
    """Connectable view of `port` (carrying IR shape from_shape) for an input of to_shape."""
    from_shape, to_shape = tuple(from_shape), tuple(to_shape)
    if from_shape == to_shape:
        return port
    if len(from_shape) == 3 and len(to_shape) == 1 and int(np.prod(from_shape)) == to_shape[0]:
        return port.transpose([2, 1, 0]).flatten()     # Lava (W,H,C) -> PyTorch (C,H,W) flatten order
    raise NeurodeployError(f"cannot connect a {from_shape} tensor to a {to_shape} input", "Lava mapping")


def lava_bias(layer) -> np.ndarray:
    """Per-channel (C,) or per-feature (F,) bias mantissa broadcast to the Lava shape."""
    b = np.asarray(layer.bias_mant, dtype=np.int64)
    shape = lava_shape(layer.shape)
    if len(layer.shape) == 3:
        b = np.broadcast_to(b.reshape(1, 1, -1) if b.ndim == 1 else b, shape)
    return np.broadcast_to(b, shape).astype(np.int32)
