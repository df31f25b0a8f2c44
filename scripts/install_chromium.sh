#!/usr/bin/env bash
# Install headless Chromium (Debian's package) for the HTML report test (tests/test_reports.py).
# Idempotent: does nothing when a chromium binary is already on PATH.  Needs root (or sudo) and
# apt-get; exits 0 with a message when neither is available, so set-up scripts can always call it
# (the test then skips with that reason).
set -euo pipefail
for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then echo "install_chromium: $b already installed" >&2; exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get here; install chromium by hand to run the HTML report test" >&2; exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_chromium: not root and no sudo; install chromium by hand to run the HTML report test" >&2; exit 0
  fi
fi
echo "install_chromium: apt-get install chromium (about a minute)" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 && echo "install_chromium: installed $(chromium --version 2>/dev/null)" >&2
