# The two commands of the README:  `make demo`  and  `make test`.
VENV := .venv
PY := $(VENV)/bin/python
export RAY_AUTH_MODE := disabled

.PHONY: setup demo test bench
setup:
	@./scripts/bootstrap.sh

demo: setup
	@$(PY) scripts/demo.py

test: setup
	@$(PY) -m pytest -q tests

bench: setup
	@$(PY) bench/run_all.py
