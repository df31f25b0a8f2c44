"""nd.report, nd.compare and nd.export are the commands: the command line calls them, and the same
options give the same files, byte for byte; their own errors are NeurodeployErrors."""
import json

import numpy as np
import pytest

import neurodeploy as nd
from conftest import MODELS
from neurodeploy import cli
from neurodeploy.errors import NeurodeployError

MODEL = MODELS / "digits_qcfs.onnx"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    np.save(tmp / "x.npy", np.load(MODELS / "digits_test_x.npy")[:40])
    np.save(tmp / "y.npy", np.load(MODELS / "digits_test_y.npy")[:40])
    assert cli.main(["compile", str(MODEL), "-o", str(tmp / "bp")]) == 0
    assert cli.main(["compile", str(MODEL), "--scheme", "rate", "--timesteps", "8", "-o", str(tmp / "rate")]) == 0
    return tmp


def test_report_function_equals_the_command(data, capsys):
    for fmt in ("md", "json", "html"):
        args = ["report", str(data / "bp"), "--input", str(data / "x.npy"), "--labels", str(data / "y.npy"),
                "--model", str(MODEL), "--format", fmt, "--energy-model", "loihi1_sanafe", "--index-bits", "4",
                "-o", str(data / f"cli.{fmt}")]
        assert cli.main(args) == 0
        d = nd.report(str(data / "bp"), data / "x.npy", labels=data / "y.npy", model=MODEL, format=fmt,
                      energy_model="loihi1_sanafe", index_bits=4, output=data / f"api.{fmt}")
        assert (data / f"api.{fmt}").read_bytes() == (data / f"cli.{fmt}").read_bytes(), fmt
    assert d["verify"]["verdict"]["word"] == "EXACT" and d["memory_model"]["index_bits"] == 4
    assert [m["name"] for m in d["energy"]["models"]] == ["loihi1_sanafe"]
    # the format follows the file name when not given; arrays work as well as paths
    x, y = np.load(data / "x.npy"), np.load(data / "y.npy")
    nd.report(nd.load(data / "bp"), x, labels=y, output=data / "by_suffix.html")
    assert (data / "by_suffix.html").read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()


def test_report_errors(data):
    x = np.load(data / "x.npy")
    with pytest.raises(NeurodeployError, match="--model needs --labels"):
        nd.report(data / "bp", x, model=MODEL)
    with pytest.raises(NeurodeployError, match="unknown report format 'pdf'"):
        nd.report(data / "bp", x, format="pdf")
    with pytest.raises(NeurodeployError, match="is a directory"):
        nd.report(data / "bp", x, output=data)
    with pytest.raises(NeurodeployError, match="does not match the model input"):
        nd.report(data / "bp", np.zeros((3, 5), np.float32))


def test_compare_function_equals_the_command(data, capsys):
    assert cli.main(["compare", str(MODEL), "--input", str(data / "x.npy"), "--labels", str(data / "y.npy"),
                     "--schemes", "bitplane,rate", "--rate-timesteps", "4,8", "--bitplane-lossy", "3",
                     "-o", str(data / "cmp_cli")]) == 0
    capsys.readouterr()
    d = nd.compare(str(MODEL), data / "x.npy", data / "y.npy", schemes="bitplane,rate", rate_timesteps=[4, 8],
                   bitplane_lossy=[3], output=str(data / "cmp_api"))
    assert [r["config"] for r in d["rows"]] == ["bitplane", "bitplane_lossy_T3", "rate_T4", "rate_T8"]
    for name in ("compare.md", "compare.json", "compare.html", "rate_T4/ir.json", "rate_T4/params.npz"):
        assert (data / "cmp_api" / name).read_bytes() == (data / "cmp_cli" / name).read_bytes(), name
    assert json.loads((data / "cmp_api" / "compare.json").read_text()) == d
    with pytest.raises(NeurodeployError, match="unknown option.*rate_steps"):
        nd.compare(str(MODEL), data / "x.npy", data / "y.npy", output=str(data / "c2"), rate_steps=[4])


