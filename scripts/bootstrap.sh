#!/usr/bin/env bash
# Create .venv (Python 3.12) and install videofix with everything the tests need.
# Idempotent: re-installs only when pyproject.toml or scripts/test-constraints.txt changed.
# The tests run with the torch of scripts/test-constraints.txt (the package admits any >= 2.7).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VIDEOFIX_PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "bootstrap: Python 3.12 not found (set VIDEOFIX_PYTHON=/path/to/python3.12)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.videofix-installed
want=$(cat pyproject.toml scripts/test-constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing videofix[test] into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/test-constraints.txt -e ".[test]"
  echo "$want" > "$stamp"
fi
