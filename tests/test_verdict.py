"""verify's verdict follows from the counts it prints, for every scheme (issue 18).

The rule (`schemes.base.Scheme.verdict`): EXACT when every printed conversion count is 0; otherwise
NOT EXACT when the scheme promises equality on some layer (`equal_layers`), APPROXIMATE when it
promises none; the exit status is 0 exactly when the guarantee holds.  Checked on the rule itself for
every registered scheme, and end to end on the command line by parsing the per-layer table verify
prints and deriving the verdict from those numbers, on networks where it is EXACT, NOT EXACT
(an sdnn residual network, a --lossy bitplane network) and APPROXIMATE (rate).
"""
import json
import re

import numpy as np
import pytest

import netgen
from conftest import MODELS
from neurodeploy import cli
from neurodeploy.compiler import compile_model
from neurodeploy.registry import all_schemes

X, Y = MODELS / "digits_test_x.npy", MODELS / "digits_test_y.npy"


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys):
    """The command line in this process (`cli.main`): exit status, stdout, stderr."""
    def call(*args):
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return call


def _graph(scheme):
    """A compiled network of the scheme on the digits model (trained-SNN schemes have no ANN
    reference: their verdict is the agreement, tested below)."""
    cal = np.load(MODELS / "digits_calib_x.npy")
    options = {"calibration": cal} if "calibration" in {f for f in scheme.Options.__dataclass_fields__} else {}
    return compile_model(MODELS / "digits_qcfs.onnx", "loihi2", scheme.name, options)


@pytest.mark.parametrize("scheme", [s for s in all_schemes() if s.ann_reference], ids=lambda s: s.name)
def test_rule_for_every_scheme(scheme):
    graph = _graph(scheme)
    names = [l.name for l in graph.layers]
    elements = dict.fromkeys(names, 100)
    zero = dict.fromkeys(names, 0)
    v = scheme.verdict(graph, zero, elements)
    assert v.word == "EXACT" and v.holds and f"all {len(names)} layers" in v.reason
    scope = scheme.equal_layers(graph)
    for name in names:                            # one mismatch on one layer at a time
        counts = {**zero, name: 3}
        v = scheme.verdict(graph, counts, elements)
        assert v.word == ("NOT EXACT" if scope else "APPROXIMATE"), (name, v)
        assert v.holds == (name not in scope), (name, v)
        assert f"{name} 3/100" in v.reason and "3 of " in v.reason
    # a --lossy network never holds, whatever the counts
    v = scheme.verdict(graph, zero, elements, {"timesteps": 2, "exact_timesteps": 3})
    assert v.word == "NOT EXACT" and not v.holds


def _printed_counts(text: str) -> dict:
    """layer -> conversion mismatches, read back from verify's per-layer table."""
    rows = re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+(\S+)\s+[\d.]+$", text, re.M)
    assert rows, text
    return {name: int(conv) for name, _, conv, _ in rows}


def _check(run, out_dir, model, expect_word, expect_rc, n=120):
    np.save(out_dir / "x.npy", np.load(X if "resnet" not in str(model) else MODELS / "digits_resnet_test_x.npy")[:n])
    np.save(out_dir / "y.npy", np.load(Y if "resnet" not in str(model) else MODELS / "digits_resnet_test_y.npy")[:n])
    r = run("verify", out_dir / "net", "--model", model, "--input", out_dir / "x.npy", "--labels", out_dir / "y.npy")
    assert r.returncode == expect_rc, r.stdout + r.stderr
    counts = _printed_counts(r.stdout)
    verdict = re.search(r"^  (EXACT|NOT EXACT|APPROXIMATE): (.*)$", r.stdout, re.M)
    assert verdict and verdict.group(1) == expect_word, r.stdout
    wrong = {k: v for k, v in counts.items() if v}
    # the verdict's word and the layers it names are those of the printed numbers
    assert (verdict.group(1) == "EXACT") == (not wrong)
    for name, v in wrong.items():
        assert f"{name} {v:,}/" in verdict.group(2), (name, verdict.group(2))
    j = json.loads(run("verify", out_dir / "net", "--model", model, "--input", out_dir / "x.npy",
                       "--labels", out_dir / "y.npy", "--json").stdout)
    assert j["verdict"]["word"] == expect_word and j["guarantee_holds"] == (expect_rc == 0)
    assert j["error_free"] == (expect_word == "EXACT")
    assert {l["layer"]: l["conversion_mismatches"] for l in j["layers"]} == counts
    return counts, verdict.group(2)


