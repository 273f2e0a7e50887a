# `make run` and `make test` set up everything on a fresh machine: a .venv with the CPU
# build of torch first (so the project's torch range is already satisfied), then whybox
# with its optional Ray support (the tests start a local cluster), then the example plugin
# (examples/whybox-example-plugin), which the tests run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint

EXAMPLE := examples/whybox-example-plugin

$(STAMP): pyproject.toml Makefile $(EXAMPLE)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	$(BIN)/python -m pip install --quiet --no-deps -e $(EXAMPLE)
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/whybox dashboard

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
