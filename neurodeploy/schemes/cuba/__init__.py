"""`cuba`: a LIF SNN trained in neurodeploy (`nn.LIF`, `train.fit`), or a NIR graph of an SNN trained
in snnTorch, Norse, sinabs, SpikingJelly ... (`frontends.nir`), on Loihi 2's stock CUBA LIF.

options.py  its options          neurons.py  CubaEncoder, CubaLIF, CubaReadout (Lava's arithmetic)
compile.py  the flow             kernel.py   the simulator (layer after layer; lock-step engine; bit-exact with Lava's LIF)
front.py    the PyTorch front end of LIF networks (NIR graphs: frontends/nir, options --nir-*)
export.py   NetX HDF5            lava/       the network in stock Lava processes, and NetX in Lava
netx.py     NetX files of CUBA LIF neurons in these neurons (the NetX front end asks it), and in Lava
"""
from __future__ import annotations

from ..base import Scheme
from .neurons import CubaEncoder, CubaLIF, CubaReadout
from .options import CubaOptions


def _export_netx(net, path, args) -> str:
    from .export import export_netx
    return f"Lava-DL NetX HDF5, {export_netx(net, path)} layers of CUBA LIF neurons"


class Cuba(Scheme):
    """`netx=True` (default): every layer is also expressible in a NetX HDF5 file (`export.export_netx`)."""
    name = "cuba"
    title = "a trained LIF SNN on Loihi 2's stock CUBA LIF (--timesteps = its T)"
    Options = CubaOptions
    neuron_types = (CubaEncoder, CubaLIF, CubaReadout)
    ann_reference = False      # a trained SNN: no quantised ANN to verify against (reports.verify.compare_accuracy)
    passes = ["fold_bn"]
    guarantee = ("none: the fixed-point CUBA SNN approximates the float LIF SNN (quantised weights/bias/input, "
                 "Loihi's decay rounding, 1-step synaptic delays); verify reports both accuracies")
    exact = False
    loihi2_route = ("Lava-DL NetX: `neurodeploy export DIR --format netx -o net.h5`, then "
                    "`netx.hdf5.Network(net_config='net.h5')` on Loihi 2 through lava-loihi (Intel INRC members)")
    timesteps_help = "the T the LIF network was trained with (required)"
    exporters = {"netx": _export_netx}
    engines = {"neurodeploy": "layer after layer: each layer's input for a chunk of steps in one synapse call, the "
                              "LIF update in place step by step (default)",
               "steps": "the lock-step schedule literally: one step of every layer at a time, int64 (bit-identical, "
                        "slower)"}
    netx_neurons = ("CUBA",)       # NetX files of these neurons import as cuba networks (netx.py)
    no_lava_hint = ("export it to NetX (neurodeploy export DIR --format netx), or run it in stock Lava from Python "
                    "(neurodeploy.schemes.cuba.lava.run_lava)")

    def __init__(self, netx: bool = True):
        self.netx = bool(netx)

    def build(self, graph, target, options):
        from .compile import build
        return build(self, graph, target, options)

    def lava(self):
        from . import lava
        return lava

    def front_end(self):
        from . import front
        return front

    def netx_files(self):
        from . import netx
        return netx
    def model_front_ends(self) -> list:
        """NIR graphs (.nir files, nir.NIRGraph): their neurons map to this scheme's CUBA LIF."""
        from ...frontends import nir
        return [nir]

    def summary_lines(self, net) -> list[str]:
        """The NIR section (conventions, shape notes, decays with Loihi's rounding) of a network
        compiled from a NIR graph."""
        return [line for fe in self.model_front_ends() for line in fe.summary_lines(net)]

    def run_batch(self, prep, x, record_codes: bool = True):
        from .kernel import run_batch
        return run_batch(prep, x, record_codes)

    def run_probed(self, prep, x, probe):
        from .kernel import run_batch
        return run_batch(prep, x, False, probe)


SCHEME = Cuba()


def __getattr__(name):
    if name == "compile_lif":         # LIF torch model -> cuba SpikingGraph, without loading the flow at import
        from .compile import compile_lif
        return compile_lif
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
