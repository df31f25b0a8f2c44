"""A seventh scheme is one package plus one registration: a toy scheme written into a temporary
package, registered at run time, compiles, simulates, saves, loads, verifies and reports through the
same doors as the built-in ones (cli, api, verify, reports) without any other file changing.

The toy scheme sends every layer's integer code as one graded spike: its neurons compute exactly
the quantised ANN (code = clip(floor(U / D), 0, Q)), so verify's conversion mismatches are 0.
"""
import sys
import textwrap

import numpy as np
import pytest

from conftest import MODELS
from neurodeploy import registry
from neurodeploy.errors import NeurodeployError

PACKAGE = {
    "__init__.py": '''
        """`toy`: every layer sends its integer code as one graded spike (a test's scheme)."""
        from neurodeploy.schemes.base import Scheme
        from .neurons import ToyEncoder, ToyNeuron
        from .options import ToyOptions


        class Toy(Scheme):
            name = "toy"
            title = "a test's toy scheme: codes as graded spikes"
            Options = ToyOptions
            neuron_types = (ToyEncoder, ToyNeuron)
            passes = ["fold_bn", "fuse_quant_act", "drop_redundant_relu", "bias_shift"]
            guarantee = "every layer's code equals the quantised ANN's"

            def build(self, graph, target, options):
                from .compile import build
                return build(self, graph, target, options)

            def guarantee_holds(self, graph, layer_mismatches):
                return all(v == 0 for v in layer_mismatches.values())

            def run_batch(self, prep, x, record_codes=True):
                from .kernel import run_batch
                return run_batch(prep, x, record_codes)

            def spike_counts(self, neuron, codes, trains):
                return (codes != 0).reshape(codes.shape[0], -1).long()     # one graded spike per nonzero code


        SCHEME = Toy()
    ''',
    "options.py": '''
        from dataclasses import dataclass

        from neurodeploy.schemes.base import CommonOptions, option


        @dataclass
        class ToyOptions(CommonOptions):
            state_headroom_bits: int = option(0, "state bits kept free (default 0)", type=int, range=(0, 8))
    ''',
    "neurons.py": '''
        from dataclasses import dataclass

        from neurodeploy.ir.fields import integer
        from neurodeploy.ir.neurons import Neuron


        @dataclass
        class ToyEncoder(Neuron):
            """Sends the input code k as one graded spike."""
            code_max: int = integer(1, "state_max")       # every field declares its range (ir.fields)

            @property
            def max_payload(self):
                return self.code_max


        @dataclass
        class ToyNeuron(Neuron):
            """code = clip(floor(U / v_th_mant), 0, code_max), sent as one graded spike."""
            v_th_mant: int = integer(1, "v_th_mant_max")
            code_max: int = integer(1, "state_max")

            @property
            def max_payload(self):
                return self.code_max
    ''',
    "compile.py": '''
        import dataclasses

        import numpy as np

        from neurodeploy.ir.neurons import Readout
        from neurodeploy.ir.spiking import Layer, SpikingGraph
        from neurodeploy.lowering.input_quant import input_quantiser
        from neurodeploy.lowering.lower import lower
        from neurodeploy.lowering.quantize import quantise_layer
        from neurodeploy.passes import run_passes
        from .neurons import ToyEncoder, ToyNeuron


        def build(scheme, graph, target, options):
            graph = run_passes(graph, [*scheme.passes, input_quantiser(options.calibration, options.input_bits)])
            tgt = dataclasses.replace(target, state_bits=target.state_bits - options.state_headroom_bits)
            enc, real_layers = lower(graph)
            layers = [enc.encoder(ToyEncoder(int(enc.quant.levels)))]
            shapes, code_max = {enc.name: enc.shape}, {enc.name: enc.quant.levels}
            for rl in real_layers:
                levels = rl.quant.levels if rl.quant else None
                q = quantise_layer(rl.name, rl.branches, rl.bias, levels, shapes, code_max, tgt)
                if rl.quant is None:
                    neuron, step = Readout(output_scale=1.0 / q.unit), np.asarray(1.0 / q.unit)
                else:
                    neuron, step = ToyNeuron(q.unit, levels), np.asarray(rl.quant.out_step)
                    code_max[rl.name] = levels
                shapes[rl.name] = rl.shape
                layers.append(Layer(rl.name, rl.shape, q.branches, q.bias_mant, q.bias_exp, neuron, step,
                                    rl.float_node))
            return SpikingGraph(scheme.name, target.name, layers, {"latency_steps": len(layers) - 1,
                                                                    "throughput_steps": 1})
    ''',
    "kernel.py": '''
        import numpy as np
        import torch

        from neurodeploy.sim import core


        def run_batch(prep, x, record_codes=True):
            graph = prep.graph
            xt = torch.as_tensor(np.array(x, copy=True), device=prep.device)
            codes = {graph.input.name: core.input_codes(graph.input, xt)}
            for layer in graph.neuron_layers():
                u = sum(core.branch_current(pb, codes[pb.source]) for pb in prep.branches[layer.name])
                u = u + core.layer_bias(layer, u)
                if layer.is_readout:
                    break
                codes[layer.name] = torch.clamp(torch.div(u, layer.neuron.v_th_mant, rounding_mode="floor"),
                                                0, layer.neuron.code_max)
            value = (u.to(torch.float64) * float(graph.output.neuron.output_scale)).to(torch.float32)
            spikes = {name: int((c != 0).sum()) for name, c in codes.items()}
            return core.BatchResult(value.reshape(len(xt), -1), u, codes if record_codes else {}, spikes)
    ''',
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy scheme's package written under tmp_path, imported and registered; unregistered after."""
    pkg = tmp_path / "toy_scheme"
    pkg.mkdir()
    for name, text in PACKAGE.items():
        (pkg / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_scheme
    scheme = registry.register(toy_scheme.SCHEME)
    yield scheme
    registry.unregister("toy")
    for mod in [m for m in sys.modules if m == "toy_scheme" or m.startswith("toy_scheme.")]:
        del sys.modules[mod]


def test_toy_scheme_compiles_simulates_verifies_and_reports(toy, tmp_path, digits):
    import neurodeploy as nd
    from neurodeploy.ir import serialize
    from neurodeploy.reports.costs import cost_report
    from neurodeploy.reports.schema import validate
    from neurodeploy.sim.reference import reference
    x, y = digits
    assert "toy" in registry.scheme_names() and registry.get_scheme("toy") is toy

    net = nd.compile(MODELS / "digits_qcfs.onnx", scheme="toy", state_headroom_bits=1)
    graph = net.graph
    assert graph.scheme == "toy" and type(graph.layers[1].neuron).__name__ == "ToyNeuron"
    assert graph.meta["options"]["scheme"] == "toy"

    out = nd.simulate(net, x[:64])                         # the engine dispatches through the registry
    _, u = reference(graph, x[:64])
    np.testing.assert_array_equal(out, (u.reshape(64, -1) * graph.output.neuron.output_scale).astype(np.float32))

    net.save(tmp_path / "toy_net")                          # ir.json knows the toy neuron types from the registry
    back = serialize.load(tmp_path / "toy_net")
    np.testing.assert_array_equal(nd.simulate(back, x[:64]), out)
    # the loader checks the toy neurons through their own declared ranges (ir.fields), like the built-in ones
    import json
    doc = json.loads((tmp_path / "toy_net" / "ir.json").read_text())
    doc["layers"][1]["neuron"]["v_th_mant"] = 0
    doc["checksums"]["ir.json"] = serialize.content_sha256(doc)
    (tmp_path / "toy_net" / "ir.json").write_text(json.dumps(doc))
    with pytest.raises(NeurodeployError, match="ToyNeuron.v_th_mant = 0 is out of range 1.."):
        serialize.load(tmp_path / "toy_net")
    assert "scheme: `toy`" in (tmp_path / "toy_net" / "summary.md").read_text()

    r = nd.verify(net, MODELS / "digits_qcfs.onnx", x[:64], y[:64])
    assert r["scheme"] == "toy" and r["guarantee_holds"]
    assert all(layer["conversion_mismatches"] == 0 for layer in r["layers"])

    report = cost_report(graph, x[:16], 8, labels=y[:16])
    validate(report)
    assert report["summary"]["scheme"] == "toy" and report["summary"]["spikes_per_sample"]["mean"] > 0
    assert report["summary"]["accuracy"]["snn"] == report["summary"]["accuracy"]["quantised_ann"]


def test_toy_scheme_on_the_command_line(toy, tmp_path, capsys):
    from neurodeploy.cli import main
    out = tmp_path / "cli_toy"
    assert main(["compile", str(MODELS / "digits_qcfs.onnx"), "--scheme", "toy", "--state-headroom-bits", "2",
                 "-o", str(out), "--json"]) == 0
    assert '"scheme": "toy"' in capsys.readouterr().out
    # its option is its own: refused for bitplane, and another scheme's option is refused for it
    assert main(["compile", str(MODELS / "digits_qcfs.onnx"), "--state-headroom-bits", "2",
                 "-o", str(tmp_path / "bp")]) == 2
    assert "has no option state_headroom_bits" in capsys.readouterr().err
    assert main(["compile", str(MODELS / "digits_qcfs.onnx"), "--scheme", "toy", "--payload-bits", "8",
                 "-o", str(tmp_path / "t2")]) == 2
    assert "an option of reverb" in capsys.readouterr().err
    with pytest.raises(NeurodeployError, match="out of range"):
        registry.get_scheme("toy").options({"state_headroom_bits": 9})
    assert not (tmp_path / "bp").exists() and not (tmp_path / "t2").exists()
