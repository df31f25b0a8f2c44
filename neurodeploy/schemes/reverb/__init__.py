"""`reverb`: ReverB-SNNs, binary (±1) synapses and graded spikes (Guo et al.; digest §4).

options.py  its options          neurons.py  ReverbEncoder, ReverbNeuron, ReverbReadout
front.py    the PyTorch front end of ReverB models     float_model.py  the float SNN's ops
fold.py     the pass that folds BN and α off the ±1 synapses
compile.py  the flow             kernel.py   the simulator        costs.py  activity
lava/       its Lava processes
"""
from __future__ import annotations

from ...errors import NeurodeployError
from ..base import Scheme
from .neurons import ReverbEncoder, ReverbNeuron, ReverbReadout
from .options import ReverbOptions


class Reverb(Scheme):
    """Binary (1-bit) synapses, graded (payload) spikes, per-channel (or per-neuron) emission scales."""
    name = "reverb"
    title = "a trained ReverB SNN: binary synapses, graded spikes (--payload-bits)"
    Options = ReverbOptions
    neuron_types = (ReverbEncoder, ReverbNeuron, ReverbReadout)
    ann_reference = False      # a trained SNN: the reference is the float SNN (compare_accuracy)
    guarantee = ("none: the fixed-point ReverB SNN approximates the float SNN (payload, weight, bias and threshold "
                 "rounding, Loihi's leak rounding); verify reports both accuracies and their agreement")
    exact = False
    timesteps_help = "the T the ReverB model was trained with (default 4)"

    @property
    def passes(self) -> list:
        from .fold import FOLD_REVERB
        return [FOLD_REVERB]

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    def resolved_options(self, options, net) -> dict:
        return {"timesteps": net.meta["timesteps"], "payload_bits": net.meta["payload_bits"]}

    def lava(self):
        from . import lava
        return lava

    def front_end(self):
        from . import front
        return front

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def simulate_lava(self, net, x):
        from .lava import run_lava
        res = run_lava(net, x)
        return res.output, {name: int((p != 0).sum()) for name, p in res.trains.items()}

    def summary_lines(self, net) -> list[str]:
        """The payload widths asked for and used (a layer's state or bias can force fewer bits)."""
        if not net.meta.get("payload_bits"):
            return []
        used = {k: v["payload_bits_used"] for k, v in net.meta.get("quantisation", {}).items()
                if "payload_bits_used" in v}
        return [f"- graded-spike payloads: {net.meta['payload_bits']} bits asked; used "
                + ", ".join(f"{k} {v}" for k, v in used.items())]

    def float_snn_outputs(self, path, graph, x, timesteps: int, batch_size: int):
        """The float SNN's outputs (mean over T) from the per-step program `nn.export_program` wrote:
        its float graph carries the neurons' τ and V_th, which `float_model.run` steps through."""
        import numpy as np

        from ...frontends.torch import load_pt2
        from ...sim.core import iter_batches
        from .float_model import run
        if path.suffix.lower() != ".pt2":
            raise NeurodeployError(f"cannot run the float {graph.scheme} SNN from '{path.name}'", str(path),
                                   "pass the .pt2 file nn.export_program wrote")
        fgraph = load_pt2(path)
        outs = [run(fgraph, xb, timesteps) for _, xb in iter_batches(x, batch_size)]
        return np.concatenate([np.asarray(o, dtype=np.float64).reshape(len(o), -1) for o in outs])


SCHEME = Reverb()
