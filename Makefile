# Two entry points for a fresh Debian machine with Python 3.11, git, node/npm and make:
#   make up    -- install what is missing, start the local platform
#   make test  -- install what is missing, run the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: up test setup system-deps tools clean-state help

help:
	@echo "make up     install what is missing, then start the local platform (Ctrl-C stops it)"
	@echo "make test   install what is missing, then run the test suite (everything but 'cluster')"

setup: $(STAMP) tools

system-deps:
	@bash scripts/system-deps.sh

$(STAMP): pyproject.toml platform_lib/dask-config/roman-platform.yaml
	@bash scripts/system-deps.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	$(PY) -m pip install -q -e '.[all]'
	@# An editable install skips data files; the local gateway's workers read this one.
	@install -D -m 644 platform_lib/dask-config/roman-platform.yaml $(VENV)/etc/dask/roman-platform.yaml
	@touch $(STAMP)

tools: $(STAMP)
	@bash scripts/install-node-tools.sh
	@bash scripts/install-k8s-tools.sh

up: setup
	$(VENV)/bin/roman-platform up $(ARGS)

test: setup
	@bash scripts/run-tests.sh $(ARGS)

clean-state:
	rm -rf .state
