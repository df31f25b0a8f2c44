"""`bitplane`: error-free ANN-to-SNN conversion of a QCFS-trained ANN (Datta et al.; digest §2).

options.py  its options          neurons.py  BitplaneEncoder, BitplaneIF
compile.py  the flow             kernel.py   the simulator (codes engine; planes engine: Horner sums, emission)
lava/       its Lava processes, schedule and network
"""
from __future__ import annotations

from ..base import Scheme
from .neurons import BitplaneEncoder, BitplaneIF
from .options import BitplaneOptions


class Bitplane(Scheme):
    name = "bitplane"
    title = "error-free conversion of a QCFS-trained ANN (default)"
    Options = BitplaneOptions
    neuron_types = (BitplaneEncoder, BitplaneIF)
    passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu", "bias_shift"]
    guarantee = "every layer's decoded spikes equal the quantised ANN's integer codes (zero mismatches)"
    exact = True
    timesteps_help = "T = ceil(log2(Q+1)) from the QCFS levels Q; fewer only with --lossy"
    why_no_export = {"nir": "its neurons accumulate bit planes with doubling, U <- 2U + I, then emit MSB first "
                            "against halving thresholds: NIR has no such primitive"}
    compare_sweep = ("--bitplane-lossy", "lossy bitplane step counts to add, e.g. 2,3", [])
    engines = {"neurodeploy": "one synapse call per layer on the integer codes (U = W·code), then the emission "
                              "as a floor division (default; the cost of the quantised ANN)",
               "planes": "plane by plane as the chip does it: every bit plane through the synapses, Horner sums "
                         "U <- 2U + I(t), emission threshold by threshold (bit-identical, slower)"}
    phased = True           # accumulate the sources' planes, then emit T planes, layer by layer

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    def chip_path(self, layer):
        """The readout accumulates the last layer's planes with doubling, like its BitplaneIF neurons."""
        if layer.neuron.is_readout:
            from ...ir.neurons import ChipPath
            return ChipPath(ChipPath.MICROCODE, "bit-plane readout: accumulates U <- 2U + I over its sources' planes")
        return super().chip_path(layer)

    def resolved_options(self, options, net) -> dict:
        # T: the bit planes the levels need (or the lossy T the user gave)
        lossy = net.meta.get("lossy")
        return {"timesteps": lossy["timesteps"] if lossy else max(net.meta["time_steps_per_layer"].values())}

    def lava(self):
        from . import lava
        return lava

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def run_probed(self, prep, x, probe):
        from .kernel import run_batch
        return run_batch(prep, x, False, probe)

    def simulate_lava(self, net, x):
        from .lava.network import run_lava
        res = run_lava(net, x)
        return res.outputs, {name: int(p.sum()) for name, p in res.planes.items()}

    def lava_period(self, net) -> int:
        from .lava.plan import plan_network
        return plan_network(net).period

    def spike_trains(self, neuron, codes):
        """A code's binary digits, MSB first: exactly the spikes the neuron emitted."""
        from .kernel import encode_planes
        return encode_planes(codes, neuron.n_steps)

    def pooled_spike_counts(self, trains, maxpool):
        """The bit-serial max pool's output spikes per neuron."""
        from .kernel import bitserial_maxpool
        p = bitserial_maxpool(trains, maxpool)
        return p.reshape(p.shape[0], p.shape[1], -1).sum(1)

    def compare_configs(self, sweep: list | None) -> list[dict]:
        return [{"name": "bitplane", "options": {}}] + [
            {"name": f"bitplane_lossy_T{t}", "options": {"timesteps": t, "lossy": True}} for t in (sweep or [])]


SCHEME = Bitplane()
