# runtime-insights: every target sets up what it needs by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
PIP    := $(PY) -m pip --disable-pip-version-check
CODE   := runtime_insights exporter extractor fingerprints hostfs tests bench scripts demo

VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
IMAGE_NAME    ?= runtime-insights
IMAGE_ARCHIVE ?= build/runtime-insights-$(VERSION).oci.tar

.PHONY: run test lint bench bench-smoke peer-deps demo demo-deps image image-deps system-deps clean

$(PY):
	@echo "==> creating $(VENV), a Python virtual environment for the project"
	$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip

# make run needs only what the product imports; make test adds the test and lint tools
$(RUN_STAMP): pyproject.toml | $(PY)
	@echo "==> installing runtime-insights and its runtime dependencies into $(VENV)"
	$(PIP) install --progress-bar on -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(PY)
	@echo "==> installing runtime-insights with its test and lint tools into $(VENV)"
	$(PIP) install -q -e '.[test]'
	@touch $(STAMP) $(RUN_STAMP)

## run: the node agent on this machine (extractor + exporter on 127.0.0.1:8080, no
## Kubernetes, usage events in .run/events.jsonl); RUN_ARGS=... passes options
run: $(RUN_STAMP)
	@echo "==> starting runtime-insights node $(RUN_ARGS) (Ctrl-C stops it)"
	@$(VENV)/bin/runtime-insights node --state-dir .run $(RUN_ARGS)

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

## bench: every benchmark, full rounds (figures in bench/README.md)
bench: $(STAMP) system-deps peer-deps
	$(PY) -m bench

## bench-smoke: every benchmark once, a few rounds (CI: a broken bench fails it)
bench-smoke: $(STAMP) system-deps peer-deps
	$(PY) -m bench --smoke

## peer-deps: netdata and PCP, the peers bench/bench_peers.py measures, installed with
## their services left stopped and disabled (root only)
peer-deps:
	@scripts/peer-deps.sh

## demo-deps: containerd, runc, busybox and the sample workloads' runtimes (root only)
demo-deps:
	@scripts/system-deps.sh scripts/demo-packages.txt

## demo: the whole system on this machine in under two minutes (root): a private
## containerd with sample workloads, the extractor, the exporter with a fake API server,
## usage events to .demo/events.jsonl; prints the answers and the events, checks them
demo: $(RUN_STAMP) demo-deps
	@$(PY) -m demo

## image-deps: mmdebstrap, umoci and skopeo from the distribution (root only)
image-deps:
	@scripts/system-deps.sh scripts/image-packages.txt

## image: the OCI archive $(IMAGE_ARCHIVE), built without a daemon or a base image
## (root only); PUSH=registry/name:tag also pushes it there with skopeo
image:
	IMAGE_NAME=$(IMAGE_NAME) PUSH=$(PUSH) scripts/build-image.sh $(IMAGE_ARCHIVE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build .run .demo
