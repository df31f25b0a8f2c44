"""`rate`: integrate-and-fire rate coding, the baseline every scheme is compared with.

options.py  its options          neurons.py  RateEncoder, RateIF
compile.py  the flow             kernel.py   the simulator (lock-step IF neurons)
lava/       its Lava processes   export.py   NIR          costs.py  its spike model for reports
"""
from __future__ import annotations

from ..base import Scheme
from .neurons import RateEncoder, RateIF
from .options import RateOptions


def _export_nir(net, path, args) -> str:
    from .export import check_expressible, export_nir, run_steps
    check_expressible(net, str(args.compiled))
    export_nir(net, path, v_init=args.v_init, readout=args.readout, delays=args.delays)
    return (f"NIR, {len(net.neuron_layers())} layers, run {run_steps(net)} steps of dt=1; input = rate-encoder "
            "spikes, see neurodeploy.schemes.rate.export")


class Rate(Scheme):
    name = "rate"
    title = "integrate-and-fire rate coding over --timesteps steps (default 32)"
    Options = RateOptions
    neuron_types = (RateEncoder, RateIF)
    passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu"]
    guarantee = "none: rate coding approximates the quantised ANN (mismatches are expected)"
    exact = False
    timesteps_help = "the T of the rate code (default 32)"
    exporters = {"nir": _export_nir}
    compare_sweep = ("--rate-timesteps", "T values for rate", [4, 8, 16, 32, 64])

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    def resolved_options(self, options, net) -> dict:
        return {"timesteps": net.meta["rate_timesteps"]}

    def lava(self):
        from . import lava
        return lava

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def simulate_lava(self, net, x):
        from .lava import run_lava
        res = run_lava(net, x)
        return res.output, {name: int(c.sum()) for name, c in res.counts.items()}

    def spike_counts(self, neuron, codes, trains):
        """A rate neuron's code is its spike count (no timing)."""
        return codes.reshape(codes.shape[0], -1)

    def compare_configs(self, sweep: list | None) -> list[dict]:
        ts = sweep or self.compare_sweep[2]
        return [{"name": f"rate_T{t}", "options": {"timesteps": t}} for t in ts]


SCHEME = Rate()
