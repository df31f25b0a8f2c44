"""Loading a user's file never runs code it carries: `.pt2` archives and training checkpoints are
read with PyTorch's restricted (weights-only) unpickler, and a file that needs more is refused with
a one-line error (exit 2 from the CLI).  Each crafted file below would create a marker file if any
of its pickles were executed; the tests check that the marker never appears."""
import io
import subprocess
import sys
import zipfile

import pytest
import torch

from neurodeploy.errors import NeurodeployError
from neurodeploy.frontends.torch.program import load_program
from neurodeploy.train.checkpoint import load_checkpoint, save_checkpoint


class _RunsCode:
    """Unpickling this calls `open(marker, "w")`: the code a hostile file would run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _program(path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.export.save(torch.export.export(model.eval(), (torch.randn(2, 4),)), str(path))


def _rewrite(src, dst, replace: dict):
    """Copy the zip `src` to `dst`, replacing the members whose name ends with a key of `replace`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new(data) if callable(new) else new
            zout.writestr(info, data)


def test_plain_program_still_loads(tmp_path):
    _program(tmp_path / "ok.pt2")
    assert load_program(tmp_path / "ok.pt2") is not None


def test_pickled_sample_inputs_are_refused(tmp_path):
    """torch.export.load retries a failed sample-input load with weights_only=False."""
    _program(tmp_path / "ok.pt2")
    marker = tmp_path / "ran"
    _rewrite(tmp_path / "ok.pt2", tmp_path / "evil.pt2", {"sample_inputs/model.pt": _pickled(_RunsCode(marker))})
    with pytest.raises(NeurodeployError, match="pickled Python objects"):
        load_program(tmp_path / "evil.pt2")
    assert not marker.exists()


def test_weight_marked_use_pickle_is_refused(tmp_path):
    """A weight the archive's config marks `use_pickle` is unpickled with weights_only=False."""
    _program(tmp_path / "ok.pt2")
    marker = tmp_path / "ran"

    def mark_pickled(config: bytes) -> bytes:
        return config.replace(b'"use_pickle": false', b'"use_pickle": true', 1) \
                     .replace(b'"use_pickle":false', b'"use_pickle":true', 1)

    _rewrite(tmp_path / "ok.pt2", tmp_path / "evil.pt2",
             {"model_weights_config.json": mark_pickled, "weights/weight_0": _pickled(_RunsCode(marker))})
    with zipfile.ZipFile(tmp_path / "evil.pt2") as z:
        config = [n for n in z.namelist() if n.endswith("model_weights_config.json")][0]
        assert b"true" in z.read(config).replace(b" ", b"")     # the tampering took
    with pytest.raises(NeurodeployError):
        load_program(tmp_path / "evil.pt2")
    assert not marker.exists()


def test_cli_refuses_evil_program_in_one_line(tmp_path):
    _program(tmp_path / "ok.pt2")
    marker = tmp_path / "ran"
    _rewrite(tmp_path / "ok.pt2", tmp_path / "evil.pt2", {"sample_inputs/model.pt": _pickled(_RunsCode(marker))})
    run = subprocess.run([sys.executable, "-m", "neurodeploy", "compile", str(tmp_path / "evil.pt2"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_checkpoints_load_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck.pt", model, opt, epoch=3, history=[{"loss": 0.5}], config={"lr": 0.1})
    fresh = torch.nn.Linear(3, 2)
    state = load_checkpoint(tmp_path / "ck.pt", fresh)
    assert state["epoch"] == 3 and torch.equal(fresh.weight, model.weight)

    marker = tmp_path / "ran"
    torch.save({"format_version": 1, "model": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(NeurodeployError, match="never loads"):
        load_checkpoint(tmp_path / "evil.pt", fresh)
    assert not marker.exists()
