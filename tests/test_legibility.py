"""The HTML reports are legible: no two labels of a figure overlap, nothing sticks out of a figure or
the window, the contents links land, at two window sizes in headless Chromium; and matplotlib's own
text extents agree.  The compare page: one unit in plot and table, the float reference line in a
style of its own, columns identical in every row said once instead of repeated.

The pages: the digits model's report under bitplane (verdict, no per-step accuracy) and rate (with
the accuracy-vs-time-steps figure), and `compare` over bitplane (exact and lossy) and rate (T = 4, 8,
16, 32: points close together on both fronts, the case where labels used to collide).
"""
import numpy as np
import pytest
from matplotlib.lines import Line2D

import browser
from conftest import MODELS
from neurodeploy.compiler import compile_model
from neurodeploy.reports import compare as cmp
from neurodeploy.reports.build import build_report
from neurodeploy.reports.document import Fig, report_document
from neurodeploy.reports.figures import new_figure, text_overlaps, texts_outside
from neurodeploy.reports.html import render

WINDOWS = [(1280, 900), (760, 900)]
MODEL = MODELS / "digits_qcfs.onnx"


@pytest.fixture(scope="module")
def reports():
    x, y = np.load(MODELS / "digits_test_x.npy")[:120], np.load(MODELS / "digits_test_y.npy")[:120]
    out = {}
    for scheme, options in (("bitplane", {}), ("rate", {"timesteps": 16})):
        net = compile_model(MODEL, "loihi2", scheme, options)
        out[scheme] = report_document(build_report(net, x, labels=y, model=MODEL, batch_size=64))
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    x, y = np.load(MODELS / "digits_test_x.npy")[:120], np.load(MODELS / "digits_test_y.npy")[:120]
    out = tmp_path_factory.mktemp("cmp")
    return cmp.run_compare(str(MODEL), "loihi2", x, y, ["bitplane", "rate"], str(out),
                           sweeps={"rate": [4, 8, 16, 32], "bitplane": [3]})


def _figures(reports, compared):
    figs = [(f"{name}:{b.ident}", b.figure) for name, doc in reports.items()
            for s in doc.sections for b in s.blocks if isinstance(b, Fig) and b.figure is not None]
    figs += [("compare:latency", cmp.front(compared, "latency_steps")), ("compare:energy", cmp.front(compared, "energy"))]
    return figs


def test_matplotlib_text_extents_do_not_overlap(reports, compared):
    figs = _figures(reports, compared)
    idents = {i for i, _ in figs}
    assert {"rate:fig-accuracy-steps", "bitplane:fig-headroom", "rate:fig-headroom", "bitplane:fig-energy"} <= idents
    assert "bitplane:fig-accuracy-steps" not in idents          # a bitplane readout has no per-step value
    for ident, fig in figs:
        assert text_overlaps(fig) == [], ident
        assert texts_outside(fig) == [], ident


def test_the_overlap_checks_can_fail():
    fig = new_figure(4, 3)
    ax = fig.subplots()
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    ax.text(1.5, 0.5, "far outside the figure")
    assert ("first label", "second label") in text_overlaps(fig)
    assert "far outside the figure" in texts_outside(fig)


def test_browser_measures_overlaps():
    """The in-browser measurement does catch two labels drawn on top of each other."""
    page = ("<!DOCTYPE html><html><body><figure id='f'><svg viewBox='0 0 200 100' width='200' height='100'>"
            "<text x='10' y='50' font-size='14'>first label</text><text x='20' y='52' font-size='14'>second</text>"
            "<text x='190' y='50' font-size='14'>clipped</text></svg></figure><a href='#nowhere'>x</a></body></html>")
    got = browser.layout(page, 800)
    (f,) = got["figures"]
    assert ["first label", "second"] in f["overlaps"] and "clipped" in f["outside"]
    assert got["missingAnchors"] == ["nowhere"]


@pytest.mark.parametrize("width,height", WINDOWS)
def test_pages_in_chromium(reports, compared, width, height):
    pages = {name: render(doc) for name, doc in reports.items()}
    pages["compare"] = cmp.to_html(compared)
    expected = {"bitplane": {"fig-spikes", "fig-headroom", "fig-energy", "fig-memory", "fig-ops"},
                "rate": {"fig-spikes", "fig-headroom", "fig-accuracy-steps", "fig-energy", "fig-memory", "fig-ops"},
                "compare": {"fig-latency", "fig-energy"}}
    for name, page in pages.items():
        got = browser.layout(page, width, height)
        where = f"{name} at {width}px ({browser.version()})"
        assert got["width"] == width, where
        assert {f["id"] for f in got["figures"]} == expected[name], where
        for f in got["figures"]:
            assert f["texts"] >= 5 and f["overlaps"] == [] and f["outside"] == [], (where, f)
            assert 200 < f["width"] <= width, (where, f)
        # nothing widens the page beyond the window (wide tables scroll in their own box)
        assert got["scrollWidth"] <= width, where
        assert got["missingAnchors"] == [], where
        g = browser.screenshot(page, width, height)
        assert g.shape == (height, width)
        assert (g < 200).mean() > 0.02 and g.std() > 20, f"blank screenshot: {where}"


def test_compare_one_unit_own_reference_style_and_no_repeated_columns(compared):
    heads, rows, same = cmp.table(compared)
    scale, unit = cmp.energy_unit(compared)
    (energy_head,) = [h for h in heads if h.startswith("energy")]
    assert f"({unit}," in energy_head
    fig = cmp.front(compared, "energy")
    ax = fig.axes[0]
    assert f"({unit}," in ax.get_xlabel()
    # the plotted x values are the table's numbers in the same unit
    col = heads.index(energy_head)
    table_values = sorted(float(r[col].replace(",", "")) for r in rows)
    plotted = sorted(float(x) for line in ax.get_lines() if line.get_label() in {"bitplane", "rate"}
                     for x in line.get_xdata())
    np.testing.assert_allclose(plotted, table_values, rtol=5e-3)     # the table rounds to 3 significant digits
    # the float ANN line: black, dotted, no markers; no scheme line shares its colour or style
    lines = {l.get_label(): l for l in ax.get_lines() if isinstance(l, Line2D)}
    ref = next(l for k, l in lines.items() if k.startswith("float ANN"))
    assert ref.get_color() == "#000000" and ref.get_linestyle() == ":" and ref.get_marker() in ("None", "", None)
    for k in ("bitplane", "rate"):
        assert lines[k].get_color() != ref.get_color() and lines[k].get_linestyle() != ":"
    # memory and cores are the same in every configuration here: said once, not a column
    assert {h.split(" (")[0] for h, _ in same} >= {"synaptic memory", "cores"}
    assert not any(h.startswith("synaptic memory") or h == "cores" for h in heads)
    assert "Same in every configuration: synaptic memory" in cmp.to_markdown(compared)
    assert "Same in every configuration" in cmp.to_html(compared)
