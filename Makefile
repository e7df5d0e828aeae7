# make demo   install, then run the whole pipeline offline on generated images (~6 min on 2 cores, install included)
# make own DATA=path/to/photos [BASE=path/to/base.keras] [RECIPE=laptop]
#             train and evaluate on your own labelled photos, as a DVC experiment in the workspace
# make compare  the experiments side by side: the params that differ and the headline metrics
# make test   install with the test tools (the ONNX converter, JAX and PyTorch), then lint and run the test suite (unit + end-to-end)
# make unit   lint, then the fast tests only (no `dvc repro`)
# make lint   ruff's lint and format check, and the import layers (pyproject.toml configures all three)
# make bench  each stage's speed against this machine's limit, memory on 25,000 images, Keras backends vs TensorFlow, 100,000 images (~20 min)

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Every target but the installs runs a command of `classifier` (classifier/cli.py), which `make install`
# puts in .venv/bin with the project itself (an editable install: the repository's code, as it is).
RECIPE ?= laptop
BASE ?= imagenet

.PHONY: install install-test demo own compare lint test unit bench

$(VENV)/installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .  # the `classifier` command
	$(BIN)/classifier plots-page  # `dvc plots show` without the network
	touch $@

$(VENV)/installed-test: $(VENV)/installed requirements-test.txt requirements-export.txt requirements-jax.txt requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/installed
install-test: $(VENV)/installed-test

demo: install  # recipes/demo.yaml on generated images, as the DVC experiment `demo` in a temporary copy
	classifier demo

own: install  # make own DATA=path/to/photos [BASE=path/to/base.keras] [RECIPE=laptop]
	classifier own "$(DATA)" --base "$(BASE)" --recipe "$(RECIPE)"

compare: install  # the experiments side by side: the params that differ, the headline metrics
	classifier compare $(EXPS)

lint: install-test
	ruff check .
	ruff format --check .
	lint-imports --no-logo --no-cache

# Two pytest-xdist workers, a test module each at a time (its fixtures are built once); the tiny
# pipeline is built once for both (tests/conftest.py). About 40% less time on 2 cores than one process.
TEST_WORKERS ?= 2
PYTEST := python -m pytest -n $(TEST_WORKERS) --dist loadscope

test: lint
	$(PYTEST)

unit: lint
	$(PYTEST) -m 'not e2e'

bench: install-test  # the backend table needs JAX and PyTorch
	python -m benchmarks
