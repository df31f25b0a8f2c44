"""Progress reporting of long commands: compile announces its stages, in order, to the bar."""
from __future__ import annotations

from conftest import MODELS

from neurodeploy.compiler import compile_model
from neurodeploy.progress import COMPILE_STAGES, stage_bar


def test_compile_announces_every_stage_in_order():
    seen = []
    compile_model(MODELS / "digits_qcfs.onnx", "loihi2", "bitplane", None, seen.append)
    assert seen == list(COMPILE_STAGES)


def test_stage_bar_writes_nothing_without_a_terminal(capsys):
    """Tests and pipes see no bar (stderr is not a terminal): the command's output stays clean."""
    with stage_bar(("a", "b"), "x") as stage:
        stage("a")
        stage("b")
    assert capsys.readouterr().err == ""
