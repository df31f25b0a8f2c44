"""Small digits SNNs trained in snnTorch, Norse, sinabs and SpikingJelly, exported to NIR with
each library's own exporter, and run by each library's own simulator (float).

Used by tests/test_nir_libraries.py and benchmarks/bench_nir.py.  Every network sees the
digit as a constant input current at each of `T` steps and is trained for a few epochs with
the library's surrogate gradients (BPTT, Adam, one CPU thread, seeded).  Each `Library`
names the NIR conventions its exporter needs (the cuba scheme's --nir-* options, see
`neurodeploy.frontends.nir.conventions`) and what the compiled network reads out:

    snnTorch 1.0     Linear-Leaky-Linear-Leaky (reset to zero)   spike counts of the last Leaky
    Norse 1.1        Linear-LIFCell-Linear-LIBoxCell             LI voltage after the last step
    sinabs 2.0       Linear-LIF-Linear-IAF (SingleSpike, reset)   spike counts of the last IAF
    SpikingJelly 2.0 Conv-LIF-AvgPool-Flatten-Linear             mean over T of the Linear's output

Inputs: the dense networks take (N, 64), SpikingJelly's (N, 1, 8, 8), in [0, 1].

As a script, it trains one library's network and writes what `neurodeploy compile FILE.nir` reads
(the README's NIR walk-through):

    python models/nir_libraries.py snntorch -o net.nir --inputs x.npy --labels labels.npy
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

T = 10            # time steps every network is trained and run for
HIDDEN = 32


@dataclass
class Library:
    name: str                  # the pip package
    version: str
    network: str               # what tests/benchmarks print
    nir_options: dict          # the compile options of its conventions (--nir-from LIB, --nir-reset ...)
    build: Callable            # seed -> model
    forward: Callable          # (model, x tensor (N, ...)) -> float (N, 10) logits, T steps
    export: Callable           # (model, path) -> writes the NIR file with the library's exporter
    conv_input: bool = False   # input (N, 1, 8, 8) instead of (N, 64)
    logit_scale: float = 1.0   # training only: the outputs times this are the cross-entropy's logits

    @property
    def conventions(self):
        """The `frontends.nir.NirConventions` its `nir_options` stand for."""
        from neurodeploy.frontends.nir import from_options
        from neurodeploy.schemes.cuba.options import CubaOptions
        return from_options(CubaOptions(**self.nir_options))

    def inputs(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x.reshape(len(x), 1, 8, 8) if self.conv_input else x.reshape(len(x), -1)

    def run(self, model, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """The library's own float simulation: (N, 10) outputs."""
        x = self.inputs(x)
        with torch.no_grad():
            outs = [self.forward(model, torch.from_numpy(x[i:i + batch])).double().numpy()
                    for i in range(0, len(x), batch)]
        return np.concatenate(outs)


def _version(pkg: str) -> str:
    from importlib.metadata import version
    return version(pkg)


