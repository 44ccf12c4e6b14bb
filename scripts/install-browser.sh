#!/usr/bin/env bash
# Installs Debian's chromium and its chromedriver for the web page's browser test
# (tests/test_web.py), when /usr/bin/chromium is missing. Needs root (or sudo);
# without either it says so and exits 0: the browser test is then skipped.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "install-browser: not root and no sudo: the browser test will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y chromium chromium-driver
