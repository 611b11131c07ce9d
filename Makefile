# chatpersona — every target creates and uses .venv itself, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-installed

.PHONY: help venv demo test lint bench services system-deps rasa-venv clean-venv

help:
	@echo "make demo   - set up .venv and run the whole system on the embedded default (SQLite, memory bus/state)"
	@echo "make test   - set up .venv, system packages and services, then lint and run the whole test suite"
	@echo "make bench  - run the benchmarks in bench/ (results in bench/results/, summary in docs/BENCHMARKS.md)"
	@echo "make lint   - ruff + mypy"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests need (Chromium for the browser tests). Idempotent.
$(SYSSTAMP): scripts/system-deps.sh | $(PY)
	bash scripts/system-deps.sh
	touch $(SYSSTAMP)

system-deps: $(SYSSTAMP)

services:
	bash scripts/services.sh

# The Rasa example's action server runs in its own venv: rasa-sdk pins pydantic/websockets.
RASA_STAMP := .venv-rasa/.installed
$(RASA_STAMP): examples/rasa/requirements.txt pyproject.toml
	$(PYTHON) -m venv .venv-rasa
	.venv-rasa/bin/python -m pip install -q 'rasa-sdk>=3.8' 'httpx>=0.27'
	.venv-rasa/bin/python -m pip install -q --no-deps -e .
	touch $(RASA_STAMP)

rasa-venv: $(RASA_STAMP)

demo: venv
	$(VENV)/bin/chatpersona demo

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: venv system-deps services rasa-venv lint
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

# Bytecode as an installed package has it (the editable install compiles src at each start
# when PYTHONDONTWRITEBYTECODE is set); compileall only rewrites what changed.
bench: venv services
	$(PY) -m compileall -q src
	$(PY) bench/run_all.py

clean-venv:
	rm -rf $(VENV)
