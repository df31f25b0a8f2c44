"""The report as one self-contained HTML page (`neurodeploy report --format html`), and the HTML pieces
`compare` shares (CSS, tables, figures, inline text).

Figures are inline SVG written by matplotlib with their text kept as text (`svg.fonttype: none`), so
the page needs no other file and no network, stays sharp at any window size, and a browser can
measure every label (tests/test_legibility.py checks in headless Chromium that no two overlap).
Wide tables scroll inside their own box instead of widening the page.
"""
from __future__ import annotations

import html
import io
import re

import matplotlib
from matplotlib.figure import Figure

from .document import Document, Fig, Items, Para, Section, Table, report_document

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       color: #1b1b1b; background: #fff; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
h3 { margin-top: 1.3em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f0f3f7; } td.num { text-align: right; white-space: nowrap; }
.statement { background: #fff6e0; border-left: 4px solid #e0a000; padding: .6em 1em; }
.verdict-exact { background: #e8f6ec; border-left: 6px solid #2f855a; padding: .7em 1em; font-size: 1.05em; }
.verdict-not-exact { background: #fdecec; border-left: 6px solid #c53030; padding: .7em 1em; font-size: 1.05em; }
.verdict-approximate { background: #eef3fb; border-left: 6px solid #2b6cb0; padding: .7em 1em; font-size: 1.05em; }
.note { color: #555; font-size: .9em; }
nav.toc { background: #f7f7f7; border: 1px solid #ddd; padding: .4em 1.2em; display: inline-block; }
nav.toc ul { margin: .3em 0; padding-left: 1.2em; list-style: none; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #444; font-size: .9em; }
code { background: #f3f3f3; padding: 0 .2em; }
sup a { text-decoration: none; }
ol.sources li { margin-bottom: .3em; font-size: .9em; }
"""

NUMERIC = re.compile(r"^[-+]?[\d,.]+(\s?(%|pp))?(\s*[(/].*)?$")
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*|\[\^(\d+)\]")


def inline(text: str) -> str:
    """Escape `text` for HTML, turning `code`, **bold** and footnote markers [^n] into markup."""
    out, pos = [], 0
    for m in _INLINE.finditer(str(text)):
        out.append(html.escape(text[pos:m.start()]))
        code, bold, note = m.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline(bold)}</strong>")
        else:
            out.append(f'<sup><a href="#source-{note}">[{note}]</a></sup>')
        pos = m.end()
    out.append(html.escape(str(text)[pos:]))
    return "".join(out)


def html_table(headers, rows) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='num'>{inline(v)}</td>" if NUMERIC.match(str(v))
                                    else f"<td>{inline(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def svg(fig: Figure, ident: str) -> str:
    """The figure as inline SVG markup: text as text, deterministic, ids prefixed with `ident` (several
    SVGs share one page)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "neurodeploy"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    width_pt = float(re.search(r'width="([\d.]+)pt"', text).group(1))
    text = re.sub(r'\s(width|height)="[\d.]+pt"', "", text, count=2)
    # as wide as the window allows, never wider than drawn (1 pt = 4/3 CSS px)
    text = text.replace("<svg ", f'<svg style="max-width: {width_pt * 4 / 3:.0f}px" ', 1)
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{ident}-{m.group(1)}"', text)
    text = re.sub(r'(url\(#|href="#)([^")]+)', lambda m: f"{m.group(1)}{ident}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(ident)}" ', 1)


def html_figure(fig: Figure | None, ident: str, caption: str) -> str:
    if fig is None:
        return ""
    return f'<figure id="{ident}">{svg(fig, ident)}<figcaption>{inline(caption)}</figcaption></figure>'


def page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(p for p in body if p) + "\n</body></html>\n")


def _block(b) -> str:
    if isinstance(b, Para):
        cls = f" class='{b.kind}'" if b.kind else ""
        return f"<p{cls}>{inline(b.text)}</p>"
    if isinstance(b, Table):
        return html_table(b.headers, b.rows)
    if isinstance(b, Fig):
        return html_figure(b.figure, b.ident, b.caption)
    if isinstance(b, Items):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>"
    raise TypeError(type(b).__name__)


def _toc(sections: list[Section]) -> str:
    """Contents: the numbered sections, their subsections nested under them."""
    groups: list[tuple[Section, list]] = []
    for s in sections:
        if s.level > 2 and groups:
            groups[-1][1].append(s)
        else:
            groups.append((s, []))

    def link(s: Section) -> str:
        return f"<a href='#{s.slug}'>{html.escape(s.title)}</a>"
    items = "".join(f"<li>{link(top)}" + ("<ul>" + "".join(f"<li>{link(c)}</li>" for c in subs) + "</ul>" if subs else "")
                    + "</li>" for top, subs in groups)
    return (f"<nav class='toc' aria-label='Contents'><strong>Contents</strong><ul>{items}"
            "<li><a href='#sources'>Sources</a></li></ul></nav>")


def render(doc: Document) -> str:
    body = [f"<h1>{html.escape(doc.title)}</h1>", f"<p class='note'>{inline(doc.meta)}</p>", _toc(doc.sections)]
    for s in doc.sections:
        body.append(f"<h{s.level} id='{s.slug}'>{html.escape(s.title)}</h{s.level}>")
        body += [_block(b) for b in s.blocks]
    body.append("<h2 id='sources'>Sources</h2>")
    if doc.footnotes:
        body.append("<ol class='sources'>" + "".join(f"<li id='source-{i}'>{inline(t)}</li>"
                                                    for i, t in enumerate(doc.footnotes, 1)) + "</ol>")
    else:
        body.append("<p class='note'>No number of this report cites a file.</p>")
    return page(doc.title, body)


def to_html(d: dict) -> str:
    return render(report_document(d))
