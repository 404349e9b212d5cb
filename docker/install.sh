#!/bin/sh
# The image's install commands (docker/Dockerfile runs them; tests/test_docker_install.py runs
# the same in a fresh venv). Every package comes from videofix's own metadata, pyproject.toml:
# nothing is named or pinned here.
#   install.sh torch     torch and torchvision, bounded as pyproject.toml bounds them, from
#                        $TORCH_INDEX (PyTorch's wheels for the image's CUDA)
#   install.sh package   videofix from the current folder with its extras $VIDEOFIX_EXTRAS;
#                        torch is already there, so pip keeps it
# Run in the folder that holds pyproject.toml; $PYTHON (default python) is the target.
set -eu
PYTHON=${PYTHON:-python}
case "${1:-}" in
torch)
    specs=$("$PYTHON" -c '
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if re.match(r"(torch|torchvision)\s*([<>=!~;\[]|$)", d)))
')
    [ -n "$specs" ] || { echo "install.sh: pyproject.toml names no torch" >&2; exit 1; }
    # shellcheck disable=SC2086  # one word per requirement
    "$PYTHON" -m pip install --index-url "${TORCH_INDEX:?set TORCH_INDEX}" $specs
    ;;
package)
    "$PYTHON" -m pip install ".[${VIDEOFIX_EXTRAS:?set VIDEOFIX_EXTRAS}]"
    ;;
*)
    echo "usage: install.sh torch|package" >&2
    exit 2
    ;;
esac