def train(lib: Library, x: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = 12, lr: float = 5e-3):
    """Build `lib`'s network and fit it on (x, y) with BPTT through the library's own neurons."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)             # same result whatever the machine's thread count
    try:
        torch.manual_seed(seed)
        model = lib.build(seed)
        params = [p for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=lr)
        xs, ys = torch.from_numpy(lib.inputs(x)), torch.from_numpy(np.asarray(y, dtype=np.int64))
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xs), generator=gen)
            for i in range(0, len(xs), 64):
                idx = perm[i:i + 64]
                loss = nn.functional.cross_entropy(lib.forward(model, xs[idx]) * lib.logit_scale, ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        return model
    finally:
        torch.set_num_threads(threads)


# --- snnTorch 1.0 -----------------------------------------------------------------------------
def _snntorch_build(seed: int, scalar: bool = False):
    import snntorch as snn

    def leaky(n, beta, **kw):
        # vector beta/threshold: snnTorch 1.0's exporter fails on a scalar beta (issue #15)
        b, th = (beta, 1.0) if scalar else (torch.full((n,), beta), torch.ones(n))
        return snn.Leaky(beta=b, threshold=th, reset_mechanism="zero", init_hidden=True, **kw)
    return nn.Sequential(nn.Linear(64, HIDDEN), leaky(HIDDEN, 0.85), nn.Linear(HIDDEN, 10), leaky(10, 0.9, output=True))


def _snntorch_forward(model, x):
    import snntorch.utils
    snntorch.utils.reset(model)
    count = 0
    for _ in range(T):
        spk, _ = model(x)
        count = count + spk
    return count


def _snntorch_export(model, path):
    from snntorch.export_nir import export_to_nir
    import nir
    nir.write(str(path), export_to_nir(model, torch.zeros(1, 64), ignore_dims=[0]))


def snntorch_scalar_export(model, path):
    """The same network with a scalar beta, as snnTorch 1.0 exports it before its final type check
    fails (`export_to_nir` = nirtorch.extract_nir_graph with snnTorch's own node mapper, then
    infer_types, which raises): neuron nodes of shape (), the batch dimension kept in the types."""
    import nir
    import nirtorch
    from snntorch.export_nir import _extract_snntorch_module
    scalar = _snntorch_build(0, scalar=True)
    scalar.load_state_dict({k: v for k, v in model.state_dict().items() if "beta" not in k and "threshold" not in k},
                           strict=False)
    graph = nirtorch.extract_nir_graph(scalar, _extract_snntorch_module, torch.zeros(2, 64), model_name="snntorch")
    nir.write(str(path), graph, compression=None)     # h5py cannot compress the 0-d fields


# --- Norse 1.1 --------------------------------------------------------------------------------
def _norse_build(seed: int):
    import norse.torch as norse
    return norse.SequentialState(nn.Linear(64, HIDDEN), norse.LIFCell(), nn.Linear(HIDDEN, 10), norse.LIBoxCell())


def _norse_forward(model, x):
    state, out = None, None
    for _ in range(T):
        out, state = model(x, state)
    return out                   # the LI voltage after the last step


def _norse_export(model, path):
    import nir
    import norse.torch as norse
    nir.write(str(path), norse.to_nir(model, torch.zeros(1, 64)), compression=None)


# --- sinabs 2.0 -------------------------------------------------------------------------------
def _sinabs_build(seed: int):
    import sinabs.activation as sa
    import sinabs.layers as sl
    lif = sl.LIF(tau_mem=6.0, spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset(), norm_input=False)
    lif.tau_mem.requires_grad_(False)
    return nn.Sequential(nn.Linear(64, HIDDEN), lif, nn.Linear(HIDDEN, 10),
                         sl.IAF(spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset()))


def _sinabs_forward(model, x):
    from sinabs import reset_states
    reset_states(model)
    xt = x.unsqueeze(1).expand(-1, T, *x.shape[1:])        # sinabs is (batch, time, ...)
    return model(xt).sum(1)


def _sinabs_export(model, path):
    import nir
    import sinabs.nir
    from sinabs import reset_states
    reset_states(model)
    nir.write(str(path), sinabs.nir.to_nir(model, torch.zeros(1, T, 64)), compression=None)


# --- SpikingJelly 2.0 -------------------------------------------------------------------------
def _sj_build(seed: int):
    from spikingjelly.activation_based import functional, layer, neuron
    net = nn.Sequential(layer.Conv2d(1, 8, 3, padding=1), neuron.LIFNode(tau=2.0), layer.AvgPool2d(2),
                        layer.Flatten(), layer.Linear(8 * 4 * 4, 10))
    functional.set_step_mode(net, "m")
    return net


def _sj_forward(model, x):
    from spikingjelly.activation_based import functional
    functional.reset_net(model)
    return model(x.unsqueeze(0).expand(T, *x.shape)).mean(0)


def _sj_export(model, path):
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    functional.reset_net(model)
    export_to_nir(model, torch.zeros(T, 1, 1, 8, 8), save_path=str(path))


LIBRARIES = {
    "snntorch": Library("snntorch", "", "Linear-Leaky-Linear-Leaky, spike counts",
                        {"nir_from": "snntorch", "nir_reset": "zero"}, _snntorch_build, _snntorch_forward, _snntorch_export),
    "norse": Library("norse", "", "Linear-LIFCell(CubaLIF)-Linear-LIBoxCell(LI), final voltage",
                     {"nir_from": "norse"}, _norse_build, _norse_forward, _norse_export, logit_scale=10.0),
    "sinabs": Library("sinabs", "", "Linear-LIF-Linear-IAF, spike counts",
                      {"nir_from": "sinabs", "nir_reset": "zero"}, _sinabs_build, _sinabs_forward, _sinabs_export),
    "spikingjelly": Library("spikingjelly", "", "Conv-LIF-AvgPool-Linear, mean output",
                            {"nir_from": "spikingjelly"}, _sj_build, _sj_forward, _sj_export, conv_input=True),
}


def library(name: str) -> Library:
    """The Library with its installed version filled in (ImportError when it is not installed)."""
    __import__(name)
    lib = LIBRARIES[name]
    lib.version = _version(name)
    return lib


def quiet():
    """The libraries warn about deprecated torch APIs on import; the tests read their own output."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def export(lib: Library, model, directory: Path) -> Path:
    path = Path(directory) / f"{lib.name}.nir"
    lib.export(model, path)
    return path


def main(argv=None) -> int:
    """Train LIBRARY's digits network (its own neurons, seeded, one thread) and export it to NIR with
    the library's exporter; optionally write the digits test split as that network takes it."""
    import argparse
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from neurodeploy.reproducible import pin_cpu_numerics
    pin_cpu_numerics()                   # the same trained weights on any x86-64 CPU
    from neurodeploy.train.data import digits

    ap = argparse.ArgumentParser(description=main.__doc__.split(";")[0])
    ap.add_argument("library", choices=sorted(LIBRARIES), help="whose neurons, trainer and NIR exporter")
    ap.add_argument("-o", "--output", required=True, metavar="FILE.nir", help="the NIR file to write")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs (default 12, as benchmarks/bench_nir.py)")
    ap.add_argument("--inputs", metavar="X.npy", help="also write the 450 test digits, shaped as the network's input")
    ap.add_argument("--labels", metavar="Y.npy", help="also write their labels (int64)")
    args = ap.parse_args(argv)
    quiet()
    lib = library(args.library)
    xtr, ytr, xte, yte = digits(0)
    model = train(lib, xtr, ytr, epochs=args.epochs)
    lib.export(model, args.output)
    if args.inputs:
        np.save(args.inputs, lib.inputs(xte))
    if args.labels:
        np.save(args.labels, yte)
    acc = float(np.mean(lib.run(model, xte).argmax(1) == yte))
    print(f"{lib.name} {lib.version}: {lib.network}; float test accuracy {acc:.2%} (450 digits); wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
