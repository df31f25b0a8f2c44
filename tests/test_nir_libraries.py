"""NIR graphs from the real exporters: snnTorch 1.0, Norse 1.1, sinabs 2.0, SpikingJelly 2.0.

For each library (models/nir_libraries.py): a small digits SNN trained in the library
(12 epochs, seed 0, T = 10 steps of constant input), exported with the library's own NIR
exporter, compiled with `neurodeploy compile x.nir --scheme cuba --nir-from LIB`
(input_bits 6), and run on the 450 test digits by

  * the library's own float simulation            (the reference)
  * our float reading of the NIR graph            (frontends.nir.float_sim: proves the conventions)
  * our fixed-point simulator                     (what Loihi 2 computes)
  * Lava's fixed_pt run of the emitted processes  (2 samples, bit for bit equal to ours), and
    of the NetX file (`neurodeploy export --format netx`) loaded by lava-dl's netx

Measured (seed 0, the session's pinned float path, `tests/conftest.py`; `python
benchmarks/bench_nir.py` pins the same path and prints it; `pytest -s` prints the test's own):

  library        float acc  reading==library  fixed acc  agreement  values |ours-lib| max
  snnTorch 1.0.0   95.8%        100%            96.4%      99.1%      spike counts
  Norse 1.1.0      96.4%        100% (2.1e-7)   97.1%      98.2%      LI voltage
  sinabs 2.0.3     95.3%        100%            96.7%      98.4%      spike counts
  SpikingJelly 2.0 94.9%        100% (2.5e-6)   94.9%     100.0%      mean output

The fixed point departs from the float SNN by weight/bias/input rounding (8-bit weights,
6-bit input codes), Loihi's decay rounding, the current bias moved to the voltage (Norse's
CubaLIF), v > threshold where sinabs and SpikingJelly fire on v >= threshold, and the
pipeline's fill steps (a hidden layer integrates its bias alone while the delayed input is on
its way).  The libraries train on the pinned float path (`neurodeploy.reproducible`), which
gives neurodeploy's own training scripts the same bits on any x86-64 CPU; the libraries' own
kernels (Norse's scripted cells, sinabs' and SpikingJelly's surrogate functions) were not
checked op by op on other CPUs, so the bounds keep the margin of three points below the
measured agreement and accuracy (before the pin, on one machine's default kernels, the same
training measured snnTorch 98.0% / sinabs 99.1% agreement: a last-bit change moves these by
about one point).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.compiler import compile_model
from neurodeploy.errors import NeurodeployError
from neurodeploy.frontends.nir import read_nir
from neurodeploy.frontends.nir.float_sim import simulate as float_reading
from neurodeploy.schemes.cuba import kernel as sim_cuba
from neurodeploy.schemes.cuba.options import CubaOptions
from neurodeploy.train.data import digits
from conftest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "models"))
import nir_libraries as nl  # noqa: E402

nl.quiet()
INPUT_BITS = 6
# measured agreement (fixed point vs the library's float SNN) and accuracies, seed 0 (module docstring)
MEASURED = {"snntorch": 0.991, "norse": 0.982, "sinabs": 0.984, "spikingjelly": 1.000}
MARGIN = 0.03


@pytest.fixture(scope="module")
def data():
    return digits(0)


_RESULTS: dict = {}


def result(name: str, data, tmp_path_factory) -> dict:
    """Train, export, compile and run one library's network once per session."""
    if name not in _RESULTS:
        xtr, ytr, xte, yte = data
        lib = nl.library(name)
        model = nl.train(lib, xtr, ytr)
        path = nl.export(lib, model, tmp_path_factory.mktemp(name))
        opts = CubaOptions(calibration=lib.inputs(xtr), timesteps=nl.T, input_bits=INPUT_BITS, **lib.nir_options)
        net = compile_model(path, "loihi2", "cuba", opts)
        x = lib.inputs(xte)
        _RESULTS[name] = {"lib": lib, "model": model, "path": path, "net": net, "x": x, "y": yte,
                          "float": lib.run(model, xte), "fixed": sim_cuba.simulate(net, x),
                          "reading": float_reading(read_nir(path), lib.conventions, x, nl.T)}
    return _RESULTS[name]


def _acc(out, y):
    return float(np.mean(np.argmax(out, 1) == y))


def _agree(a, b):
    return float(np.mean(np.argmax(a, 1) == np.argmax(b, 1)))


@pytest.mark.parametrize("name", list(nl.LIBRARIES))
def test_our_reading_of_the_graph_is_the_librarys_simulation(name, data, tmp_path_factory):
    """Our float reading (the conventions of --nir-from) reproduces the library's own simulation:
    measured 100% equal predictions and outputs equal to float32 rounding on all 450 digits."""
    r = result(name, data, tmp_path_factory)
    diff = np.abs(r["reading"] - r["float"]).max(1)
    print(f"\n{name} {r['lib'].version}: reading vs library: predictions {_agree(r['reading'], r['float']):.2%}, "
          f"max |difference| {diff.max():.2e}")
    assert _agree(r["reading"], r["float"]) == 1.0
    # float64 here, float32 there: a spike may flip where v lands within rounding of the threshold
    assert np.mean(diff > 1e-4 * max(1.0, np.abs(r["float"]).max())) <= 0.01


