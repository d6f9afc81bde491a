# The two set-up commands of the README. Each creates .venv from requirements.lock on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv repro test lint

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The main job: rebuild every result of the embedded default with DVC.
repro: $(STAMP)
	scripts/repro.sh

## The tests: ruff, then every test this machine can run (Slurm tests against a real local cluster).
test: $(STAMP)
	scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
