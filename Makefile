# labelbench — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS ?= results

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# constraints.txt pins torch to 2.13.0 (the CPU wheel here) so nothing pulls CUDA builds.
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install labelbench with CPU torch

demo: $(STAMP) ## run the demo suite (digits, clean, 20/50/100/full labels, 3 seeds), print its leaderboard, write the dashboard
	$(BIN)/labelbench-run -m experiment=demo paths.results_dir=$(RESULTS) budget=total budget.total=20,50,100
	$(BIN)/labelbench-run -m experiment=demo paths.results_dir=$(RESULTS) budget=full
	$(BIN)/labelbench leaderboard $(RESULTS) --filter dataset=digits regime=clean
	$(BIN)/labelbench dashboard $(RESULTS) --filter dataset=digits regime=clean --out $(RESULTS)/dashboard.html

# pytest-xdist worker processes for `make test` (0: one process, no workers).
TEST_WORKERS ?= 2

test: $(STAMP) ## run the test suite in TEST_WORKERS processes (fast; `-m slow` for the long ones)
	$(BIN)/pytest -q -n $(TEST_WORKERS)

bench: $(STAMP) ## speed: fit overhead vs a plain loop, the demo, the aggregator and the dashboard on 100k records, --help, crowds at scale (~30 min)
	$(BIN)/python scripts/bench/all.py

reference: $(STAMP) ## run the experiment presets, write their leaderboards to results/reference/ (about an hour)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench/reference.py

docs: $(STAMP) ## build the documentation site (warnings are errors) into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check labelbench tests scripts
	$(BIN)/ruff format --check labelbench tests scripts

clean: ## remove run records, Hydra folders and logs (keeps the venv)
	rm -rf $(RESULTS)/runs $(RESULTS)/hydra $(RESULTS)/logs

.PHONY: help install demo test bench reference docs lint clean
