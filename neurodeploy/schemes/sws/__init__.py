"""`sws`: stepwise weighted spikes with ternary self-amplifying (TSA) neurons (Gu et al.; digest §3).

options.py  its options          neurons.py  TSAEncoder, TSA
compile.py  the flow (incl. QDQ models and the state bound)
kernel.py   the simulator (digit planes, TSA neurons, schedule)   costs.py  operations per frame
lava/       its Lava processes
"""
from __future__ import annotations

from ..base import Scheme
from .neurons import TSA, TSAEncoder
from .options import SwsOptions


class Sws(Scheme):
    name = "sws"
    title = "stepwise weighted spikes with TSA neurons (--coding-steps, --silent-steps)"
    Options = SwsOptions
    neuron_types = (TSAEncoder, TSA)
    passes = ["fold_linear_affine", "fold_bn", "fuse_quant_act", "drop_redundant_relu",
              "strip_output_quantiser", "fold_zero_points"]
    guarantee = ("every layer's decoded ternary digits equal the quantised ANN's rounded codes while no "
                 "TSA neuron falls behind (guaranteed for Ts >= Tc-1); mismatches are reported")
    exact = False
    timesteps_help = "the coding steps Tc when --coding-steps is not given"

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    unused_options = ("timesteps",)     # --timesteps is another name of --coding-steps, recorded as that

    def resolved_options(self, options, net) -> dict:
        sws = net.meta["sws"]
        return {"coding_steps": sws["coding_steps"], "silent_steps": sws["silent_steps"],
                "state_bound": sws["state_bound"], "state_margin": sws["state_margin"]}

    def guarantee_holds(self, graph, layer_mismatches: dict[str, int]) -> bool:
        return all(v == 0 for v in layer_mismatches.values())

    def lava(self):
        from . import lava
        return lava

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def simulate_lava(self, net, x):
        from .lava import run_lava
        res = run_lava(net, x, record_digits=False)     # codes from the neurons, no spike sinks
        return res.outputs, res.spikes

    def summary_lines(self, net) -> list[str]:
        """The state bound: a calibrated one can overflow on inputs unlike the calibration data."""
        sws = net.meta.get("sws") or {}
        if not sws.get("state_bound"):
            return []
        how = ("static: no input can overflow the state" if sws["state_bound"] == "static" else
               f"calibrated on {sws.get('calibration_samples')} samples x margin {sws.get('state_margin')}: "
               "inputs unlike them can overflow (verify counts it; --state-bound static rules it out)")
        return [f"- TSA state bound: {how}"]


SCHEME = Sws()
