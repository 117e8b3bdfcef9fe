# Two commands do all the set-up on a fresh machine:
#   make serve   create .venv, install headend, serve the bundled agent on 127.0.0.1:8080
#   make test    the same set-up plus dev tools, PostgreSQL, Redis and tinyproxy (Debian's
#                packages, for the store, limits and egress proxy tests), the real clients
#                the suite drives (Codex CLI, Claude Code, the AI SDK, from the npm registry),
#                then lint, type-check and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python builds from source. A native build crashed in decode on these machines;
# these flags build a portable AVX2 library. pip keeps the built wheel in its cache, so only
# the first install pays the build (7-10 minutes on 2 cores).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint typecheck pytest services clients bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/headend serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

services:
	scripts/services.sh

clients:
	scripts/clients.sh

pytest: $(VENV)/.installed-dev services clients
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/local_stream.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/clients/node_modules