def test_sdnn_residual_network_is_not_exact(run, tmp_path):
    """The README's ResNet (two residual adds) under sdnn: its adds and the readout differ from the
    integer ReLU network (measured on 120 samples: add1, conv3, add2 and nearly every readout value),
    so verify says NOT EXACT, exits 1, and names them as beyond the layers proven exact."""
    model = MODELS / "digits_resnet_qcfs.onnx"
    r = run("compile", model, "--scheme", "sdnn", "--calibration", MODELS / "digits_resnet_calib_x.npy",
            "-o", tmp_path / "net")
    assert r.returncode == 0, r.stderr
    counts, reason = _check(run, tmp_path, model, "NOT EXACT", 1)
    assert counts["conv1"] == counts["conv2"] == 0 and counts["add1"] > 0 and counts["readout"] > 0
    assert "beyond those proven exact (input, conv1, conv2)" in reason
    # the report leads with the same verdict
    r = run("report", tmp_path / "net", "--input", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
            "--model", model, "--energy-model", "cmos45_horowitz")
    assert r.returncode == 0, r.stderr
    verdict = r.stdout[r.stdout.index("## 1. Verdict"):r.stdout.index("## 2.")]
    assert "> **NOT EXACT**: the guarantee does NOT hold." in verdict and "EXACT: 0" not in verdict
    for name, v in counts.items():                 # its table: the counts verify printed, layer by layer
        assert re.search(rf"^\| {name} \| [\d,]+ \| {v:,} \|", verdict, re.M), name


def test_sdnn_generated_residual_block_is_not_exact(run, tmp_path):
    """A generated residual network (identity and 1x1-projection shortcuts) with positive biases."""
    import onnx
    onnx.save(netgen.residual_net(0), tmp_path / "m.onnx")
    np.save(tmp_path / "cal.npy", netgen.random_inputs((3, 8, 8), 64, seed=3))
    r = run("compile", tmp_path / "m.onnx", "--scheme", "sdnn", "--calibration", tmp_path / "cal.npy",
            "-o", tmp_path / "net")
    assert r.returncode == 0, r.stderr
    x = netgen.random_inputs((3, 8, 8), 64, seed=4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(64, np.int64))
    r = run("verify", tmp_path / "net", "--model", tmp_path / "m.onnx", "--input", tmp_path / "x.npy",
            "--labels", tmp_path / "y.npy")
    counts = _printed_counts(r.stdout)
    assert any(counts.values()), counts
    assert r.returncode == 1 and "\n  NOT EXACT: " in r.stdout and "EXACT: 0 conversion" not in r.stdout


def test_bitplane_exact_rate_approximate_lossy_not_exact(run, tmp_path):
    model = MODELS / "digits_qcfs.onnx"
    assert run("compile", model, "-o", tmp_path / "net").returncode == 0
    counts, _ = _check(run, tmp_path, model, "EXACT", 0)
    assert not any(counts.values())
    rate = tmp_path / "rate"
    rate.mkdir()
    assert run("compile", model, "--scheme", "rate", "--timesteps", "8", "-o", rate / "net").returncode == 0
    counts, reason = _check(run, rate, model, "APPROXIMATE", 0)
    assert any(counts.values()) and "promises no equality" in reason
    lossy = tmp_path / "lossy"
    lossy.mkdir()
    assert run("compile", model, "--timesteps", "2", "--lossy", "-o", lossy / "net").returncode == 0
    _, reason = _check(run, lossy, model, "NOT EXACT", 1)
    assert "--lossy" in reason


def test_trained_snn_verdict_is_the_agreement():
    from neurodeploy.reports.verify import snn_verdict
    from neurodeploy.registry import get_scheme
    v = snn_verdict(get_scheme("cuba"), 0.975, 40)
    assert v.word == "APPROXIMATE" and v.holds and "97.50% of the 40 samples" in v.reason
