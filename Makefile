# liif-sr: `make train` (quickstart training) and `make test` each install what they need into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-slow test-all lint format bench-infer bench-train gpu-prep gpu-dry-run eval-bicubic clean

help: ## show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv with the CPU torch pin and the dev extras

train: $(STAMP) ## train the quickstart model (7-19 min on 2 CPU cores), then report held-out PSNR vs bicubic
	$(VENV)/bin/liif-sr-train $(ARGS)

test: $(STAMP) ## the default test suite (not slow)
	$(PY) -m pytest -m "not slow" $(ARGS)

test-slow: $(STAMP) ## only the slow tests (full bicubic tables, sweeps, Optuna, submitit, compile)
	$(PY) -m pytest -m slow $(ARGS)

test-all: $(STAMP) ## every test, slow ones included
	$(PY) -m pytest $(ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

format: $(STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix src tests scripts
	$(VENV)/bin/ruff format src tests scripts

bench-infer: $(STAMP) ## inference benchmark (plain reference vs fast path); ARGS="--out BENCHMARKS.md" appends it
	$(PY) scripts/bench_infer.py $(ARGS)

bench-train: $(STAMP) ## training-step benchmark (fp32 reference vs fast path); ARGS="--markdown BENCHMARKS.md" records it
	$(PY) scripts/bench_train.py $(ARGS)

gpu-prep: $(STAMP) ## fill the ignored .gpu/ (Hydra & co. + T91/BSDS400/Set5/Set14) carried by the GPU command
	$(PY) scripts/gpu_prep.py $(ARGS)

gpu-dry-run: $(STAMP) ## scripts/gpu_run.sh --dry-run on the CPU (tiny sizes, carried layout) into OUT (default /tmp/gpu_dry)
	$(PY) scripts/gpu_prep.py --tiny --dest /tmp/gpu_dry_carry
	OUT=$${OUT:-/tmp/gpu_dry} GPU_CARRY=/tmp/gpu_dry_carry PYTHON=$(PY) bash scripts/gpu_run.sh --dry-run

clean: ## remove build artefacts (keeps .venv and logs)
	rm -rf build dist src/*.egg-info .pytest_cache .ruff_cache