def test_export_function_equals_the_command(data, capsys):
    assert cli.main(["export", str(data / "rate"), "--format", "nir", "--readout", "current", "-o",
                     str(data / "cli.nir")]) == 0
    printed = capsys.readouterr().err.strip()
    line = nd.export(str(data / "rate"), "nir", data / "api.nir", readout="current")
    assert line == printed.replace(str(data / "cli.nir"), str(data / "api.nir"))
    import nir
    a, b = nir.read(str(data / "cli.nir")), nir.read(str(data / "api.nir"))
    assert sorted(a.nodes) == sorted(b.nodes) and sorted(a.edges) == sorted(b.edges)
    for k in a.nodes:
        for f, v in vars(a.nodes[k]).items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, vars(b.nodes[k])[f])
    with pytest.raises(NeurodeployError, match="no NIR equivalent"):
        nd.export(str(data / "bp"), "nir", data / "bp.nir")
    with pytest.raises(NeurodeployError, match="unknown export format"):
        nd.export(str(data / "rate"), "onnx", data / "x.onnx")
    assert not (data / "bp.nir").exists()


def _tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_functions_write_through_the_commands_doors(data):
    """The functions check their outputs as the commands do, before any work: never an input, never a
    folder neurodeploy did not write, and what they refuse is left byte for byte."""
    x = np.load(data / "x.npy")
    before, labels, rate_ir = _tree(data / "bp"), (data / "y.npy").read_bytes(), (data / "rate" / "ir.json").read_bytes()
    with pytest.raises(NeurodeployError, match="would overwrite an input"):
        nd.report(data / "bp", x, output=data / "bp" / "summary.md")
    with pytest.raises(NeurodeployError, match="would overwrite an input"):
        nd.report(data / "bp", data / "x.npy", labels=data / "y.npy", output=data / "y.npy")
    with pytest.raises(NeurodeployError, match="would overwrite an input"):
        nd.export(data / "rate", "nir", data / "rate" / "ir.json")
    assert _tree(data / "bp") == before and (data / "y.npy").read_bytes() == labels
    assert (data / "rate" / "ir.json").read_bytes() == rate_ir
    # a folder of the user's (no manifest) is refused, and nothing in it changes
    mine = data / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(NeurodeployError, match="was not written by neurodeploy"):
        nd.compare(str(MODEL), data / "x.npy", data / "y.npy", schemes="rate", rate_timesteps=[4], output=mine)
    assert _tree(mine) == {"notes.txt": b"my notes"}
    # compare's folder is ours: a manifest listing every file, and a second run replaces it
    d = nd.compare(str(MODEL), x, np.load(data / "y.npy"), schemes="rate", rate_timesteps=[4], output=data / "cmp1")
    manifest = json.loads((data / "cmp1" / "neurodeploy-manifest.json").read_text())
    assert manifest["command"] == "compare"
    assert set(manifest["files"]) == set(_tree(data / "cmp1")) - {"neurodeploy-manifest.json"}
    assert nd.compare(str(MODEL), x, np.load(data / "y.npy"), schemes="rate", rate_timesteps=[4],
                      output=data / "cmp1") == d
    # --allow-other-model: a model other than the compiled one is refused unless allowed, and then said
    other = data / "other.onnx"
    other.write_bytes((MODELS / "digits_qcfs_folded.onnx").read_bytes())
    with pytest.raises(NeurodeployError, match="not the model this network was compiled from"):
        nd.report(data / "bp", x, labels=np.load(data / "y.npy"), model=other)
    d = nd.report(data / "bp", x, labels=np.load(data / "y.npy"), model=other, allow_other_model=True,
                  output=data / "other.md")
    assert d["verify"]["model_is_compiled_one"] is False
    assert "other.onnx`, which is not the model this network was compiled from" in (data / "other.md").read_text()
