"""The kernels' probes (`sim.core.Probe`, `Scheme.run_probed`), which the report's per-layer plots read:
probing changes no result, every membrane peak covers what the integer reference says the layer's
accumulator must hold, and the readout recorded after the last step is the network's output.
All six schemes, on the digits models."""
import numpy as np
import pytest
import torch

from conftest import MODELS
from digits_nets import ANYTIME, NETS, X, ann
from neurodeploy.registry import get_scheme
from neurodeploy.reports.dynamics import dynamics
from neurodeploy.sim import engine
from neurodeploy.sim.core import Probe

Y = np.load(MODELS / "digits_test_y.npy")[:64]


@pytest.mark.parametrize("name", list(NETS))
def test_probe_changes_nothing_and_records(name):
    net = NETS[name]()
    scheme = get_scheme(net.scheme)
    prep = engine.prepare(net)
    plain = engine.run_batch(prep, X, record_codes=False)
    probe = Probe()
    probed = scheme.run_probed(prep, X, probe)
    assert torch.equal(plain.output, probed.output) and torch.equal(plain.output_state, probed.output_state)
    assert set(probe.state_peak) == {l.name for l in net.neuron_layers()}
    assert all(v > 0 for v in probe.state_peak.values()), probe.state_peak
    # the readout's register holds at least its final state
    assert probe.state_peak[net.output.name] >= int(plain.output_state.abs().max())
    if name in ANYTIME:
        assert probe.readout_steps, name
        np.testing.assert_array_equal(probe.readout_steps[-1].astype(np.float32), plain.output.numpy())
    else:
        assert not probe.readout_steps
    d = dynamics(net, X, 32, labels=Y)
    # Loihi 2's 24-bit state; a rate IF neuron keeps 18 of them (the stock LIF shifts its input by 6)
    widths = {s["layer"]: s["state_bits"] for s in d["state"]}
    assert d["recorded"] and widths[net.output.name] == 24
    assert all(w == (18 if name == "rate" else 24) for k, w in widths.items() if k != net.output.name), widths
    # no register of these networks overflows on the test inputs (measured headroom in bits, per layer:
    # bitplane 6/9/3, rate 2/4/8, sws 2/6/5, sdnn 2/1/0 (its readout sigma peaks at 5,762,352 < 2^23),
    # cuba 3/4/2, reverb 7/3/1); the peak is no larger than the register
    assert all(s["headroom_bits"] >= 0 for s in d["state"]), d["state"]
    if name in ANYTIME:
        acc = [s["accuracy"] for s in d["accuracy_by_step"]]
        final = float((plain.output.numpy().argmax(1) == Y).mean())
        assert acc[-1] == final and len(acc) >= 2
    else:
        assert d["accuracy_by_step"] is None


def test_bitplane_peak_is_the_reference_accumulator():
    """A bitplane membrane ends its accumulation at the quantised ANN's integer pre-activation U
    (before the clamp), so its peak is at least max |U| of the reference; the Horner partials can
    only add to it."""
    from neurodeploy.sim.reference import input_codes_ref, pre_activation
    net = ann("bitplane")
    probe = Probe()
    get_scheme("bitplane").run_probed(engine.prepare(net), X, probe)
    codes = {net.input.name: input_codes_ref(net.input, X)}
    for layer in net.neuron_layers():
        u = pre_activation(layer, codes)
        assert probe.state_peak[layer.name] >= int(np.abs(u).max()), layer.name
        if not layer.is_readout:
            codes[layer.name] = layer.neuron.reference_code(u)