@pytest.mark.parametrize("name", list(nl.LIBRARIES))
def test_fixed_point_agrees_with_the_library(name, data, tmp_path_factory):
    r = result(name, data, tmp_path_factory)
    acc_float, acc_fixed, agree = _acc(r["float"], r["y"]), _acc(r["fixed"], r["y"]), _agree(r["fixed"], r["float"])
    print(f"\n{name} {r['lib'].version} ({r['lib'].network}): float {acc_float:.2%}, fixed point {acc_fixed:.2%}, "
          f"agreement {agree:.2%}")
    assert acc_float >= 0.90                                  # the library trained a working network
    assert agree >= MEASURED[name] - MARGIN, agree
    assert acc_fixed >= acc_float - MARGIN, (acc_fixed, acc_float)


@pytest.mark.lava
@pytest.mark.parametrize("name", list(nl.LIBRARIES))
def test_fixed_point_is_lava_bit_for_bit(name, data, tmp_path_factory, tmp_path, netx):
    """Stock Lava processes and the NetX export (loaded by lava-dl's netx) run in fixed_pt."""
    from neurodeploy.schemes.cuba import lava as cuba_lava
    r = result(name, data, tmp_path_factory)
    x = r["x"][:2]
    ours = sim_cuba.trace(r["net"], x)
    for lava in (cuba_lava.run_lava(r["net"], x), cuba_lava.run_netx(r["net"], x, tmp_path / "net.net")):
        for layer, s in ours.spikes.items():
            np.testing.assert_array_equal(lava.spikes[layer], s, err_msg=f"spikes of {layer}")
            assert s.any(), layer                              # the layers do spike
        np.testing.assert_array_equal(lava.readout_v, ours.readout_v)
        np.testing.assert_array_equal(lava.output, sim_cuba.simulate(r["net"], x))


def test_snntorch_scalar_beta_graph_with_gaps(data, tmp_path_factory, tmp_path):
    """snnTorch 1.0 cannot finish exporting a scalar beta (its type check fails on neuron nodes of
    shape ()) and keeps the batch axis unless ignore_dims=[0]: the graph as its own extractor
    writes it compiles to the same network as the vector-beta export, shapes inferred."""
    r = result("snntorch", data, tmp_path_factory)
    path = tmp_path / "scalar.nir"
    nl.snntorch_scalar_export(r["model"], path)
    raw = read_nir(path)
    assert [n.type for n in raw.nodes.values() if n.type == "LIF"] == ["LIF", "LIF"]
    assert all(np.asarray(n.get("tau")).shape == () for n in raw.nodes.values() if n.type == "LIF")
    assert tuple(np.asarray(raw.nodes["input"].get("shape"))) == (2, 64)
    opts = CubaOptions(calibration=r["lib"].inputs(data[0]), timesteps=nl.T, input_bits=INPUT_BITS,
                       **r["lib"].nir_options)
    net = compile_model(path, "loihi2", "cuba", opts)
    notes = net.meta["nir"]["shape_notes"]
    assert any("batch/time axis" in n for n in notes) and sum("scalar parameters" in n for n in notes) == 2
    assert [l.shape for l in net.neuron_layers()] == [l.shape for l in r["net"].neuron_layers()]
    np.testing.assert_array_equal(sim_cuba.simulate(net, r["x"]), r["fixed"])


def test_norse_needs_its_own_time_step(data, tmp_path_factory):
    """Norse 1.1 writes tau = dt / tau_inv: read with its simulation dt (1e-3) the decays would be
    negative, which is refused; --nir-from norse reads it with 1e-6 (checked above)."""
    r = result("norse", data, tmp_path_factory)
    opts = CubaOptions(calibration=r["x"], timesteps=nl.T, nir_from="norse", nir_dt=1e-3)
    with pytest.raises(NeurodeployError, match="shorter than the time step"):
        compile_model(r["path"], "loihi2", "cuba", opts)


def test_sinabs_reset_must_be_stated(data, tmp_path_factory):
    """sinabs defaults to MembraneSubtract and NIR does not record the reset: --nir-from sinabs
    alone is refused; --nir-reset subtract is refused too (Loihi resets to 0)."""
    r = result("sinabs", data, tmp_path_factory)
    for reset, match in ((None, "reset is not stated"), ("subtract", "subtractive reset")):
        opts = CubaOptions(calibration=r["x"], timesteps=nl.T, nir_from="sinabs", nir_reset=reset)
        with pytest.raises(NeurodeployError, match=match):
            compile_model(r["path"], "loihi2", "cuba", opts)


def test_samna_is_never_imported(data, tmp_path_factory):
    """sinabs requires samna, whose PyPI package is a stub that runs pip on import (requirements.txt):
    sinabs' NIR export and layers must not import it."""
    result("sinabs", data, tmp_path_factory)
    assert "samna" not in sys.modules
