# Two entry points for a fresh Debian machine with Python 3.11, git, node/npm and make:
#   make up    -- install what is missing, start the local platform
#   make test  -- install what is missing, run the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: up test docs screenshots setup system-deps tools clean-state help

help:
	@echo "make up     install what is missing, then start the local platform (Ctrl-C stops it)"
	@echo "make test   install what is missing, then run the test suite (everything but 'cluster')"
	@echo "make docs   build the documentation site into docs/_build/html (warnings are errors)"
	@echo "make screenshots  retake the docs' screenshots by running the browser tests that take them"

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
	@# The policy's previous environments as overlays of this venv, so the local platform offers
	@# them too (docs/environments.md); pip, from the package index.
	$(PY) -m hub_config.environments make-local --missing
	@touch $(STAMP)

tools: $(STAMP)
	@bash scripts/install-node-tools.sh
	@bash scripts/install-k8s-tools.sh

up: setup
	$(VENV)/bin/roman-platform up $(ARGS)

test: setup
	@bash scripts/run-tests.sh $(ARGS)

# The documentation site, as tests/docs/test_site.py builds it in CI.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# The docs' screenshots are taken by the browser tests that drive those pages (docs_screenshot in
# tests/conftest.py), on the local platform; this reruns them with the screenshots kept.
SCREENSHOT_TESTS := tests/quota/test_browser.py tests/platform/test_browser.py \
	tests/identity/test_browser.py \
	tests/quota/test_accounting.py::test_server_run_time_is_charged_once_across_a_service_kill
screenshots: setup
	ROMAN_DOCS_SCREENSHOTS=$(CURDIR)/docs/_static/screenshots $(PY) -m pytest -q -p no:cacheprovider $(SCREENSHOT_TESTS)

clean-state:
	rm -rf .state
