# make repro: set up and run the pipeline.  make test: set up and run the tests.
# make bench, make bench-sweep: the benchmarks (benchmarks/).
# All of them install the exactly pinned requirements into .venv first.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# The stages' commands run `python`: make it the virtual environment's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench bench-sweep lock clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --requirement requirements.txt
	$(BIN)/python -m pip check
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest

bench: setup
	python benchmarks/run.py

# A sweep of 6 experiments: python -m sweep vs dvc's queue vs sequential dvc exp run.
bench-sweep: setup
	python benchmarks/sweep_bench.py

clean:
	rm -rf $(VENV)

# Re-resolve requirements.in into a fresh environment and pin the result.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --requirement requirements.in
	{ echo "# Every package, transitive ones included, at the exact version that produced dvc.lock."; \
	  echo "# Generated from requirements.in by \`make lock\` (Python 3.11); do not edit by hand."; \
	  .venv-lock/bin/python -m pip freeze --all --exclude pip --exclude setuptools; } > requirements.txt
	rm -rf .venv-lock
