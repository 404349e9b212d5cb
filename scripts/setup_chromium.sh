#!/usr/bin/env bash
# Debian's Chromium for tests/test_comfyui_browser.py (ComfyUI's editor in a real browser,
# driven by Playwright with executable_path=/usr/bin/chromium; Playwright's own browser
# downloads are never used). Called by scripts/setup_comfyui.sh, so `make test` gets it.
#
# Does nothing when $VIDEOFIX_CHROMIUM (default /usr/bin/chromium) exists. Else installs the
# `chromium` package with apt-get (as root, or through password-less sudo) and fails with a
# one-line hint when it cannot.
set -euo pipefail
CHROMIUM=${VIDEOFIX_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_chromium: $CHROMIUM missing and no apt-get here: install Chromium and set VIDEOFIX_CHROMIUM" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=
elif sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "setup_chromium: $CHROMIUM missing: run 'apt-get install chromium' as root (or set VIDEOFIX_CHROMIUM)" >&2
  exit 1
fi
echo "setup_chromium: installing Debian's chromium with apt-get"
# Wait for another apt/dpkg run rather than failing on its lock.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "setup_chromium: apt-get installed chromium but $CHROMIUM does not exist (set VIDEOFIX_CHROMIUM)" >&2
  exit 1
fi
echo "setup_chromium: $("$CHROMIUM" --version 2>/dev/null | head -1)"
