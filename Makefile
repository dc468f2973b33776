# runtime-insights: every target sets up what it needs by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CODE   := runtime_insights exporter extractor fingerprints hostfs tests bench

.PHONY: run test lint bench image system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

## run: one extraction of this machine, printed as a table
run: $(STAMP)
	$(VENV)/bin/runtime-insights extract --format table

## system-deps: containerd, runc and the language runtimes the tests fingerprint (root only)
system-deps:
	@scripts/system-deps.sh

## test: the whole suite; root-only tests run when invoked as root
test: $(STAMP) system-deps
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps
	$(PY) -m bench

image:
	docker build -t runtime-insights:dev .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
