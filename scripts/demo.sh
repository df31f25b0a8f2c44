#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: set up, then compile the digits model in
# models/ to a bit-plane SNN for Loihi 2, simulate it, verify it layer by layer against the
# float model and the quantised ANN, and write its cost report (energy, memory, cores, latency).
# Artifacts go to ./demo/ (or the first argument).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup.sh" | tail -n 1)"
export PATH="$VENV/bin:$PATH"
OUT="${1:-$ROOT/demo}"
cd "$ROOT"
set -x
neurodeploy compile models/digits_qcfs.onnx --target loihi2 --scheme bitplane -o "$OUT/digits_bitplane"
neurodeploy simulate "$OUT/digits_bitplane" --input models/digits_test_x.npy --output "$OUT/digits_logits.npy"
neurodeploy verify "$OUT/digits_bitplane" --model models/digits_qcfs.onnx \
    --input models/digits_test_x.npy --labels models/digits_test_y.npy
neurodeploy report "$OUT/digits_bitplane" --input models/digits_test_x.npy --labels models/digits_test_y.npy \
    --model models/digits_qcfs.onnx --format html -o "$OUT/digits_report.html"
neurodeploy report "$OUT/digits_bitplane" --input models/digits_test_x.npy --labels models/digits_test_y.npy \
    --model models/digits_qcfs.onnx --format md -o "$OUT/digits_report.md"
set +x
echo "demo: wrote $OUT/digits_report.html and $OUT/digits_report.md"
