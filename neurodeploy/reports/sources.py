"""Where a report's numbers come from, as footnotes a reader can follow.

Every chip limit and every energy figure a report prints is a line of a TOML file in `targets/`,
and every such line carries its source in a comment (`targets/loihi2.toml`: `neurons_per_core =
8192  # 1,048,576 neurons / 128 cores (Intel brief via wikichip) [secondary]`).  `toml_citations`
reads those comments back; `Footnotes` numbers the citations a report makes, once each, so that
the Markdown (`[^n]`) and HTML (`<sup>`) renderings point at the same list: the file, the key, the
value and what the file says its source is.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from ..target import TARGETS_DIR

REPO = TARGETS_DIR.parent
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")
_NUMBER = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=\s*([-+]?[\d_.eE+-]+|true|false)\s*(?:#\s?(.*))?$")
_COMMENT = re.compile(r"^\s+#\s?(.*)$")


@lru_cache(maxsize=32)
def toml_citations(path: str) -> dict[str, str]:
    """"section.key" -> what the TOML file says about that number: the comment on its line, continued
    by the indented comment lines right below it, or else the comment block right above it; "" for
    a number the file says nothing about."""
    out: dict[str, str] = {}
    section, last, above = "", None, []
    for line in Path(path).read_text().splitlines():
        m = _SECTION.match(line)
        if m:
            section, last, above = m.group(1).strip(), None, []
            continue
        m = _NUMBER.match(line)
        if m:
            last = f"{section}.{m.group(1)}" if section else m.group(1)
            out[last] = (m.group(3) or "").strip() or " ".join(above)
            above = []
            continue
        m = _COMMENT.match(line)
        if m and last is not None:
            out[last] = f"{out[last]} {m.group(1).strip()}".strip()
            continue
        last = None
        if line.startswith("#") and section:
            above.append(line.lstrip("#").strip())
        elif not line.strip():
            above = []
    return out


def display_path(path: str | Path) -> str:
    """A path as the reader finds it in the repository (targets/...), else as given."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(path)


def target_file(name: str) -> Path | None:
    """The built-in target file of a target name, if there is one."""
    p = TARGETS_DIR / f"{name}.toml"
    return p if p.is_file() else None


def energy_file(name: str) -> Path | None:
    p = TARGETS_DIR / "energy" / f"{name}.toml"
    return p if p.is_file() else None


class Footnotes:
    """Numbered citations: `cite(text)` returns the marker `[^n]` (the same n for the same text)."""

    def __init__(self):
        self.notes: list[str] = []

    def cite(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return f"[^{self.notes.index(text) + 1}]"

    def value(self, file: Path | None, key: str, value, fallback: str) -> str:
        """The marker of a number read from `file` at `key` (section.key): the file, the key, the
        value and the file's comment on it; `fallback` says where it came from when there is no file."""
        if file is None:
            return self.cite(f"{key} = {value}: {fallback}")
        comment = toml_citations(str(file)).get(key, "")
        where = f"`{display_path(file)}`, `{key} = {value}`"
        return self.cite(f"{where}: {comment}" if comment else f"{where} (no source comment in the file)")
