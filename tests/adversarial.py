"""What every adversarial case asserts, in one place (tests/test_adversarial_*.py use it).

A hostile or careless user's command must end in one of two ways:
  - refused: exit status 2, exactly one line on stderr (`neurodeploy CMD: error: ...`), no
    traceback, nothing written, no temporary file left, no file of the user's changed;
  - done exactly: exit status 0 (or the status the case names), and again no litter and no
    user file changed except the outputs the command was asked to write.

`run_cli(*argv, category=..., guard=[paths])` runs the command (in-process through
`neurodeploy.cli.main` by default, which is the same code the console script runs, or as a real
subprocess with `subprocess=True`), snapshots every file under `guard` before and after, and
asserts the above.  Each passing call is counted under its category; `summary_line()` (printed
by tests/conftest.py at the end of the session) gives the counts per category.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess as sp
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# category -> set of distinct cases (test id, argv) that passed
_PASSED: dict[str, set] = defaultdict(set)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def record(category: str, case: str | tuple = "") -> None:
    """Count one passing case under `category` (run_cli does this itself)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    _PASSED[category].add((test, case))


def counts() -> dict[str, int]:
    return {c: len(v) for c, v in sorted(_PASSED.items())}


def summary_line() -> str:
    c = counts()
    if not c:
        return ""
    return (f"adversarial cases passed: {sum(c.values())} ("
            + ", ".join(f"{k} {v}" for k, v in c.items()) + ")")


# -- snapshots ------------------------------------------------------------------------------------

def snapshot(*roots) -> dict[str, tuple]:
    """Every entry under the roots: path -> ("dir",) or ("file", size, sha256, mode) or ("link", target)."""
    snap: dict[str, tuple] = {}
    for root in roots:
        root = Path(root)
        if not os.path.lexists(root):
            continue
        stack = [root]
        while stack:
            p = stack.pop()
            if p.is_symlink():
                snap[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                snap[str(p)] = ("dir",)
                stack.extend(sorted(p.iterdir()))
            elif p.is_file():
                data = p.read_bytes()
                snap[str(p)] = ("file", len(data), hashlib.sha256(data).hexdigest(), p.stat().st_mode & 0o7777)
            else:
                snap[str(p)] = ("other",)
    return snap


def _is_litter(path: str) -> bool:
    name = Path(path).name
    return ".tmp" in name or ".old-" in name or name.startswith(".")


def assert_no_changes(before: dict, after: dict, allowed: tuple = ()) -> None:
    """No entry removed or changed and none added, except under the `allowed` paths; never litter."""
    allowed = tuple(str(Path(a)) for a in allowed)

    def ok(p: str) -> bool:
        return any(p == a or p.startswith(a + os.sep) for a in allowed)

    litter = [p for p in after if p not in before and _is_litter(p)]
    assert not litter, f"temporary files left behind: {litter}"
    removed = [p for p in before if p not in after and not ok(p)]
    assert not removed, f"removed: {removed}"
    changed = [p for p in before if p in after and before[p] != after[p] and not ok(p) and before[p] != ("dir",)]
    assert not changed, f"changed: {changed}"
    added = [p for p in after if p not in before and not ok(p)]
    assert not added, f"written although not asked for: {added}"


def assert_one_line_error(res: CliResult, needles=()) -> str:
    """Exit 2, one line on stderr, no traceback; each needle (a str) occurs in that line."""
    err = res.stderr.strip()
    assert res.code == 2, (res.code, res.stdout[-2000:], res.stderr[-4000:])
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert "error" in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


# -- running the command --------------------------------------------------------------------------

def cli(*argv, cwd=None) -> CliResult:
    """`neurodeploy *argv` in this process; stdout/stderr captured, argparse's exits caught.

    Anything else escaping main() is a bug and fails the test with its traceback."""
    from neurodeploy.cli import main
    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exc:       # argparse: usage errors (2), --help/--version (0)
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        os.chdir(old_cwd)
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_subprocess(*argv, cwd=None, env=None, timeout=600, prefix=()) -> CliResult:
    """`python -m neurodeploy *argv` as a real process (start-up, signals, exit codes of the process)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    res = sp.run([*prefix, sys.executable, "-m", "neurodeploy", *map(str, argv)], capture_output=True, text=True,
                 cwd=cwd, env=full_env, timeout=timeout)
    return CliResult(res.returncode, res.stdout, res.stderr)


def run_cli(*argv, category: str, expect: int = 2, needles=(), guard=(), outputs=(), subprocess: bool = False,
            cwd=None, env=None, prefix=()) -> CliResult:
    """Run one adversarial case and assert its outcome (see the module docstring).

    guard: files/folders whose contents must not change (the inputs, the -o target and its folder);
    outputs: with expect 0, the paths the command was asked to write (allowed to appear/change)."""
    before = snapshot(*guard)
    if subprocess or prefix or env:
        res = cli_subprocess(*argv, cwd=cwd, env=env, prefix=prefix)
    else:
        res = cli(*argv, cwd=cwd)
    after = snapshot(*guard)
    if expect == 2:
        assert_one_line_error(res, needles)
        assert_no_changes(before, after)
    else:
        assert res.code == expect, (res.code, res.stdout[-2000:], res.stderr[-4000:])
        assert "Traceback" not in res.stderr, res.stderr
        for n in needles:
            assert n in res.stdout + res.stderr, (n, res.stdout[-2000:], res.stderr[-2000:])
        assert_no_changes(before, after, allowed=outputs)
    record(category, tuple(map(str, argv)))
    return res
