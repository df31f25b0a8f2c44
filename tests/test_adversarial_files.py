"""The adversarial suite for files and the process: what a careless or hostile user can do to the
places we write, to the files we read, to the process (signals) and to its memory.

Every case ends refused (exit 2, one line, no traceback, nothing written, no temporary left, no
user file changed) or done exactly (tests/adversarial.py asserts both).  Categories (the session's
summary line counts them):

  ownership        an -o folder is replaced only when it is empty or exactly our unchanged output
  inputs           no command writes over one of its own inputs
  output-paths     unwritable, read-only, under a file, a folder where a file goes, odd names
  atomic           a failure after the write began leaves the old output and no temporary
  signals          SIGINT / SIGTERM in start-up and mid-write (real processes, real signals)
  npy              .npy / .npz files whose headers lie, truncated, pickled, not arrays at all
  limits           the caps of neurodeploy/limits.py, huge declared shapes, very long graphs
  training         train.fit / predict on containers that cannot carry time-first tensors

In-process runs (`neurodeploy.cli.main`, the console script's own code) where a process is not the
point; subprocesses for start-up, signals, resource limits and permissions.  Cases that need many
processes are marked slow beyond one representative each.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

import netgen
from adversarial import ROOT, assert_no_changes, cli, record, run_cli, snapshot

MANIFEST = "neurodeploy-manifest.json"


# -- the kit: a tiny model, its data and its compiled networks (built once) -----------------------

@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("kit")
    onnx.save(netgen.dense_net(0), d / "m.onnx")                    # input (12,), 5 classes, QCFS input
    np.save(d / "x.npy", netgen.random_inputs((12,), 16))
    np.save(d / "y.npy", np.arange(16) % 5)
    onnx.save(netgen.residual_net(0), d / "residual.onnx")
    b = netgen.NetBuilder((6,), 0)                                   # a float input: needs --calibration
    onnx.save(b.model(b.gemm(b.qcfs(b.gemm("input", 6, 8), 7, 1.0), 8, 3), 3), d / "uncalibrated.onnx")
    np.save(d / "x6.npy", netgen.random_inputs((6,), 8))
    np.save(d / "y6.npy", np.arange(8) % 3)
    for name, model, scheme in (("net", "m.onnx", "bitplane"), ("net_rate", "m.onnx", "rate"),
                                ("net_sdnn_res", "residual.onnx", "sdnn")):
        r = cli("compile", d / model, "--scheme", scheme, "-o", d / name)
        assert r.code == 0, r.stderr
    return SimpleNamespace(dir=d, model=d / "m.onnx", x=d / "x.npy", y=d / "y.npy", net=d / "net",
                           net_rate=d / "net_rate", net_sdnn_res=d / "net_sdnn_res", uncalibrated=d / "uncalibrated.onnx",
                           x6=d / "x6.npy", y6=d / "y6.npy")


def ours(kit, where: Path) -> Path:
    """A copy of our compiled network (manifest and all) at `where`."""
    shutil.copytree(kit.net, where, symlinks=True)
    return where


# the commands that write a folder, and the one API call that does
def compile_to(kit, out):
    return ("compile", kit.model, "-o", out)


def compare_to(kit, out):
    return ("compare", kit.model, "--input", kit.x, "--labels", kit.y, "--schemes", "bitplane", "-o", out)


FOLDER_WRITERS = {"compile": compile_to, "compare": compare_to}


# the commands that write one file
FILE_WRITERS = {
    "simulate": lambda k, p: ("simulate", k.net, "--input", k.x, "--output", p),
    "report": lambda k, p: ("report", k.net, "--input", k.x, "-o", p),
    "export": lambda k, p: ("export", k.net_rate, "--format", "nir", "-o", p),
}
WRITERS = {**FOLDER_WRITERS, **FILE_WRITERS}


# -- ownership: what an existing -o folder may hold ----------------------------------------------

def _user_notes(kit, d):
    ours(kit, d)
    (d / "notes.txt").write_text("my notes")


def _user_results_folder(kit, d):
    ours(kit, d)
    (d / "results").mkdir()
    (d / "results" / "run1.csv").write_text("a,b\n1,2\n")


def _empty_user_subfolder(kit, d):
    ours(kit, d)
    (d / "keep").mkdir()


def _hidden_user_file(kit, d):
    ours(kit, d)
    (d / ".gitignore").write_text("*\n")


def _edited_summary(kit, d):
    ours(kit, d)
    with open(d / "summary.md", "a") as f:
        f.write("\nmy remark\n")


def _edited_params(kit, d):
    ours(kit, d)
    data = bytearray((d / "params.npz").read_bytes())
    data[-10] ^= 1
    (d / "params.npz").write_bytes(bytes(data))


def _replaced_by_symlink(kit, d):
    ours(kit, d)
    (d.parent / "elsewhere.md").write_text("the user's file")
    (d / "summary.md").unlink()
    (d / "summary.md").symlink_to(d.parent / "elsewhere.md")


def _symlink_inside(kit, d):
    ours(kit, d)
    (d / "data").symlink_to(kit.dir)


def _fifo_inside(kit, d):
    ours(kit, d)
    os.mkfifo(d / "pipe")


def _legacy_output(kit, d):          # an earlier neurodeploy's output: no manifest
    ours(kit, d)
    (d / MANIFEST).unlink()


def _only_ir_json(kit, d):           # another tool's project that happens to hold an ir.json
    d.mkdir()
    (d / "ir.json").write_text('{"tool": "someone else"}')
    (d / "model.bin").write_bytes(b"\0" * 64)


def _foreign_folder(kit, d):
    d.mkdir()
    (d / "precious.txt").write_text("keep me")


def _foreign_manifest(kit, d):
    ours(kit, d)
    (d / MANIFEST).write_text(json.dumps({"format": "other-tool", "files": {}}))


def _corrupt_manifest(kit, d):
    ours(kit, d)
    (d / MANIFEST).write_text('{"format": "neurodeploy-output-manifest", "files": ')


def _manifest_files_a_list(kit, d):
    ours(kit, d)
    doc = json.loads((d / MANIFEST).read_text())
    doc["files"] = sorted(doc["files"])
    (d / MANIFEST).write_text(json.dumps(doc))


def _manifest_is_a_folder(kit, d):
    ours(kit, d)
    (d / MANIFEST).unlink()
    (d / MANIFEST).mkdir()


def _manifest_lists_less(kit, d):    # the user added a file and a line for it? no: the manifest lists less
    ours(kit, d)
    doc = json.loads((d / MANIFEST).read_text())
    del doc["files"]["summary.md"]
    (d / MANIFEST).write_text(json.dumps(doc))


def _manifest_alone_plus_user_file(kit, d):
    d.mkdir()
    (d / MANIFEST).write_text(json.dumps({"format": "neurodeploy-output-manifest", "tool": "neurodeploy",
                                          "files": {}}))
    (d / "thesis.tex").write_text("\\documentclass{article}")


REFUSED_FOLDERS = {
    "user-notes": (_user_notes, "did not write"),
    "user-results-folder": (_user_results_folder, "did not write"),
    "empty-user-subfolder": (_empty_user_subfolder, "did not write"),
    "hidden-user-file": (_hidden_user_file, "did not write"),
    "edited-summary": (_edited_summary, "changed since"),
    "edited-params": (_edited_params, "changed since"),
    "file-replaced-by-symlink": (_replaced_by_symlink, "did not write"),
    "symlink-inside": (_symlink_inside, "did not write"),
    "fifo-inside": (_fifo_inside, "did not write"),
    "legacy-output-without-manifest": (_legacy_output, "not written by neurodeploy"),
    "another-tools-ir-json": (_only_ir_json, "not written by neurodeploy"),
    "foreign-folder": (_foreign_folder, "not written by neurodeploy"),
    "foreign-manifest": (_foreign_manifest, "not written by neurodeploy"),
    "corrupt-manifest": (_corrupt_manifest, "not written by neurodeploy"),
    "manifest-files-a-list": (_manifest_files_a_list, "not written by neurodeploy"),
    "manifest-is-a-folder": (_manifest_is_a_folder, "not written by neurodeploy"),
    "manifest-lists-less": (_manifest_lists_less, "did not write"),
    "manifest-plus-user-file": (_manifest_alone_plus_user_file, "did not write"),
}


@pytest.mark.parametrize("writer", sorted(FOLDER_WRITERS))
@pytest.mark.parametrize("state", sorted(REFUSED_FOLDERS))
def test_folder_not_ours_is_refused_untouched(kit, tmp_path, writer, state):
    make, needle = REFUSED_FOLDERS[state]
    out = tmp_path / "out"
    make(kit, out)
    run_cli(*FOLDER_WRITERS[writer](kit, out), category="ownership", needles=(needle, str(out)),
            guard=(tmp_path, kit.dir))


@pytest.mark.parametrize("state", sorted(REFUSED_FOLDERS))
def test_api_save_refuses_a_folder_not_ours(kit, tmp_path, state):
    import neurodeploy as nd
    from neurodeploy.errors import NeurodeployError
    make, needle = REFUSED_FOLDERS[state]
    out = tmp_path / "out"
    make(kit, out)
    net = nd.load(kit.net)
    before = snapshot(tmp_path, kit.dir)
    with pytest.raises(NeurodeployError, match=needle):
        net.save(out)
    assert_no_changes(before, snapshot(tmp_path, kit.dir))
    record("ownership", ("api-save", state))


def _fresh(kit, tmp_path) -> dict:
    """name -> bytes of a fresh compile of kit.model."""
    fresh = tmp_path / "fresh"
    assert cli(*compile_to(kit, fresh)).code == 0
    files = {p.name: p.read_bytes() for p in fresh.iterdir()}
    shutil.rmtree(fresh)
    return files


def _prior_ours(kit, d):
    ours(kit, d)


def _prior_ours_missing_file(kit, d):           # the user deleted one of our files: still ours
    ours(kit, d)
    (d / "summary.md").unlink()


def _prior_empty(kit, d):
    d.mkdir()


def _prior_none(kit, d):
    pass


def _prior_link_to_ours(kit, d):                 # -o names a link to our output: the output is replaced,
    ours(kit, d.parent / "real_out")             # the link stays
    d.symlink_to(d.parent / "real_out")


REPLACEABLE = {"ours": _prior_ours, "ours-missing-file": _prior_ours_missing_file, "empty": _prior_empty,
               "absent": _prior_none, "link-to-ours": _prior_link_to_ours}


@pytest.mark.parametrize("state", sorted(REPLACEABLE))
def test_compile_replaces_exactly_our_folder(kit, tmp_path, state):
    expected = _fresh(kit, tmp_path)
    out = tmp_path / "out"
    REPLACEABLE[state](kit, out)
    real = out.resolve()
    run_cli(*compile_to(kit, out), category="ownership", expect=0, guard=(tmp_path, kit.dir), outputs=(real,))
    assert {p.name: p.read_bytes() for p in real.iterdir()} == expected
    assert out.is_symlink() == (state == "link-to-ours")


@pytest.mark.parametrize("state", ["ours", "absent"])
def test_compare_replaces_exactly_our_folder(kit, tmp_path, state):
    out = tmp_path / "cmp"
    REPLACEABLE[state](kit, out)
    run_cli(*compare_to(kit, out), category="ownership", expect=0, guard=(tmp_path, kit.dir), outputs=(out,))
    manifest = json.loads((out / MANIFEST).read_text())
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) | {MANIFEST} == written
    assert manifest["command"] == "compare" and "compare.md" in manifest["files"]
    assert (out / "bitplane" / MANIFEST).is_file()          # each configuration's network is ours too
    # and a compile may then replace one configuration's folder: it is ours, unchanged
    run_cli(*compile_to(kit, out / "bitplane"), category="ownership", expect=0, guard=(tmp_path, kit.dir),
            outputs=(out / "bitplane",))


def test_recheck_right_before_the_swap(kit, tmp_path, monkeypatch):
    """A file the user puts into the -o folder while we compile is seen right before the swap."""
    import neurodeploy as nd
    from neurodeploy import compiler, outputs
    from neurodeploy.errors import NeurodeployError
    out = ours(kit, tmp_path / "out")
    real_write = outputs.write_manifest

    def user_meanwhile(folder, command):         # runs inside the save, after the first check passed
        real_write(folder, command)
        (out / "added-meanwhile.txt").write_text("mine")
    monkeypatch.setattr(outputs, "write_manifest", user_meanwhile)
    before = snapshot(tmp_path)
    with pytest.raises(NeurodeployError, match="did not write"):
        compiler.save_artifact(nd.load(kit.net).graph, out)
    assert_no_changes(before, snapshot(tmp_path), allowed=(out / "added-meanwhile.txt",))
    record("ownership", "recheck-before-swap")


# -- inputs are never outputs --------------------------------------------------------------------

def _hardlink(src: Path, dst: Path) -> Path:
    os.link(src, dst)
    return dst


def _symlink(src: Path, dst: Path) -> Path:
    dst.symlink_to(src)
    return dst


INPUT_CASES = {
    # name: (argv from (kit, ws, inputs-copied-to-ws), needle)
    "simulate-output-is-input": lambda k, w: ("simulate", k.net, "--input", w / "x.npy", "--output", w / "x.npy"),
    "simulate-output-is-input-dotted": lambda k, w: ("simulate", k.net, "--input", w / "x.npy",
                                                     "--output", w / "sub" / ".." / "x.npy"),
    "simulate-output-symlink-to-input": lambda k, w: ("simulate", k.net, "--input", w / "x.npy",
                                                      "--output", _symlink(w / "x.npy", w / "ln.npy")),
    "simulate-output-hardlink-of-input": lambda k, w: ("simulate", k.net, "--input", w / "x.npy",
                                                       "--output", _hardlink(w / "x.npy", w / "hard.npy")),
    "simulate-output-in-compiled-params": lambda k, w: ("simulate", w / "net", "--input", w / "x.npy",
                                                        "--output", w / "net" / "params.npz"),
    "simulate-output-in-compiled-ir": lambda k, w: ("simulate", w / "net", "--input", w / "x.npy",
                                                    "--output", w / "net" / "ir.json"),
    "simulate-output-is-manifest": lambda k, w: ("simulate", w / "net", "--input", w / "x.npy",
                                                 "--output", w / "net" / MANIFEST),
    "report-output-is-input": lambda k, w: ("report", k.net, "--input", w / "x.npy", "-o", w / "x.npy"),
    "report-output-is-labels": lambda k, w: ("report", k.net, "--input", w / "x.npy", "--labels", w / "y.npy",
                                             "-o", w / "y.npy"),
    "report-output-is-model": lambda k, w: ("report", k.net, "--input", w / "x.npy", "--labels", w / "y.npy",
                                            "--model", w / "m.onnx", "-o", w / "m.onnx"),
    "report-output-in-compiled": lambda k, w: ("report", w / "net", "--input", w / "x.npy",
                                               "-o", w / "net" / "summary.md"),
    "export-output-in-compiled": lambda k, w: ("export", w / "net", "--format", "nir",
                                               "-o", w / "net" / "params.npz"),
    "export-output-symlink-to-compiled-ir": lambda k, w: ("export", w / "net", "--format", "nir",
                                                          "-o", _symlink(w / "net" / "ir.json", w / "n.nir")),
    "compile-output-holds-model": lambda k, w: ("compile", w / "m.onnx", "-o", w),
    "compile-output-holds-calibration": lambda k, w: ("compile", k.model, "--calibration", w / "empty" / "x.npy",
                                                      "-o", w / "empty"),
    "compile-output-is-model": lambda k, w: ("compile", w / "m.onnx", "-o", w / "m.onnx"),
    "compare-output-holds-input": lambda k, w: ("compare", k.model, "--input", w / "empty" / "x.npy",
                                                "--labels", w / "y.npy", "-o", w / "empty"),
    "compare-output-holds-labels": lambda k, w: ("compare", k.model, "--input", w / "x.npy",
                                                 "--labels", w / "empty" / "y.npy", "-o", w / "empty"),
    "compare-output-is-input": lambda k, w: ("compare", k.model, "--input", w / "x.npy", "--labels", w / "y.npy",
                                             "-o", w / "x.npy"),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_no_command_writes_over_its_inputs(kit, tmp_path, case):
    for src in (kit.x, kit.y, kit.model):
        shutil.copy(src, tmp_path / src.name)
    ours(kit, tmp_path / "net")
    (tmp_path / "empty").mkdir()                          # a folder that holds only an input
    shutil.copy(kit.x, tmp_path / "empty" / "x.npy")
    shutil.copy(kit.y, tmp_path / "empty" / "y.npy")
    (tmp_path / "sub").mkdir()
    argv = INPUT_CASES[case](kit, tmp_path)
    run_cli(*argv, category="inputs", guard=(tmp_path, kit.dir))


# -- output paths --------------------------------------------------------------------------------

def _place(ws: Path, kind: str):
    """The -o path of a bad place (and its needle in the error)."""
    (ws / "afile").write_text("a file")
    if kind == "under-a-file":
        return ws / "afile" / "out", "which is a file"
    if kind == "deep-under-a-file":
        return ws / "afile" / "a" / "b" / "out", "which is a file"
    if kind == "dangling-link":
        (ws / "link").symlink_to(ws / "nowhere")
        return ws / "link", "link to nothing"
    if kind == "link-loop":
        (ws / "loop").symlink_to(ws / "loop")
        return ws / "loop", "link to nothing"
    if kind == "empty-name":
        return "", "name"
    if kind == "name-too-long":
        return ws / ("x" * 300), "too long"
    if kind == "is-a-folder":
        (ws / "adir").mkdir()
        (ws / "adir" / "inside.txt").write_text("keep")
        return ws / "adir", "is a directory"
    if kind == "device":
        return Path("/dev/null"), "not a regular file"
    if kind == "fifo":
        os.mkfifo(ws / "fifo")
        return ws / "fifo", "not a regular file"
    if kind == "is-a-file":
        return ws / "afile", "not a directory"
    if kind == "root-folder":
        return Path("/"), "root"
    raise AssertionError(kind)


COMMON_BAD = ["under-a-file", "deep-under-a-file", "dangling-link", "link-loop", "empty-name", "name-too-long"]
FILE_BAD = ["is-a-folder", "device", "fifo"]
FOLDER_BAD = ["is-a-file", "root-folder"]
BAD_PLACES = [(w, k) for w in sorted(WRITERS) for k in COMMON_BAD] + \
             [(w, k) for w in sorted(FILE_WRITERS) for k in FILE_BAD] + \
             [(w, k) for w in sorted(FOLDER_WRITERS) for k in FOLDER_BAD]


@pytest.mark.parametrize("writer,kind", BAD_PLACES)
def test_bad_output_place_is_one_line(kit, tmp_path, writer, kind):
    path, needle = _place(tmp_path, kind)
    run_cli(*WRITERS[writer](kit, path), category="output-paths", needles=(needle,), guard=(tmp_path, kit.dir))


@pytest.mark.parametrize("writer", sorted(FOLDER_WRITERS))
def test_current_folder_with_files_is_refused(kit, tmp_path, writer):
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    run_cli(*FOLDER_WRITERS[writer](kit, "."), category="output-paths", needles=("current directory",),
            guard=(tmp_path, kit.dir), cwd=tmp_path)


@pytest.mark.parametrize("writer", sorted(FOLDER_WRITERS))
@pytest.mark.parametrize("where", ["empty-current-folder", "inside-our-output"])
def test_current_folder_is_never_replaced(kit, tmp_path, writer, where):
    """Replacing the folder the user stands in would pull it from under their shell."""
    if where == "empty-current-folder":
        (tmp_path / "here").mkdir()
        out, cwd = ".", tmp_path / "here"
    else:
        out, cwd = tmp_path / "out", ours(kit, tmp_path / "out")
    run_cli(*FOLDER_WRITERS[writer](kit, out), category="output-paths", needles=("current directory",),
            guard=(tmp_path, kit.dir), cwd=cwd)


def _good_place(ws: Path, kind: str, writer: str):
    """(the -o path, the path that must appear) of a good place."""
    if kind == "spaces-unicode":
        p = ws / "my results – ü" / "out put"
        return p, p.parent
    if kind == "relative":
        return "out", ws / "out"
    if kind == "new-nested":
        p = ws / "a" / "b" / "c" / "out"
        return p, ws / "a"
    if kind == "existing-file":                 # the user named it: replaced
        (ws / "out.dat").write_bytes(b"old")
        return ws / "out.dat", ws / "out.dat"
    if kind == "symlink-to-file":               # the link's target is written, the link stays
        (ws / "target.dat").write_bytes(b"old")
        (ws / "ln").symlink_to(ws / "target.dat")
        return ws / "ln", ws / "target.dat"
    raise AssertionError(kind)


GOOD_PLACES = [(w, k) for w in sorted(WRITERS) for k in ("spaces-unicode", "relative", "new-nested")] + \
              [(w, k) for w in sorted(FILE_WRITERS) for k in ("existing-file", "symlink-to-file")]


@pytest.mark.parametrize("writer,kind", GOOD_PLACES)
def test_good_output_place_is_written_exactly(kit, tmp_path, writer, kind):
    path, appears = _good_place(tmp_path, kind, writer)
    run_cli(*WRITERS[writer](kit, path), category="output-paths", expect=0, guard=(tmp_path, kit.dir),
            outputs=(appears,), cwd=tmp_path)
    written = tmp_path / path if isinstance(path, str) else path
    assert written.exists()
    if writer in FOLDER_WRITERS:
        assert (written / MANIFEST).is_file()
    else:
        assert written.is_file() and written.read_bytes() != b"old"
    if kind == "symlink-to-file":
        assert (tmp_path / "ln").is_symlink()


# read-only places: the process must not be able to override permissions (root can), so as root
# the command runs in an unprivileged user namespace (`unshare -U`: same files, no override)

def _unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    ok = shutil.which("unshare") and subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode == 0
    if not ok:
        pytest.skip("running as root without user namespaces: file permissions cannot be enforced here")
    return ["unshare", "-U"]


def _read_only_place(ws: Path, kind: str):
    ro = ws / "ro"
    ro.mkdir()
    if kind == "read-only-folder":
        path = ro / "out"
    elif kind == "read-only-parent-of-new":
        path = ro / "new" / "out"
    elif kind == "read-only-file":            # in a writable folder: the file itself is read-only
        path = ro / "out.dat"
        path.write_bytes(b"keep")
        path.chmod(0o444)
        return path
    ro.chmod(0o555)
    return path


READ_ONLY = [(w, k) for w in sorted(WRITERS) for k in ("read-only-folder", "read-only-parent-of-new")] + \
            [(w, "read-only-file") for w in sorted(FILE_WRITERS)]
FAST_READ_ONLY = {("simulate", "read-only-folder"), ("compile", "read-only-folder")}


@pytest.mark.parametrize("writer,kind", [pytest.param(*c, marks=() if c in FAST_READ_ONLY else pytest.mark.slow)
                                         for c in READ_ONLY])
def test_read_only_place_is_one_line(kit, tmp_path, writer, kind):
    prefix = _unprivileged_prefix()
    path = _read_only_place(tmp_path, kind)
    try:
        run_cli(*WRITERS[writer](kit, path), category="output-paths", needles=("permission denied",)
                if kind != "read-only-file" else ("read-only",), guard=(tmp_path, kit.dir), prefix=prefix)
    finally:
        (tmp_path / "ro").chmod(0o755)


# -- atomic: failures after the write began ------------------------------------------------------

@pytest.mark.parametrize("prior", ["absent", "a previous export"])
def test_export_refused_inside_the_writer_leaves_old_file(kit, tmp_path, prior):
    """A residual sdnn network has no NetX form: refused inside the writer, after the temporary exists."""
    out = tmp_path / "net.h5"
    if prior != "absent":
        out.write_bytes(prior.encode())
    run_cli("export", kit.net_sdnn_res, "--format", "netx", "-o", out, category="atomic",
            needles=("residual",), guard=(tmp_path, kit.dir))


@pytest.mark.parametrize("prior", ["absent", "ours"])
def test_compare_that_compiles_nothing_leaves_the_folder(kit, tmp_path, prior):
    out = tmp_path / "cmp"
    REPLACEABLE[prior](kit, out)
    run_cli("compare", kit.uncalibrated, "--input", kit.x6, "--labels", kit.y6, "--schemes", "bitplane,rate",
            "-o", out, category="atomic", needles=("no scheme could compile",), guard=(tmp_path, kit.dir))


def test_atomic_dir_body_failure_keeps_old_output(tmp_path):
    from neurodeploy.fsutil import atomic_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    before = snapshot(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with atomic_dir(out) as tmp:
            (tmp / "new.txt").write_text("half")
            1 / 0
    assert_no_changes(before, snapshot(tmp_path))
    record("atomic", "atomic-dir-body-fails")


def test_atomic_dir_before_replace_failure_keeps_old_output(tmp_path):
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.fsutil import atomic_dir
    out = tmp_path / "new" / "deeper" / "out"          # its parents are created, and removed again
    before = snapshot(tmp_path)

    def refuse(tmp):
        raise NeurodeployError("changed meanwhile")
    with pytest.raises(NeurodeployError):
        with atomic_dir(out, before_replace=refuse) as tmp:
            (tmp / "f").write_text("x")
    assert_no_changes(before, snapshot(tmp_path))
    record("atomic", "atomic-dir-before-replace-fails")


def test_atomic_file_body_failure_keeps_old_file(tmp_path):
    from neurodeploy.fsutil import atomic_file
    out = tmp_path / "out.txt"
    out.write_text("old")
    before = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(out) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert_no_changes(before, snapshot(tmp_path))
    record("atomic", "atomic-file-interrupted")


def test_atomic_file_replace_failure_is_one_line_error(tmp_path):
    """The rename itself fails (a folder appeared under the name meanwhile): one-line error, no temporary."""
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.fsutil import atomic_file
    out = tmp_path / "out.txt"
    with pytest.raises(NeurodeployError, match="cannot write"):
        with atomic_file(out) as tmp:
            tmp.write_text("data")
            out.mkdir()
            (out / "inside").write_text("keep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert (out / "inside").read_text() == "keep"
    record("atomic", "atomic-file-rename-fails")


def _fsize_limited():
    """In the child: files may not grow beyond 4 kB, and that is an error (EFBIG), not a kill."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _run_fsize_limited(argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "neurodeploy", *map(str, argv)], capture_output=True, text=True,
                          env=env, preexec_fn=_fsize_limited, timeout=600)


