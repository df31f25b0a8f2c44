#!/usr/bin/env bash
# Set-up, idempotent: a virtual environment with every pinned dependency (requirements*.txt),
# neurodeploy installed into it (editable).  Prints the environment's path on its last line.
# The environment lives in ~/.cache/neurodeploy/venv-<hash of the requirements>, so clones on
# one machine share it and a change of pins builds a new one.  Override with NEURODEPLOY_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
KEY=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-lava.txt" "$ROOT/scripts/setup.sh" | sha256sum | cut -c1-12)
VENV="${NEURODEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/neurodeploy/venv-$KEY}"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
# Run a step quietly; on failure show its output and stop.
quiet() { "$@" >"$LOG" 2>&1 || { cat "$LOG" >&2; echo "neurodeploy setup: failed: $*" >&2; exit 1; }; }
if [ ! -f "$VENV/.complete" ]; then
  echo "neurodeploy setup: creating $VENV (first run only, about a minute)" >&2
  rm -rf "$VENV"
  # environments of older pins are ~6 GB each: keep only the one in use
  [ -n "${NEURODEPLOY_VENV:-}" ] || find "$(dirname "$VENV")" -maxdepth 1 -name 'venv-*' ! -name "$(basename "$VENV")" \
      -exec rm -rf {} + 2>/dev/null || true
  "$PY" -m venv "$VENV"
  quiet "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  quiet "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
  # lava-nc / lava-dl pin Python<3.11, numpy<2 and an old torch: install without their pins.
  quiet "$VENV/bin/python" -m pip install -q --no-deps --ignore-requires-python -r "$ROOT/requirements-lava.txt"
  "$VENV/bin/python" -c "import numpy, torch, onnx, onnxruntime, sklearn, networkx" \
    || { echo "neurodeploy setup: dependency install failed" >&2; exit 1; }
  touch "$VENV/.complete"
fi
quiet "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" -c "import neurodeploy" || { echo "neurodeploy setup: install failed" >&2; exit 1; }
echo "$VENV"
