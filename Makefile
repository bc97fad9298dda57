# make repro: set up and run the pipeline.  make test: set up and run the tests.
# Both install the exactly pinned requirements into .venv first, and the plots page's
# JavaScript into node_modules (package-lock.json).

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# The stages' commands run `python`: make it the virtual environment's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test verify bench bench-publish lock clean

setup: $(VENV)/.installed node_modules/.package-lock.json

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --requirement requirements.txt
	$(BIN)/python -m pip check
	touch $@

# Vega, Vega-Lite and Vega-Embed, pinned with their hashes in package-lock.json, for the
# page of `dvc plots show` (.dvc/plots/page.html). npm writes the stamp itself. Without
# npm, the pipeline and the tests still work; the page shows a note instead of each chart.
node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "npm ci --ignore-scripts --no-audit --no-fund"; npm ci --ignore-scripts --no-audit --no-fund; \
	else \
	  echo "warning: npm not found: dvc plots show will write a page without its charts." \
	    "Install Node.js with npm, then run make setup again." >&2; \
	fi

repro: setup
	dvc repro

test: setup
	ruff check .
	ruff format --check .
	python -m pytest

# The outputs against dvc.lock, the DVC cache against its hashes, the published numbers.
verify: setup
	python -m stages.verify

# The benchmark's report and logs go to benchmarks/out/ (ignored by git); bench-publish
# also overwrites the committed benchmarks/results.{md,json}.
bench: setup
	python benchmarks/run.py

bench-publish: setup
	python benchmarks/run.py --publish

clean:
	rm -rf $(VENV) node_modules

# Re-resolve requirements.in into a fresh environment and pin the result.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --requirement requirements.in
	{ echo "# Every package, transitive ones included, at the exact version that produced dvc.lock."; \
	  echo "# Generated from requirements.in by \`make lock\` (Python 3.11); do not edit by hand."; \
	  .venv-lock/bin/python -m pip freeze --all --exclude pip --exclude setuptools; } > requirements.txt
	rm -rf .venv-lock
