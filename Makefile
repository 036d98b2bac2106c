# The two set-up commands of README.md: `make demo` runs the main job, `make test` the tests.
# Both create .venv on first use; nothing is installed outside it except Debian's
# prometheus / prometheus-alertmanager (promtool and real servers for tests), when root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint

$(STAMP): pyproject.toml
	@echo "Installing gpumetrics, torch and the test tools into $(VENV) (the first time: about 1-2 minutes) ..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,plot,worker]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	@echo "1. What Llama-3-8B can reach on an H200, by batch and context (the roofline):"
	$(BIN)/gpumetrics roofline --model llama-3-8b --gpu h200 --batch 1,8,64,256,1024 --context 512,4096,32768
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check gpumetrics tests benchmarks examples scripts
	$(BIN)/ruff format --check gpumetrics tests benchmarks examples scripts
	$(BIN)/mypy
	$(BIN)/gpumetrics render --check

test: setup
	scripts/install-system-deps.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest
