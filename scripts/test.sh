#!/usr/bin/env bash
# Set up, then run the test suite.  Extra arguments go to pytest (e.g. --runslow, -k lava).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup.sh" | tail -n 1)"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q "$@"
