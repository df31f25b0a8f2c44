"""Threshold balancing for rate coding: every activation becomes a T-level quantiser."""
from __future__ import annotations

from functools import partial

import numpy as np

from ..errors import NeurodeployError
from ..ir import float_graph as fg
from ..ir.float_eval import evaluate
from ..passes import Pass


def balance_thresholds(calibration: np.ndarray | None, timesteps: int, percentile: float = 99.9,
                       keep=()) -> Pass:
    """`threshold_balance` with the compile's calibration data, levels and percentile, as a step of a
    scheme's flow: afterwards every activation is a quantiser."""
    return Pass("threshold_balance", partial(threshold_balance, calibration=calibration, timesteps=timesteps,
                                             percentile=percentile, keep=keep),
                requires=("quantisers_fused",), ensures=("activations_quantised",))


def threshold_balance(graph: fg.FloatGraph, calibration: np.ndarray | None, timesteps: int,
                      percentile: float = 99.9, keep=()) -> fg.FloatGraph:
    """Give every ReLU / quantiser the rate code's T levels and a balanced threshold λ.

    A ReLU's λ is the `percentile` of its input over the calibration samples (robust
    threshold balancing); a QCFS keeps its trained λ.  Each becomes code
    k = clip(floor(x*T/λ + 1/2), 0, T), value k*λ/T: what an IF neuron with threshold λ,
    initial potential λ/2 and T steps computes when its spikes are evenly spread.
    Preserves: QCFS networks exactly when T equals their level count; ReLU networks up to
    the clip at λ and the 1/T resolution.  Quantisers named in `keep` stay as they are (a QDQ
    model's own 8-bit quantisers, which `sws` does not re-calibrate).
    """
    graph = graph.copy()
    relus = [n for n in graph.topo_order() if isinstance(graph.op(n), fg.Relu)]
    lams: dict[str, float] = {}
    if relus:
        if calibration is None:
            raise NeurodeployError(f"the model has {len(relus)} ReLU activation(s); rate coding needs their "
                                   "ranges", graph.source, "pass --calibration x.npy (a few hundred samples)")
        pre = {graph.inputs(n)[0] for n in relus}
        vals = evaluate(graph, np.asarray(calibration, dtype=np.float64), keep=pre)
        for n in relus:
            v = vals[graph.inputs(n)[0]]
            pos = v[v > 0]
            lams[n] = float(np.percentile(pos, percentile)) if pos.size else 1.0
    for name in graph.topo_order():
        op = graph.op(name)
        if name in keep:
            continue
        if isinstance(op, fg.Relu):
            lam = np.asarray(lams[name])
        elif isinstance(op, fg.QuantAct):
            lam = np.asarray(op.out_step) * op.levels
        else:
            continue
        graph.set_op(name, fg.QuantAct(in_scale=timesteps / lam, offset=np.asarray(0.5), levels=timesteps,
                                       out_step=lam / timesteps))
        graph.origin[name] = f"{graph.origin.get(name, 'activation')} -> rate λ"
    return graph
