"""The report as Markdown (`neurodeploy report --format md`): the same document as the HTML page
(`document.report_document`), GitHub-flavoured: a linked table of contents, pipe tables, footnotes
([^n]) for the sources.  Figures are HTML only; their numbers are in the tables beside them."""
from __future__ import annotations

from .document import Document, Fig, Items, Para, Table, report_document


def md_table(headers: list, rows: list) -> list[str]:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return out


def _block(b) -> list[str]:
    if isinstance(b, Para):
        if b.kind.startswith("verdict") or b.kind == "statement":
            return ["> " + b.text, ""]
        return [f"*{b.text}*" if b.kind == "note" and "*" not in b.text else b.text, ""]
    if isinstance(b, Table):
        return md_table(b.headers, b.rows) + [""]
    if isinstance(b, Items):
        return [f"- {i}" for i in b.items] + [""]
    if isinstance(b, Fig):
        return []
    raise TypeError(type(b).__name__)


def render(doc: Document) -> str:
    lines = [f"# {doc.title}", "", doc.meta, "", "**Contents**", ""]
    for s in doc.sections:
        lines.append(f"{'  ' * (s.level - 2)}- [{s.title}](#{s.slug})")
    lines += ["- [Sources](#sources)", ""]
    for s in doc.sections:
        lines += [f"{'#' * s.level} {s.title}", ""]
        for b in s.blocks:
            lines += _block(b)
    lines += ["## Sources", ""]
    lines += [f"[^{i}]: {t}" for i, t in enumerate(doc.footnotes, 1)] or ["No number of this report cites a file."]
    return "\n".join(lines).rstrip() + "\n"


def to_markdown(d: dict) -> str:
    return render(report_document(d))
