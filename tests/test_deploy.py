"""Which networks can go to a Loihi 2 chip with public software (issue 17): per layer and for the
network, in the compile summary, `compile --json` and the report.  The answer is an attribute of each
neuron type (`Neuron.loihi2`, `chip_path`) and scheme (`Scheme.chip_path`), never a name compare:
a new neuron class says it for itself, and one that says nothing counts as custom microcode."""
import json
from dataclasses import dataclass

import numpy as np
import pytest

from conftest import MODELS
from digits_nets import NETS, ann
from neurodeploy import cli
from neurodeploy.compiler import compile_model
from neurodeploy.ir import neurons as nrn
from neurodeploy.ir.neurons import ChipPath
from neurodeploy.reports.deploy import loihi2
from neurodeploy.reports.summary import summary_markdown
from neurodeploy.schemes.rate.neurons import RateIF

# scheme -> (every on-chip layer stock?, what its hidden layers run as, what its readout runs as)
EXPECTED = {"bitplane": (False, "microcode", "microcode"), "sws": (False, "microcode", "microcode"),
            "reverb": (False, "microcode", "microcode"), "rate": (False, "microcode", "host"),
            "sdnn": (True, "stock", "stock"), "cuba": (True, "stock", "stock")}


@pytest.mark.parametrize("name", list(NETS))
def test_every_scheme_per_layer_and_network(name):
    net = NETS[name]()
    d = loihi2(net)
    stock_only, hidden, readout = EXPECTED[name]
    where = {r["layer"]: r["where"] for r in d["layers"]}
    assert where[net.input.name] == "host"
    assert all(where[l.name] == hidden for l in net.neuron_layers() if not l.is_readout), where
    assert where[net.output.name] == readout
    assert d["stock_only"] is stock_only
    if stock_only:
        assert d["statement"].startswith("stock neurons only") and "netx.hdf5.Network" in d["route"]
    else:
        assert d["statement"].startswith("needs custom microcode") and d["route"] is None
        assert all(l.name in d["statement"] for l in net.neuron_layers() if where[l.name] == "microcode")


def test_rate_with_reset_zero_is_stock():
    net = compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "rate", {"timesteps": 16, "reset": "zero"})
    d = loihi2(net)
    assert d["stock_only"] and "lava.proc.lif" in d["statement"] and "Loihi2HwCfg" in d["route"]
    sub = loihi2(ann("rate"))
    assert "recompile with --reset zero" in sub["statement"]


def test_the_answer_is_the_neuron_types_attribute():
    """A neuron's own chip_path decides (an unknown class defaults to microcode); RateIF's depends on
    its reset field, not its name."""
    @dataclass
    class Quiet(nrn.Neuron):
        v_th_mant: int = 1

    @dataclass
    class Declared(nrn.Neuron):
        chip_path = ChipPath(ChipPath.STOCK, "a stock model")
        v_th_mant: int = 1

    assert Quiet().loihi2().where == "microcode" and "no stock Loihi 2 model declared" in Quiet().loihi2().model
    assert Declared().loihi2() == ChipPath("stock", "a stock model")
    assert RateIF(v_th_mant=4, code_max=8, reset="zero").loihi2().where == "stock"
    assert RateIF(v_th_mant=4, code_max=8, reset="subtract").loihi2().where == "microcode"
    assert nrn.Readout(1.0).loihi2().where == "host"


def test_compile_summary_and_json_say_it(tmp_path, capsys):
    md = summary_markdown(ann("bitplane"))
    assert "| layer | kind | Loihi 2 |" in md and "| conv1 | BitplaneIF | microcode |" in md
    assert "- Loihi 2: needs custom microcode: conv1, conv2, readout" in md
    md = summary_markdown(ann("sdnn"))
    assert "| conv1 | SigmaDelta | stock |" in md and "- Loihi 2: stock neurons only" in md
    np.save(tmp_path / "cal.npy", np.load(MODELS / "digits_calib_x.npy"))
    code = cli.main(["compile", str(MODELS / "digits_qcfs.onnx"), "--scheme", "sdnn", "--calibration",
                     str(tmp_path / "cal.npy"), "-o", str(tmp_path / "o"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["loihi2"]["stock_only"] is True and "netx" in out["loihi2"]["route"]
    assert [r["loihi2"] for r in out["layers"]] == ["host", "stock", "stock", "stock"]
