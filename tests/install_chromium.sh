#!/usr/bin/env bash
# A real browser for the console's tests: Debian's `chromium` package, installed when missing
# (as root), driven by Playwright (tests/test_console.py) through its executable_path.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "Chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
