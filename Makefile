# runtime-insights: every target sets up what it needs by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CODE   := runtime_insights exporter extractor fingerprints hostfs tests bench scripts

VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
IMAGE_NAME    ?= runtime-insights
IMAGE_ARCHIVE ?= build/runtime-insights-$(VERSION).oci.tar

.PHONY: run test lint bench image image-deps system-deps clean

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

## image-deps: mmdebstrap, umoci and skopeo from the distribution (root only)
image-deps:
	@scripts/system-deps.sh scripts/image-packages.txt

## image: the OCI archive $(IMAGE_ARCHIVE), built without a daemon or a base image
## (root only); PUSH=registry/name:tag also pushes it there with skopeo
image:
	IMAGE_NAME=$(IMAGE_NAME) PUSH=$(PUSH) scripts/build-image.sh $(IMAGE_ARCHIVE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
