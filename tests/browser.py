"""Headless Chromium for the HTML report tests: find it, lay a page out at a window size, measure it.

`layout(page, width)` loads a copy of the page with a measuring script appended (the product's pages
carry no test code) and returns what the browser laid out: for every figure's inline SVG, its size, its
<text> elements' boxes that intersect (by getBoundingClientRect, i.e. with the browser's own fonts)
or stick out of the figure; the page's scroll width against the window; in-page links without a
target.  `screenshot(page, width, height)` returns the rendered pixels.  Chromium comes from Debian's
package (scripts/install_chromium.sh pins it); tests skip only when no binary is installed.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

MEASURE = """
<script>
window.addEventListener('load', function () {
  function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  function meet(a, b) {
    return Math.min(a[2], b[2]) - Math.max(a[0], b[0]) > 0.5 && Math.min(a[3], b[3]) - Math.max(a[1], b[1]) > 0.5;
  }
  var out = {width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, figures: [],
             missingAnchors: [], tables: document.querySelectorAll('table').length};
  document.querySelectorAll('figure svg').forEach(function (svg) {
    var frame = box(svg);
    var texts = Array.prototype.slice.call(svg.querySelectorAll('text')).filter(function (t) {
      return t.textContent.trim() && getComputedStyle(t).visibility !== 'hidden' && t.getBBox().width > 0; });
    var boxes = texts.map(box), overlaps = [], outside = [];
    for (var i = 0; i < texts.length; i++) {
      for (var j = i + 1; j < texts.length; j++) {
        if (meet(boxes[i], boxes[j])) overlaps.push([texts[i].textContent, texts[j].textContent]);
      }
      var b = boxes[i];
      if (b[0] < frame[0] - 1 || b[2] > frame[2] + 1 || b[1] < frame[1] - 1 || b[3] > frame[3] + 1)
        outside.push(texts[i].textContent);
    }
    out.figures.push({id: svg.closest('figure').id, width: frame[2] - frame[0], height: frame[3] - frame[1],
                      texts: texts.length, overlaps: overlaps, outside: outside});
  });
  document.querySelectorAll('a[href^="#"]').forEach(function (a) {
    var id = decodeURIComponent(a.getAttribute('href').slice(1));
    if (!document.getElementById(id)) out.missingAnchors.push(id);
  });
  document.body.setAttribute('data-layout', JSON.stringify(out));
});
</script>
"""


def chromium() -> str:
    """The Chromium binary (NEURODEPLOY_CHROMIUM, else chromium / chromium-browser on PATH); the test
    is skipped when there is none."""
    for b in (os.environ.get("NEURODEPLOY_CHROMIUM"), "chromium", "chromium-browser"):
        if b and shutil.which(b):
            return shutil.which(b)
    pytest.skip("no chromium installed (scripts/install_chromium.sh installs Debian's package)")


def version() -> str:
    return subprocess.run([chromium(), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()


def _run(*args, timeout=180) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=5000"]
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *flags, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def layout(page: str, width: int, height: int = 1000) -> dict:
    """What Chromium laid out for `page` (HTML text) in a window `width` x `height` CSS px."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(page.replace("</body>", MEASURE + "</body>"))
        r = _run(f"--window-size={width},{height}", "--dump-dom", path.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"data-layout=\"([^\"]*)\"", r.stdout)
    assert m, f"the measuring script did not run ({version()}): {r.stderr[-1000:]}"
    import html
    return json.loads(html.unescape(m.group(1)))


def screenshot(page: str, width: int, height: int) -> np.ndarray:
    """The page rendered in a `width` x `height` window, as grey levels (height, width)."""
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        path, shot = Path(tmp) / "page.html", Path(tmp) / "shot.png"
        path.write_text(page)
        r = _run(f"--screenshot={shot}", f"--window-size={width},{height}", path.as_uri())
        assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
        return np.asarray(Image.open(shot).convert("L"))
