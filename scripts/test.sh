#!/usr/bin/env bash
# Set up, then run the test suite.  Extra arguments go to pytest (e.g. --runslow, -k lava).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup.sh" | tail -n 1)"
cd "$ROOT"
# headless Chromium for the browser tests of the HTML reports (Debian's package, pinned; no-op if present)
bash "$ROOT/scripts/install_chromium.sh" || echo "test.sh: chromium not installed; the browser tests will skip" >&2
exec "$VENV/bin/python" -m pytest -q "$@"
