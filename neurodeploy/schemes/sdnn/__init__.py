"""`sdnn`: sigma-delta neurons with graded spikes, Lava-DL's native way to run ANNs on Loihi 2.

options.py  its options          neurons.py  DeltaEncoder, SigmaDelta, Sigma (Lava's arithmetic)
compile.py  the flow             kernel.py   the simulator (lock step, bit-exact with Lava)
export.py   NetX HDF5 (Lava-DL), and running it in Lava
"""
from __future__ import annotations

from ...errors import NeurodeployError
from ..base import Scheme
from .neurons import DeltaEncoder, Sigma, SigmaDelta
from .options import SdnnOptions


def _export_netx(net, path, args) -> str:
    from .export import export_netx
    info = export_netx(net, path)
    return f"Lava-DL NetX HDF5, {net.scheme}; load with netx.hdf5.Network: {info}"


class Sdnn(Scheme):
    name = "sdnn"
    title = "sigma-delta neurons with graded spikes (Lava-DL's SDNN; exports to NetX)"
    Options = SdnnOptions
    neuron_types = (DeltaEncoder, SigmaDelta, Sigma)
    passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu"]
    guarantee = ("bit-exact with Lava's fixed-point SigmaDelta/Sigma; settled codes equal the integer ReLU "
                 "network (floor(act/64)) up to one hop after the first layer with a positive bias (all "
                 "layers when no hidden bias is positive; vth = 0); deeper layers may differ by an LSB "
                 "per early spike (reported, not a failure)")
    exact = True
    exporters = {"netx": _export_netx}
    no_lava_hint = "export it to NetX (neurodeploy export DIR --format netx) and run that in Lava-DL"

    def __init__(self, vth: int = 0):
        if vth < 0:
            raise NeurodeployError(f"sdnn threshold {vth} must be >= 0", "sdnn vth")
        self.vth = int(vth)

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    unused_options = ("timesteps",)     # a network settles after its depth + 1 steps (SdnnOptions refuses it)

    def guarantee_holds(self, graph, layer_mismatches: dict[str, int]) -> bool:
        from .compile import exact_layers
        exact = exact_layers(graph)
        return all(n == 0 for name, n in layer_mismatches.items() if name in exact)

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_sdnn
        return run_sdnn(prep, x, record_codes)


SCHEME = Sdnn()
