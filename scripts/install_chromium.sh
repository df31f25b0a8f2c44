#!/usr/bin/env bash
# Install headless Chromium (Debian's package) for the browser tests of the HTML reports
# (tests/test_reports.py, tests/test_legibility.py).  Pinned to the version the tests were checked with
# (CHROMIUM_VERSION, Debian bookworm-security); Debian's archive keeps only the newest security build, so
# when the pinned one is gone the archive's current one is installed and a warning says so (the tests
# print the version they ran).  Idempotent: does nothing when a chromium binary is already on PATH.  Needs
# root (or sudo) and apt-get; exits 0 with a message when neither is available, so set-up scripts can
# always call it (the browser tests then skip with that reason).
set -euo pipefail
CHROMIUM_VERSION="${CHROMIUM_VERSION:-156.0.8078.129-1~deb12u1}"
for b in chromium chromium-browser; do
  if command -v "$b" >/dev/null 2>&1; then echo "install_chromium: $b already installed ($("$b" --version 2>/dev/null))" >&2; exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get here; install chromium by hand to run the browser tests" >&2; exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install_chromium: not root and no sudo; install chromium by hand to run the browser tests" >&2; exit 0
  fi
fi
echo "install_chromium: apt-get install chromium=$CHROMIUM_VERSION (about a minute)" >&2
$SUDO apt-get update -qq >/dev/null
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends "chromium=$CHROMIUM_VERSION" "chromium-common=$CHROMIUM_VERSION" \
     fonts-dejavu-core >/dev/null 2>&1; then
  echo "install_chromium: WARNING: chromium $CHROMIUM_VERSION is no longer in the archive; installing its current one" >&2
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
command -v chromium >/dev/null 2>&1 && echo "install_chromium: installed $(chromium --version 2>/dev/null)" >&2
