"""README.md is a tested contract: every command block runs, as written and in order, in a fresh clone.

The blocks are README.md's fenced code blocks: ```bash blocks run command by command with `bash`
(each must exit 0), ```python blocks run as programs, ```text blocks are not run.  A block that
cannot run inside the test says so on the line right above it:

    <!-- readme-test: skip: WHY -->

and SKIPPED below lists exactly those blocks, so that skipping cannot spread silently.  The fast
tests check the README's form (every block has a language, every marker sits above a block, no
unfenced command, every `neurodeploy` command line parses); the slow test runs everything.

"A fresh clone": the repository's files (git's tracked and untracked-but-not-ignored ones, as the
working tree has them) copied into a temporary directory, where `neurodeploy` is
`python -m neurodeploy` and `python` this interpreter, both with that copy first on PYTHONPATH
(the shims in bin/), so the commands exercise the code under test and write only into the copy.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

README = ROOT / "README.md"
LANGUAGES = {"bash", "python", "text"}
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<what>[^:]+?)\s*:\s*(?P<why>.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")

# how each block the README marks as skipped begins -> why (the marker's reason must say the same)
SKIPPED = {
    "bash scripts/demo.sh": "the CI runs both",
    "from neurodeploy.nn import BinaryConv2d, ReverBNeuron, SpikingSequential": "examples/deploy_reverb.py",
    "import nir": "`net` is your trained network",
}


@dataclass
class Block:
    lang: str
    line: int               # README line number of the first line of code (1-based)
    code: str
    skip: str | None        # the marker's reason, or None

    @property
    def first(self) -> str:
        return next(l for l in self.code.splitlines() if l.strip())


def readme_blocks(text: str) -> list[Block]:
    """README.md's fenced code blocks, in order, each with the skip marker right above it (if any)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i + 1
        end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"README.md:{i + 1}: code block never closed"
        above = lines[i - 1].strip() if i > 0 else ""
        marker = MARKER.match(above)
        if marker:
            assert marker["what"] == "skip", f"README.md:{i}: unknown readme-test marker '{marker['what']}'"
        blocks.append(Block(m["lang"], start + 1, "\n".join(lines[start:end]) + "\n",
                            marker["why"] if marker else None))
        i = end + 1
    return blocks


def bash_commands(block: Block) -> list[tuple[int, str]]:
    """A bash block's commands: (README line, command), backslash continuations joined, blank and
    comment-only lines dropped."""
    commands: list[tuple[int, str]] = []
    pending, first_line = "", 0
    for k, line in enumerate(block.code.splitlines()):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            first_line = block.line + k
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append((first_line, pending + line))
        pending = ""
    assert not pending, f"README.md:{first_line}: a command ends in a line continuation"
    return commands


BLOCKS = readme_blocks(README.read_text())


def test_every_block_has_a_language_and_only_the_listed_ones_are_skipped():
    untagged = [b.line for b in BLOCKS if b.lang not in LANGUAGES]
    assert untagged == [], f"README.md lines {untagged}: give each block a language ({sorted(LANGUAGES)})"
    skipped = {next((k for k in SKIPPED if b.first.startswith(k)), b.first): b.skip for b in BLOCKS if b.skip}
    assert sorted(skipped) == sorted(SKIPPED), "the README's skip markers changed: update SKIPPED (and say why)"
    for start, why in SKIPPED.items():
        assert why in skipped[start], (start, skipped[start])
    assert sum(b.lang in ("bash", "python") and b.skip is None for b in BLOCKS) >= 9   # the blocks that run, today 9


def test_markers_sit_right_above_a_block_and_commands_are_fenced():
    """A marker anywhere else would skip nothing (or the wrong block); a command in an indented code
    block would never run."""
    lines = README.read_text().splitlines()
    fenced = set()
    inside = False
    for i, line in enumerate(lines):
        if FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            fenced.add(i)
        elif inside:
            fenced.add(i)
    for i, line in enumerate(lines):
        if re.search(r"<!--\s*readme-test", line) and i not in fenced:
            assert MARKER.match(line.strip()) and FENCE.match(lines[i + 1]), f"README.md:{i + 1}: stray marker"
        if i not in fenced and re.match(r"^( {4,}|\t)(neurodeploy|python|bash) ", line):
            raise AssertionError(f"README.md:{i + 1}: a command outside a fenced block: {line.strip()}")


def test_every_neurodeploy_command_in_the_readme_parses():
    """Each `neurodeploy ...` line of a bash block is a valid command line (sub-command, flags, choices),
    checked without running it: the fast half of the contract."""
    from neurodeploy.cli import build_parser
    seen = 0
    for block in BLOCKS:
        if block.lang != "bash" or block.skip:
            continue
        for line, command in bash_commands(block):
            words = shlex.split(command, comments=True)
            if words and words[0] == "neurodeploy":
                try:
                    build_parser().parse_args(words[1:])
                except SystemExit as exc:
                    raise AssertionError(f"README.md:{line}: does not parse: {command}") from exc
                seen += 1
    assert seen >= 21, seen            # today 21


# --- the slow half: run everything in a fresh clone --------------------------------------------------

def _clone(dest: Path) -> None:
    """Copy the working tree's repository files (what a clone holds, with the uncommitted edits)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
        files = [f for f in listed if f and (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):      # not a git checkout (an unpacked archive)
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                 and not {".git", "__pycache__", ".pytest_cache", "demo"} & set(p.relative_to(ROOT).parts)]
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)


def _shim(path: Path, *argv: str) -> None:
    path.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in argv) + ' "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.mark.slow
@pytest.mark.lava
def test_readme_runs_as_written(tmp_path, lava):
    """(Lava: the NetX section runs its exported file in Lava, as a Loihi 2 user would.)"""
    clone, bin_dir = tmp_path / "neurodeploy", tmp_path / "bin"
    clone.mkdir()
    bin_dir.mkdir()
    _clone(clone)
    _shim(bin_dir / "neurodeploy", sys.executable, "-m", "neurodeploy")
    _shim(bin_dir / "python", sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(clone),
           "NEURODEPLOY_DATA": str(os.environ.get("NEURODEPLOY_DATA", ROOT.parent / "shared" / "data"))}
    ran = []
    for block in BLOCKS:
        if block.skip or block.lang == "text":
            continue
        if block.lang == "bash":
            steps = [(line, command, ["bash", "-o", "pipefail", "-c", command]) for line, command in
                     bash_commands(block)]
        else:
            steps = [(block.line, block.first + " ...", [sys.executable, "-"])]
        for line, shown, argv in steps:
            t0 = time.perf_counter()
            res = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=600,
                                 input=block.code if block.lang == "python" else None)
            ran.append(f"{time.perf_counter() - t0:6.1f} s  README.md:{line}  {shown}")
            assert res.returncode == 0, (f"README.md:{line}: exit status {res.returncode}: {shown}\n"
                                         f"--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}")
    print("\n".join(["", "README commands (wall clock, informational):", *ran]))
    # what the commands say they make, made where they say
    for made in ("demo/digits_bitplane/ir.json", "report.html", "compare/compare.md", "sdnn.net", "out_netx/ir.json",
                 "model.pt2", "snn.pt2", "out_snn/ir.json", "out_nir/ir.json", "lif.net", "y_lava.npy"):
        assert (clone / made).exists(), made