@pytest.mark.parametrize("writer", [pytest.param(w, marks=() if w == "simulate" else pytest.mark.slow)
                                    for w in sorted(WRITERS)])
def test_disk_full_mid_write_leaves_old_output(kit, tmp_path, writer):
    """The file system refuses the write half-way (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC):
    one line, the previous output intact, no temporary."""
    big_x = tmp_path / "big_x.npy"                       # outputs over 4 kB: 400 samples x 5 float32
    np.save(big_x, netgen.random_inputs((12,), 400))
    out = tmp_path / ("out" if writer in FOLDER_WRITERS else "out.dat")
    if writer in FOLDER_WRITERS:
        ours(kit, out)
    else:
        out.write_bytes(b"previous output")
    argv = list(WRITERS[writer](kit, out))
    if writer in ("simulate", "report"):
        argv[argv.index(kit.x)] = big_x
    before = snapshot(tmp_path, kit.dir)
    res = _run_fsize_limited(argv)
    after = snapshot(tmp_path, kit.dir)
    err = res.stderr.strip()
    assert res.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (res.returncode, err)
    assert "cannot write" in err, err
    assert_no_changes(before, after)
    record("atomic", ("disk-full", writer))


# -- signals ---------------------------------------------------------------------------------------

def _start(argv, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "neurodeploy", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def _wait_until(proc: subprocess.Popen, seen) -> None:
    """Poll (no fixed sleeps) until seen() holds; fails if the process ends first."""
    while not seen():
        assert proc.poll() is None, ("the command ended before the signal", proc.returncode,
                                     proc.communicate()[1][-2000:])
        time.sleep(0.005)


def _maps(proc) -> str:
    try:
        return Path(f"/proc/{proc.pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _in_startup(proc) -> bool:
    """torch's library is being mapped: the interpreter is up and our handlers are installed (main()
    runs before any heavy import), the command itself has not started."""
    return "libtorch" in _maps(proc)


def _signalled(proc, sig, status: int, word: str) -> str:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)
    err = err.strip()
    assert proc.returncode == status, (proc.returncode, err[-3000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1 and word in err, err
    return err


@pytest.mark.parametrize("sig,status,word", [
    (signal.SIGINT, 130, "interrupted"),
    pytest.param(signal.SIGTERM, 143, "terminated", marks=pytest.mark.slow)])
def test_signal_during_startup(kit, tmp_path, sig, status, word):
    before = snapshot(tmp_path, kit.dir)
    proc = _start(compile_to(kit, tmp_path / "out"))
    _wait_until(proc, lambda: _in_startup(proc))
    _signalled(proc, sig, status, word)
    assert_no_changes(before, snapshot(tmp_path, kit.dir))
    record("signals", ("startup", sig.name))


@pytest.mark.parametrize("sig,status,word,prior", [
    (signal.SIGTERM, 143, "terminated", "ours"),
    pytest.param(signal.SIGINT, 130, "interrupted", "absent", marks=pytest.mark.slow)])
def test_signal_mid_write_leaves_old_output_and_no_temporary(kit, tmp_path, sig, status, word, prior):
    """compare builds its whole folder beside -o; the signal lands while that temporary exists."""
    out = tmp_path / "cmp"
    REPLACEABLE[prior](kit, out)
    before = snapshot(tmp_path, kit.dir)
    proc = _start(("compare", kit.model, "--input", kit.x, "--labels", kit.y, "--schemes", "bitplane,rate",
                   "-o", out))
    _wait_until(proc, lambda: any(p.name.startswith(".cmp.tmp-") for p in tmp_path.iterdir()))
    _signalled(proc, sig, status, word)
    assert_no_changes(before, snapshot(tmp_path, kit.dir))
    record("signals", ("mid-write", sig.name))


@pytest.mark.slow
def test_sigterm_mid_simulation_writes_nothing(kit, tmp_path):
    x = tmp_path / "many.npy"
    np.save(x, np.repeat(netgen.random_inputs((12,), 1000), 1000, axis=0))      # 1e6 samples, memory-mapped
    before = snapshot(tmp_path, kit.dir)
    proc = _start(("simulate", kit.net, "--input", x, "--output", tmp_path / "y.npy"))
    _wait_until(proc, lambda: str(x) in _maps(proc))         # the inputs are mapped: the run has begun
    _signalled(proc, signal.SIGTERM, 143, "terminated")
    assert_no_changes(before, snapshot(tmp_path, kit.dir))
    record("signals", "mid-simulation")


@pytest.mark.slow
def test_reader_closing_stdout_early_is_quiet(kit, tmp_path):
    """`neurodeploy compile ... | head -1`: the reader leaves before we print; the output folder is
    written, the command ends with 141 (128 + SIGPIPE) and says nothing (no BrokenPipeError traceback)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    read_end, write_end = os.pipe()
    os.close(read_end)                       # nobody will ever read
    proc = subprocess.Popen([sys.executable, "-m", "neurodeploy", *map(str, compile_to(kit, out))],
                            stdout=write_end, stderr=subprocess.PIPE, text=True, env=env)
    os.close(write_end)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 141 and err == "", (proc.returncode, err[-3000:])
    assert (out / MANIFEST).is_file()
    record("signals", "broken-pipe")


def test_deferred_signal_arrives_after_the_block():
    """The swap of an output folder is not cut in half: a signal inside `deferred()` acts right after it."""
    from neurodeploy.signals import Terminated, deferred, handled
    done = []
    previous = signal.getsignal(signal.SIGTERM)
    with handled():
        with pytest.raises(Terminated):
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):               # the handler would have run here
                    pass
                done.append("block finished")
    assert done == ["block finished"]
    assert signal.getsignal(signal.SIGTERM) is previous          # handled() put the old handler back
    record("signals", "deferred")


# -- npy: files that are not what they say ---------------------------------------------------------

def _npy_bytes(arr) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _with_header(shape_text: str, dtype="<f4", data=b"\0" * 16, version=b"\x01\x00") -> bytes:
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (dtype, shape_text)
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY" + version + len(header).to_bytes(2, "little") + header.encode("latin1") + data


def _bad_npy(ws: Path, kind: str, like: Path) -> Path:
    p = ws / f"{kind}.npy"
    good = np.load(like)
    if kind == "huge-header":                    # 4 TB declared, 16 bytes present
        p.write_bytes(_with_header("(1000000, 1000000)"))
    elif kind == "huge-header-like-shape":       # the right sample shape and dtype, 10^12 samples
        p.write_bytes(_with_header(str((10 ** 12, *good.shape[1:])), dtype=good.dtype.str))
    elif kind == "truncated":
        p.write_bytes(_npy_bytes(good)[:-7])
    elif kind == "object-array":
        np.save(p, np.array([1, None], dtype=object), allow_pickle=True)
    elif kind == "npz":
        with open(p, "wb") as f:
            np.savez(f, a=good)
    elif kind == "empty-file":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("0.1,0.2,0.3\n")
    elif kind == "folder":
        p.mkdir()
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "missing":
        pass
    elif kind == "dangling-link":
        p.symlink_to(ws / "gone.npy")
    elif kind == "version-9":
        p.write_bytes(_with_header("(2,)", version=b"\x09\x00"))
    elif kind == "header-garbage":
        p.write_bytes(b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little") + b"{not a dict at all}\n")
    elif kind == "negative-shape":
        p.write_bytes(_with_header("(-4, 12)"))
    elif kind == "header-length-lies":
        p.write_bytes(b"\x93NUMPY\x01\x00" + (60000).to_bytes(2, "little") + b"{'descr'")
    else:
        raise AssertionError(kind)
    return p


BAD_NPY = ["huge-header", "huge-header-like-shape", "truncated", "object-array", "npz", "empty-file", "text",
           "folder", "fifo", "missing", "dangling-link", "version-9", "header-garbage", "negative-shape",
           "header-length-lies"]

# which loader: (argv with the bad file, the file the bad one imitates)
NPY_LOADERS = {
    "simulate--input": (lambda k, b, w: ("simulate", k.net, "--input", b, "--output", w / "o.npy"), "x"),
    "verify--input": (lambda k, b, w: ("verify", k.net, "--model", k.model, "--input", b, "--labels", k.y), "x"),
    "verify--labels": (lambda k, b, w: ("verify", k.net, "--model", k.model, "--input", k.x, "--labels", b), "y"),
    "report--input": (lambda k, b, w: ("report", k.net, "--input", b), "x"),
    "report--labels": (lambda k, b, w: ("report", k.net, "--input", k.x, "--labels", b), "y"),
    "compare--input": (lambda k, b, w: ("compare", k.model, "--input", b, "--labels", k.y, "-o", w / "c"), "x"),
    "compare--labels": (lambda k, b, w: ("compare", k.model, "--input", k.x, "--labels", b, "-o", w / "c"), "y"),
    "compare--calibration": (lambda k, b, w: ("compare", k.model, "--input", k.x, "--labels", k.y,
                                              "--calibration", b, "-o", w / "c"), "x"),
    "compile--calibration": (lambda k, b, w: ("compile", k.model, "--calibration", b, "-o", w / "c"), "x"),
}


@pytest.mark.parametrize("kind", BAD_NPY)
@pytest.mark.parametrize("loader", sorted(NPY_LOADERS))
def test_bad_npy_is_one_line_before_allocating(kit, tmp_path, loader, kind):
    make_argv, like = NPY_LOADERS[loader]
    bad = _bad_npy(tmp_path, kind, getattr(kit, like))
    run_cli(*make_argv(kit, bad, tmp_path), category="npy", needles=(str(bad),), guard=(tmp_path, kit.dir))


def _tamper_params(folder: Path, shape_text: str) -> None:
    """Rewrite one member of params.npz with a header that declares `shape_text`, data unchanged."""
    import zipfile
    src = folder / "params.npz"
    members = {}
    with zipfile.ZipFile(src) as zf:
        for info in zf.infolist():
            members[info.filename] = zf.read(info)
    name = sorted(members)[0]
    members[name] = _with_header(shape_text, dtype="<f8", data=members[name][128:])
    with zipfile.ZipFile(src, "w", compression=zipfile.ZIP_STORED) as zf:
        for k, v in members.items():
            zf.writestr(k, v)


@pytest.mark.parametrize("shape_text", ["(1000000, 1000000)", "(4000000000,)"])
def test_params_member_header_that_lies_is_refused(kit, tmp_path, shape_text):
    net = ours(kit, tmp_path / "net")
    _tamper_params(net, shape_text)
    run_cli("simulate", net, "--input", kit.x, "--output", tmp_path / "o.npy", category="npy",
            needles=("params.npz",), guard=(tmp_path, kit.dir))


def test_fortran_order_and_float64_inputs_are_read_exactly(kit, tmp_path):
    """Odd but valid: Fortran order, float64, a version 2.0 header -- simulated exactly as the plain file."""
    x = np.load(kit.x)
    ref = tmp_path / "ref.npy"
    assert cli("simulate", kit.net, "--input", kit.x, "--output", ref).code == 0
    odd = tmp_path / "odd.npy"
    with open(odd, "wb") as f:
        np.lib.format.write_array(f, np.asfortranarray(x.astype(np.float64)), version=(2, 0))
    run_cli("simulate", kit.net, "--input", odd, "--output", tmp_path / "o.npy", category="npy", expect=0,
            guard=(tmp_path, kit.dir), outputs=(tmp_path / "o.npy",))
    assert np.array_equal(np.load(tmp_path / "o.npy"), np.load(ref))


# -- limits ----------------------------------------------------------------------------------------

def _image_model(path: Path, h: int, w: int, c_out: int = 2) -> Path:
    b = netgen.NetBuilder((1, h, w), 0)
    x = b.qcfs("input", 7, 1.0)
    x = b.qcfs(b.conv(x, 1, c_out, k=3), 7, 1.0)
    x = b.flatten(b.gap(x))
    onnx.save(b.model(b.gemm(x, c_out, 3), 3), path)
    return path


DECLARED = {"input-100000x100000": (100000, 100000, 2, "the input"),
            "input-6000x6000": (6000, 6000, 2, "the input"),
            "input-1x20000000": (1, 20000000, 2, "the input"),
            "conv-output-over-cap": (3000, 3000, 2, "the output")}


@pytest.mark.parametrize("case", sorted(DECLARED))
def test_declared_size_over_the_cap_is_refused(tmp_path, case):
    h, w, c, what = DECLARED[case]
    model = _image_model(tmp_path / "m.onnx", h, w, c)
    run_cli("compile", model, "-o", tmp_path / "out", category="limits", needles=(what, "cap", "limits.py"),
            guard=(tmp_path,))


def test_declared_huge_input_is_refused_without_allocating(tmp_path):
    """In a fresh process, so that its peak memory is this case's: refusing a declared 100000x100000
    input (80 GB as float64) must not map even one such tensor.  Measured: the refusal peaks at the
    process's start-up footprint (~1 GB virtual for torch + onnx); the bound is 8 GB, a tenth of
    the tensor, so the test fails on any allocation of it (virtual or resident)."""
    model = _image_model(tmp_path / "m.onnx", 100000, 100000)
    code = ("import sys, resource; from neurodeploy.cli import main; rc = main(sys.argv[1:]); "
            "peak = [l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1]; "
            "print('VMPEAK', peak, file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code, "compile", str(model), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=600)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "cap" in lines[0] and "Traceback" not in res.stderr, res.stderr[-3000:]
    peak_kb = int(lines[-1].split()[1])
    assert peak_kb < 8 * 2 ** 20, peak_kb
    record("limits", "declared-huge-input-no-allocation")


STEP_CAPS = {
    "rate-timesteps-over-cap": (("--scheme", "rate", "--timesteps", "16385"), "--timesteps"),
    "rate-timesteps-10e30": (("--scheme", "rate", "--timesteps", str(10 ** 30)), "--timesteps"),
    "bitplane-timesteps-over-cap": (("--scheme", "bitplane", "--timesteps", "100000"), "--timesteps"),
    "cuba-timesteps-over-cap": (("--scheme", "cuba", "--timesteps", "20000"), "--timesteps"),
    "reverb-timesteps-over-cap": (("--scheme", "reverb", "--timesteps", "99999"), "--timesteps"),
    # sws's digits: beta^(Tc + Ts) must stay inside int64, so its own cap is 32 (schemes/sws/neurons.py)
    "sws-coding-steps-over-cap": (("--scheme", "sws", "--coding-steps", "16385"), "--coding-steps", "1..32"),
    "sws-silent-steps-over-cap": (("--scheme", "sws", "--silent-steps", str(10 ** 9)), "--silent-steps", "0..32"),
}


@pytest.mark.parametrize("case", sorted(STEP_CAPS))
def test_time_steps_over_the_cap_are_refused(kit, tmp_path, case):
    flags, needle, *cap = STEP_CAPS[case]
    run_cli("compile", kit.model, *flags, "-o", tmp_path / "out", category="limits",
            needles=(needle, cap[0] if cap else "16384"), guard=(tmp_path, kit.dir))


def test_time_steps_at_the_cap_compile(kit, tmp_path):
    """T = 16384 is accepted (on the cpu target: Loihi 2's 18-bit state cannot hold this T's sums)."""
    out = tmp_path / "out"
    run_cli("compile", kit.model, "--scheme", "rate", "--timesteps", "16384", "--target", "cpu", "-o", out,
            category="limits",
            expect=0, guard=(tmp_path, kit.dir), outputs=(out,))
    assert json.loads((out / "ir.json").read_text())["meta"]["dict"]["options"]["dict"]["timesteps"] == 16384


def _chain_model(path: Path, n: int, op: str) -> Path:
    b = netgen.NetBuilder((4,), 0)
    y = b.gemm(b.qcfs("input", 7, 1.0), 4, 4)
    for _ in range(n):
        y = b.node("Mul", [y, b.const(np.float32(1.0))]) if op == "Mul" else b.node(op, [y])
    onnx.save(b.model(b.gemm(b.qcfs(y, 7, 1.0), 4, 3), 3), path)
    return path


def test_4000_node_chain_compiles_and_matches_the_short_one(tmp_path):
    """A chain of 4000 ops between two layers (each a no-op) compiles, iteratively, to the same
    network as the chain of one."""
    long_ = _chain_model(tmp_path / "long.onnx", 4000, "Mul")
    short = _chain_model(tmp_path / "short.onnx", 1, "Mul")
    run_cli("compile", long_, "-o", tmp_path / "long", category="limits", expect=0, guard=(tmp_path,),
            outputs=(tmp_path / "long",))
    assert cli("compile", short, "-o", tmp_path / "short").code == 0
    assert (tmp_path / "long" / "params.npz").read_bytes() == (tmp_path / "short" / "params.npz").read_bytes()


def test_4000_node_chain_of_unlowerable_ops_is_one_line(tmp_path):
    model = _chain_model(tmp_path / "relu.onnx", 4000, "Relu")
    run_cli("compile", model, "-o", tmp_path / "out", category="limits", needles=("cannot be lowered",),
            guard=(tmp_path,))


def test_shape_inference_allocates_nothing():
    """infer_shapes runs on torch's meta device: the huge intermediate shapes are computed, not held."""
    from neurodeploy.ir import float_graph as fg
    from neurodeploy.ir.float_eval import output_shape
    conv = fg.Conv(np.zeros((2, 1, 3, 3)), np.zeros(2), (1, 1), (1, 1), (1, 1), 1)
    assert output_shape(conv, [(1, 100000, 100000)]) == (2, 100000, 100000)
    assert output_shape(fg.Dense(np.zeros((3, 10 ** 6)), np.zeros(3)), [(10 ** 6,)]) == (3,)
    with pytest.raises(RuntimeError):
        output_shape(conv, [(5, 8, 8)])                 # a misfit still raises, as on the CPU
    record("limits", "meta-shapes")


# -- training --------------------------------------------------------------------------------------

def _spiking_layers():
    from torch import nn
    from neurodeploy.nn import LIF
    return [nn.Conv2d(1, 2, 3, padding=1), LIF(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3)]


def _training_data():
    import torch
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 8, 8, generator=g), torch.arange(8) % 3


def _plain(kind: str):
    from torch import nn
    from neurodeploy.nn import LIF, SpikingSequential
    from neurodeploy.nn.reverb import ReverBNeuron
    if kind == "plain-sequential":
        return nn.Sequential(*_spiking_layers()), "the model"
    if kind == "nested-plain-sequential":
        return SpikingSequential(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), LIF()), nn.Flatten(),
                                 nn.Linear(128, 3)), "module '0'"
    if kind == "plain-sequential-reverb":
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), ReverBNeuron(), nn.Flatten(), nn.Linear(128, 3)), \
            "the model"
    raise AssertionError(kind)


@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
@pytest.mark.parametrize("kind", ["plain-sequential", "nested-plain-sequential", "plain-sequential-reverb"])
def test_plain_sequential_of_spiking_layers_says_use_spiking_sequential(kind, call):
    from neurodeploy.errors import NeurodeployError
    from neurodeploy import train
    model, where = _plain(kind)
    x, y = _training_data()
    with pytest.raises(NeurodeployError) as exc:
        if call == "fit":
            train.fit(model, (x, y), epochs=1, timesteps=2, progress=False)
        elif call == "predict":
            train.predict(model, x, timesteps=2)
        else:
            train.evaluate(model, (x, y), timesteps=2)
    text = exc.value.one_line()
    assert "SpikingSequential" in text and where in text and len(text.splitlines()) == 1, text
    record("training", (kind, call))


def test_spiking_sequential_of_the_same_layers_trains():
    from neurodeploy.nn import SpikingSequential
    from neurodeploy.train import fit
    model = SpikingSequential(*_spiking_layers())
    history = fit(model, _training_data(), epochs=1, timesteps=2, progress=False, measure_memory=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    record("training", "spiking-sequential")
