# Targets are the README's commands; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup system demo examples test bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/smashc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

setup: $(BIN)/smashc system  ## create .venv, install smashc and its test tools (and the Debian packages)

system:  ## install graphviz and Fashion-MNIST from Debian when missing (needs root)
	@missing=""; command -v dot >/dev/null || missing="graphviz"; \
	test -d /usr/share/datasets/fashion-mnist || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "please install the Debian packages:$$missing"; fi; \
	fi

demo: setup  ## main job: a SMASH search on Fashion-MNIST (preset demo) into runs/demo
	$(BIN)/smashc search --preset demo --out runs/demo

examples: setup  ## check, compile, report and draw every bundled example into out/
	$(BIN)/smashc check examples/*.smash
	@mkdir -p out
	@fmt=png; command -v dot >/dev/null || { fmt=dot; echo "graphviz not installed: writing .dot files"; }; \
	for f in examples/*.smash; do \
		n=$$(basename $$f .smash); \
		$(BIN)/smashc compile $$f --report -o out/$$n > out/$$n.report.txt || exit 1; \
		$(BIN)/smashc visualize $$f -o out/$$n.$$fmt >/dev/null || exit 1; \
		echo "out/$$n: report, diagram, importable package"; \
	done
	@cat out/resnet20.report.txt

test: setup  ## run the test suite (slow/gpu/train tests are skipped), one process per core
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: setup  ## benchmark table: compile throughput, SMASH step and scoring (fp32, bf16, the reference re-enacted), ResNet-20, ranking quality (~15 min)
	$(BIN)/python bench/run.py

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check smashc grammar passes runtime tests bench
	$(BIN)/ruff format --check smashc grammar passes runtime tests bench

clean:  ## remove the virtual environment and outputs
	rm -rf $(VENV) out runs build *.egg-info
