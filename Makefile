# yuedu — common commands. `make demo` and `make test` set everything up first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo

.PHONY: install install-scale demo test test-fast lint format serve bench bench-workers clean system-deps screenshots test-api-deep

# The lock pins the core dependencies and both extras (dev, spark): one install has everything `make test`
# needs. The editable install maps the top-level packages by name, so a new package in
# [tool.setuptools.packages.find] (pyproject.toml) takes a re-run, which the stamp's dependency forces.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
		$(BIN)/python -m pip install -q -r requirements.lock 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(BIN)/python -m pip check >/dev/null
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The optional city-scale extra (SANSA, scikit-sparse, Cornac): scikit-sparse builds against the system
# SuiteSparse, so its headers come from Debian first. Not needed by `make test` or `make demo`.
install-scale: install
	ls /usr/include/suitesparse/cholmod.h >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsuitesparse-dev >/dev/null)
	$(BIN)/python -m pip install -q -r requirements-scale.lock
	$(BIN)/python -m pip check >/dev/null

# System packages from Debian: Chromium for the staff-page browser test (Playwright cannot download
# browsers here), a Java runtime for the Spark engine and PostgreSQL's server binaries for the ledger
# tests on PostgreSQL (they start a throwaway cluster). Skipped when present or when apt is unavailable;
# the tests that need them are then skipped with a reason.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	[ -n "$${YUEDU_TEST_PG_URL:-}" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	fc-list 2>/dev/null | grep -qi "CJK" || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "could not install$$missing: the tests that need them will be skipped"; \
	fi

demo: install
	$(BIN)/yuedu demo --out $(DEMO_DIR)

test: install system-deps
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --timeout 300

# The staff and counter screens at 1400 and 1024 px into docs/screenshots/ (the pictures docs/serving.md links).
screenshots: install system-deps
	YUEDU_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/serving/test_browser.py -k "photographed or workbench_flow"

# Every API operation fuzzed with 300 schemathesis examples (the suite runs 60).
test-api-deep: install
	YUEDU_SCHEMATHESIS_EXAMPLES=300 $(BIN)/python -m pytest -q tests/serving/test_schemathesis.py

test-fast: install
	$(BIN)/python -m pytest -q -x -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

serve: install
	$(BIN)/yuedu serve --demo $(DEMO_DIR)

bench: install
	$(BIN)/yuedu bench

# Throughput of `yuedu serve --workers 1,2` under mixed traffic from wrk (an external load generator).
bench-workers: install
	test -d $(DEMO_DIR)/model || $(BIN)/yuedu demo --out $(DEMO_DIR)
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m benchmarks.workers --data $(DEMO_DIR)/data --model $(DEMO_DIR)/model --out experiments/results/workers.md

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache mlruns
