# The only place that knows how to set up a machine from nothing.
#
#   make run    set up what is missing, then explain and fix the failing test of examples/buggy_inventory
#   make test   set up what is missing (plus dev and train extras), then lint and run the test suite
#   make lint   ruff and mypy alone (the quick loop; configured in pyproject.toml)
#
# Idempotent: built wheels and model weights live in a per-user cache outside the repo
# ($LEDEX_CACHE_DIR, default ~/.cache/ledex), so a second run, or a fresh clone, rebuilds nothing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
CACHE ?= $(or $(LEDEX_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ledex)
export LEDEX_CACHE_DIR := $(CACHE)

PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

# llama-cpp-python has no wheel on the index. A native build (-march=native) crashes here, and
# pip's wheel cache ignores CMAKE_ARGS, so we build once with these flags and keep the wheel.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_WHEELS := $(CACHE)/wheels/llama-cpp-python-$(LLAMA_VERSION)-native-off
# Models `make run` and `make test` need (`ledex model list` shows them all); the 0.5B is the
# base the trainer fine-tunes and benchmarks compare with.
RUN_MODELS := 1.5b
TEST_MODELS := 1.5b 0.5b smollm2-135m
APT_PACKAGES := bubblewrap neovim
# The VS Code extension's end-to-end test: Debian's chromium (no browser downloads work here), and
# what code-server's native modules build with (editor-clients/vscode/e2e/install.sh).
VSCODE_APT_PACKAGES := chromium ripgrep build-essential pkg-config libkrb5-dev
APT_PACKAGES += $(VSCODE_APT_PACKAGES)
VSCODE := editor-clients/vscode
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: help run test lint setup setup-dev system-packages llama weights weights-test clean

help:
	@echo "make run    set up, then explain and fix the failing test of examples/buggy_inventory"
	@echo "make test   set up (with dev + train extras), lint, and run the test suite"
	@echo "make lint   ruff and mypy only"

# Shows the explanation and the verified diff; writes nothing (add --apply to write the fix).
run: setup
	$(VENV)/bin/ledex fix examples/buggy_inventory --python $(PY)

test: setup-dev
	$(LINT)
	$(PY) -m pytest $(PYTEST_ARGS)

# What and how is in pyproject.toml ([tool.ruff], [tool.mypy]); mypy keeps its cache in .mypy_cache.
define LINT
$(PY) -m ruff check
$(PY) -m mypy
endef

lint: $(VENV)/.dev
	$(LINT)

setup: system-packages $(VENV)/.core weights
setup-dev: system-packages $(VENV)/.dev weights-test
setup-dev: vscode-client

system-packages:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

# The cached llama-cpp-python wheel, built on first use only.
llama: $(PY)
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_VERSION) (once, about 5 minutes; cached in $(LLAMA_WHEELS))"; \
	  mkdir -p $(LLAMA_WHEELS); \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-deps --no-cache-dir \
	    --no-binary llama-cpp-python llama-cpp-python==$(LLAMA_VERSION) -w $(LLAMA_WHEELS).tmp; \
	  mv $(LLAMA_WHEELS).tmp/llama_cpp_python-*.whl $(LLAMA_WHEELS)/ && rmdir $(LLAMA_WHEELS).tmp; \
	fi
	@$(PY) -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$(LLAMA_VERSION)')" 2>/dev/null \
	  || $(PIP) install --quiet --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl

$(VENV)/.core: pyproject.toml | llama
	$(PIP) install --quiet -e .
	touch $@

# torch is pinned to the CPU wheel that lies on this disk (an unpinned torch pulls a CUDA build).
$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(PIP) install --quiet -e '.[dev,train]'
	touch $@

weights: $(VENV)/.core
	@for model in $(RUN_MODELS); do $(VENV)/bin/ledex model install $$model; done

weights-test: $(VENV)/.core
	@for model in $(TEST_MODELS); do $(VENV)/bin/ledex model install $$model; done

# The VS Code extension (editor-clients/vscode): its npm packages and bundle, and the end-to-end
# test's code-server + playwright-core (built once into $(CACHE)/vscode-e2e). Stamped on the lock
# files: a second run does nothing.
.PHONY: vscode-client
vscode-client: system-packages $(VSCODE)/node_modules/.installed $(VSCODE)/dist/extension.js \
  $(VSCODE)/e2e/.installed

$(VSCODE)/node_modules/.installed: $(VSCODE)/package.json $(VSCODE)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20 and npm are needed for the VS Code extension"; exit 1; }
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VSCODE)/dist/extension.js: $(VSCODE)/node_modules/.installed $(VSCODE)/esbuild.mjs $(wildcard $(VSCODE)/src/*.ts)
	cd $(VSCODE) && npm run --silent build

$(VSCODE)/e2e/.installed: $(VSCODE)/e2e/package.json $(VSCODE)/e2e/package-lock.json $(VSCODE)/e2e/install.sh
	$(VSCODE)/e2e/install.sh
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info
	@echo "the cache ($(CACHE)) is kept; remove it by hand to rebuild llama-cpp-python and reinstall models"
