# make repro: set up and run the pipeline.  make test: set up and run the tests.
# make verify: check a reproduction.  make bench, bench-epochs, bench-sweep: the benchmarks.
# All of them install the exactly pinned requirements into .venv first, and the plots
# page's JavaScript into node_modules (package-lock.json).

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# The stages' commands run `python`: make it the virtual environment's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro gallery test test-fast verify bench bench-publish bench-sweep lock clean

setup: $(VENV)/.installed node_modules/.package-lock.json

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --requirement requirements.txt
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

# The stable gallery's version of the example (since 2021: a shuffled train_test_split,
# a smaller MLP) as the DVC experiment "gallery" of the last commit, in a temporary copy:
# the workspace stays as it is. The -S arguments come from pipeline/published.py. Run
# again, it replaces the last commit's "gallery". `dvc exp show` then compares the two
# versions; `dvc exp apply gallery` brings it into the workspace.
gallery: setup
	@if dvc exp list --name-only | grep -qx gallery; then \
	  echo "dvc exp remove gallery  # the last run of it, replaced"; dvc exp remove gallery; \
	fi
	dvc exp run --temp --name gallery $$(python -m pipeline.published overrides gallery)

# Every test, on every core (pytest-xdist; worksteal evens out the long end-to-end ones).
test: setup
	ruff check .
	ruff format --check .
	python -m pytest -n auto --dist worksteal

# The maintainers' loop: everything but the end-to-end runs of DVC, Dask and the browser.
test-fast: setup
	python -m pytest -n auto -m "not slow"

# The outputs against dvc.lock, the DVC cache against its hashes, the published numbers.
verify: setup
	python -m tools.verify

# The train stage on the real data under emulated CPUs that the pinned code paths do not
# cover (arm64, x86-64 without AVX2), checked against the published numbers; it installs
# qemu, an arm64 userland and the pinned arm64 wheels once (platforms/verify-emulated).
# Minutes of emulation per platform: .ci/run runs it, make test does not.
.PHONY: verify-platforms
verify-platforms: setup
	platforms/verify-emulated

# The benchmark's report and logs go to benchmarks/out/ (ignored by git); bench-publish
# also overwrites the committed benchmarks/results.{md,json}. BENCH_ARGS passes options
# through, for example make bench BENCH_ARGS="--repeats 1" for a quick check.
bench: setup
	python -m benchmarks.run $(BENCH_ARGS)

bench-publish: setup
	python -m benchmarks.run --publish $(BENCH_ARGS)

# What recording each epoch (pipeline/epochs.py) costs the fit: plain, weights only, weights
# and scores, round by round in one process; medians and ratios (run make repro first).
.PHONY: bench-epochs
bench-epochs: setup
	python -m benchmarks.epochs $(BENCH_ARGS)

# A sweep of 6 experiments: python -m sweep vs dvc's queue vs sequential dvc exp run,
# reported in benchmarks/out/ (make bench-sweep PUBLISH=--publish updates the committed one).
bench-sweep: setup
	python benchmarks/sweep_bench.py $(PUBLISH)

clean:
	rm -rf $(VENV) node_modules

# Pin requirements.in and everything it pulls in, each with the sha256 of its files, so
# that setup installs those exact bytes or nothing (--require-hashes). pip-compile keeps
# every pin of requirements.txt that still satisfies requirements.in: a new package adds
# its pins without moving others. To move one: make lock LOCK_ARGS="--upgrade-package NAME".
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet pip-tools==7.6.2
	.venv-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.txt $(LOCK_ARGS) requirements.in
	rm -rf .venv-lock
