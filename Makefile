# `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DOFBENCH_CACHE ?= $(CURDIR)/.dofbench-cache

.PHONY: install demo test test-slow bench clean fashion-mnist

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job on embedded data: the quick suite (random subspaces) and the quick method
# comparison, the P_s table, then the reports (each prints its path).
demo: $(STAMP)
	$(BIN)/dofbench run quick quick-methods --db demo.duckdb
	$(BIN)/dofbench query --db demo.duckdb "select epsilon, d, n, p_success from success where suite = 'quick' order by epsilon, d"
	@echo "reports (self-contained HTML; Markdown and figures next to them):"
	@$(BIN)/dofbench report quick --db demo.duckdb --out report/quick
	@$(BIN)/dofbench report quick-methods --db demo.duckdb --out report/quick-methods

# The layer contracts and the tests of every layer, about a minute on 2 cores. test-slow runs the few
# slow ones (whole runs in subprocesses, process pools, a Dask cluster, kill -9); CI runs both.
# pytest's exit code 5 (no test collected) is a failure.
PYTEST = $(BIN)/python -m pytest -q -n 2 --dist loadfile -p no:cacheprovider
test: $(STAMP)
	$(BIN)/lint-imports
	$(PYTEST) -m "not slow"; rc=$$?; [ $$rc -ne 5 ] || { echo "no test collected" >&2; exit 1; }; exit $$rc

test-slow: $(STAMP)
	$(PYTEST) -m slow; rc=$$?; [ $$rc -ne 5 ] || { echo "no test collected" >&2; exit 1; }; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m perf

# Fashion-MNIST (60k/10k) offline on Debian/Ubuntu: installs /usr/share/datasets/fashion-mnist/.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
fashion-mnist:
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y dataset-fashion-mnist

clean:
	rm -rf $(VENV) .dofbench-cache demo.duckdb report *.egg-info
