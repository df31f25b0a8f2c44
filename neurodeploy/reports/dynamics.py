"""What the report plots per layer beside the costs: membrane headroom and accuracy over time.

`dynamics(net, x)` runs the network once more through its scheme's kernel with a `sim.core.Probe`
(`Scheme.run_probed`) and returns

- `state`: per layer, the largest |value| its state register held over the inputs and every step
  (membrane, accumulator, sigma; before any wrap or saturation), the register's signed width
  (the neuron's own `state_bits` where it has one, else the target's `neuron.state_bits`) and the
  headroom left in bits: width - 1 - bits(peak).  A negative headroom is an overflow;
- `accuracy_by_step`: with labels, the share of samples whose readout already points at the right
  class after each time step, for schemes whose readout accumulates over the run (rate, sdnn, cuba,
  reverb); None for schemes whose readout holds a value only after the last step (bitplane, sws).
"""
from __future__ import annotations

import numpy as np

from ..errors import NeurodeployError
from ..ir.spiking import SpikingGraph
from ..registry import get_scheme
from ..sim import engine
from ..sim.core import Probe


def state_width(net: SpikingGraph, layer) -> int | None:
    """Signed width in bits of the layer's state register: the neuron's own `state_bits` where it
    has one, else the target's (`meta["target_spec"]`); None when neither says."""
    own = getattr(layer.neuron, "state_bits", None)
    if own:
        return int(own)
    spec = net.meta.get("target_spec")
    try:
        if not spec:                  # a graph compiled without compile_graph (e.g. cuba.compile_lif)
            from ..target import load_target
            spec = load_target(net.target).to_dict()
        return int(spec["neuron"]["state_bits"])
    except (KeyError, TypeError, ValueError, NeurodeployError):
        return None


def dynamics(net: SpikingGraph, x: np.ndarray, batch_size: int = 256, device: str = "cpu",
             labels: np.ndarray | None = None) -> dict:
    scheme = get_scheme(net.scheme)
    prep = engine.prepare(net, device)
    peaks: dict[str, int] = {}
    correct = None
    for start, xb in engine.iter_batches(x, batch_size):
        probe = Probe()
        scheme.run_probed(prep, xb, probe)
        for k, v in probe.state_peak.items():
            peaks[k] = max(peaks.get(k, 0), int(v))
        if labels is not None and probe.readout_steps:
            yb = np.asarray(labels[start:start + len(xb)])
            hits = np.array([int((r.argmax(1) == yb).sum()) for r in probe.readout_steps])
            correct = hits if correct is None else correct + hits
    state = []
    for layer in net.neuron_layers():
        width = state_width(net, layer)
        peak = peaks.get(layer.name)
        bits = None if peak is None else (peak.bit_length() if peak > 0 else 0)
        state.append({"layer": layer.name, "peak": peak, "peak_bits": bits, "state_bits": width,
                      "headroom_bits": None if bits is None or width is None else int(width - 1 - bits)})
    by_step = None
    if correct is not None:
        by_step = [{"step": t + 1, "accuracy": float(c / len(x))} for t, c in enumerate(correct)]
    return {"state": state, "accuracy_by_step": by_step,
            "latency_steps": net.meta.get("latency_steps"),
            "recorded": bool(peaks)}
