"""`sdnn`: sigma-delta neurons with graded spikes, Lava-DL's native way to run ANNs on Loihi 2.

options.py  its options          neurons.py  DeltaEncoder, SigmaDelta, Sigma (Lava's arithmetic)
compile.py  the flow             kernel.py   the simulator (layer after layer; lock-step engine; bit-exact with Lava)
export.py   NetX HDF5 (Lava-DL)
netx.py     NetX files of sigma-delta neurons in these neurons (the NetX front end asks it), and in Lava
"""
from __future__ import annotations

from ...errors import NeurodeployError
from ..base import Scheme
from .neurons import DeltaEncoder, Sigma, SigmaDelta
from .options import SdnnOptions


def _export_netx(net, path, args) -> str:
    from .export import export_netx
    return f"Lava-DL NetX HDF5, {export_netx(net, path)} layers of sigma-delta neurons"


class Sdnn(Scheme):
    name = "sdnn"
    title = "sigma-delta neurons with graded spikes (Lava-DL's SDNN; exports to NetX)"
    Options = SdnnOptions
    neuron_types = (DeltaEncoder, SigmaDelta, Sigma)
    passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu"]
    guarantee = ("bit-exact with Lava's fixed-point SigmaDelta/Sigma, and settled codes equal to the integer ReLU "
                 "network (floor(act/64)) on every layer; proven when no hidden bias is positive (vth = 0), "
                 "otherwise only up to one hop after the first layer with a positive bias: deeper layers "
                 "can lose one LSB per early spike to Lava's s >> 6, and verify then says NOT EXACT")
    exact = True
    loihi2_route = ("Lava-DL NetX: `neurodeploy export DIR --format netx -o net.h5`, then "
                    "`netx.hdf5.Network(net_config='net.h5')` on Loihi 2 through lava-loihi (Intel INRC members)")
    exporters = {"netx": _export_netx}
    engines = {"neurodeploy": "layer after layer: each layer's input for a chunk of steps in one synapse call, the "
                              "sigma-delta update in place step by step, silent steps skipped (default)",
               "steps": "the lock-step schedule literally: one step of every layer at a time, int64 (bit-identical, "
                        "slower)"}
    netx_neurons = ("SDNN",)       # NetX files of these neurons import as sdnn networks (netx.py)
    no_lava_hint = "export it to NetX (neurodeploy export DIR --format netx) and run that in Lava-DL"

    def __init__(self, vth: int = 0):
        if vth < 0:
            raise NeurodeployError(f"sdnn threshold {vth} must be >= 0", "sdnn vth")
        self.vth = int(vth)

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    unused_options = ("timesteps",)     # a network settles after its depth + 1 steps (SdnnOptions refuses it)

    def equal_layers(self, graph) -> set[str]:
        """Every layer, unless a threshold vth > 0 makes a dead zone on purpose (then no layer:
        changes below vth stay in the residue, and the codes approximate the reference)."""
        if any(getattr(l.neuron, "vth", 0) for l in graph.neuron_layers()):
            return set()
        return {l.name for l in graph.layers}

    def mismatch_note(self, graph, wrong: dict[str, int]) -> str:
        """Whether the mismatching layers lie beyond the layers proven exact (`compile.exact_layers`):
        then they are Lava's per-step floor of early spikes, else a bug."""
        from .compile import exact_layers
        proven = exact_layers(graph)
        inside = [k for k in wrong if k in proven]
        if inside:
            return (f"{', '.join(inside)} {'is' if len(inside) == 1 else 'are'} proven exact and still "
                    "differ: a bug, please report it")
        ordered = [l.name for l in graph.layers if l.name in proven]
        return (f"every mismatching layer lies beyond those proven exact ({', '.join(ordered)}): after a "
                "layer with a positive bias, each early spike can lose one LSB to Lava's s >> 6 "
                "(a network without positive hidden biases, or the bitplane scheme, is exact)")

    def netx_files(self):
        from . import netx
        return netx

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def run_probed(self, prep, x, probe):
        from .kernel import run_batch
        return run_batch(prep, x, False, probe)


SCHEME = Sdnn()
