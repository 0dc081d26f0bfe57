# fpipe — every target creates its own environment on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
FPIPE  := $(VENV)/bin/fpipe
STAMP  := $(VENV)/.installed
# Feast (opt-in, `make bench-feast` only): its own venv, never a dependency of fpipe or of `make test`
FEAST_PYTHON  ?= python3.11
FEAST_VERSION ?= 0.67.0
FEAST_VENV    := .venv-feast
FEAST_STAMP   := $(FEAST_VENV)/.installed

.PHONY: help venv demo test test-fast lint bench bench-feast skew-report train clean sample-data

help:
	@echo "make demo         create .venv, install, run the whole pipeline on sample_data/"
	@echo "make test         create .venv, install, lint, run every test"
	@echo "make lint         ruff + mypy"
	@echo "make bench        benchmark harness (S and M sizes), writes docs/benchmarks.md"
	@echo "make bench-feast  fpipe beside Feast's offline join (own venv .venv-feast), writes docs/feast.md"
	@echo "make skew-report  skew report of the sample serving log"
	@echo "make train        train the sample models"

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m compileall -q cli  # bytecode, as a wheel install writes it (PYTHONDONTWRITEBYTECODE would skip it)
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check cli tests bench scripts
	$(VENV)/bin/mypy

# one pytest worker per CPU (pytest-xdist); worksteal: the few long oracle properties do not queue behind each other
TEST_WORKERS ?= auto

test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow"

demo: $(STAMP)
	bash scripts/demo.sh

skew-report: $(STAMP)
	$(PY) scripts/simulate_serving.py
	$(FPIPE) skew-report fraud_v1 --format html --out out/skew-report.html --samples-out out/skew-mismatches.parquet || test $$? -eq 1
	$(FPIPE) skew-report fraud_v1 || test $$? -eq 1   # exit 1 = skew found (the simulator injects faults)

train: $(STAMP)
	$(FPIPE) --defs feature_defs train flights_delay_xgb

bench: $(STAMP)
	$(PY) -m bench.run --sizes S,M

$(FEAST_STAMP):
	test -d $(FEAST_VENV) || $(FEAST_PYTHON) -m venv $(FEAST_VENV)
	echo '*' > $(FEAST_VENV)/.gitignore
	$(FEAST_VENV)/bin/python -m pip install --quiet --upgrade pip
	start=$$(date +%s); $(FEAST_VENV)/bin/python -m pip install --quiet 'feast[duckdb]==$(FEAST_VERSION)' 'polars>=2.1,<2.2' 'pyarrow>=18,<27' \
	  && echo $$(( $$(date +%s) - start )) > $(FEAST_VENV)/.install-seconds
	touch $(FEAST_STAMP)

bench-feast: $(STAMP) $(FEAST_STAMP)
	$(PY) -m bench.feast_run --sizes T,S,M

clean:
	rm -rf $(VENV) $(FEAST_VENV) out models .pytest_cache .mypy_cache .ruff_cache
