# Targets are the README's commands; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup demo test lint fmt-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/smashc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

setup: $(BIN)/smashc  ## create .venv and install smashc with its test tools

demo: setup  ## main job: check, format-check and expand the bundled examples
	$(BIN)/smashc check examples/*.smash
	$(BIN)/smashc fmt --check examples/*.smash
	mkdir -p out
	for f in examples/*.smash; do $(BIN)/smashc expand $$f > out/$$(basename $$f .smash).expanded.smash || exit 1; done
	@echo "expanded networks written to out/"

test: setup  ## run the test suite (slow/gpu/train tests are skipped)
	$(BIN)/python -m pytest -q

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check smashc grammar passes runtime tests
	$(BIN)/ruff format --check smashc grammar passes runtime tests

clean:  ## remove the virtual environment and outputs
	rm -rf $(VENV) out build *.egg-info
