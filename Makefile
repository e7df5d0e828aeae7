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

# What a user sets (DATA=, BASE=, EXPS=, VENV=, ...) is data, never make or shell text, whatever it holds
# (backticks, $(...), quotes, spaces, #): make would export a command-line variable to every recipe,
# expanding it first (running any $(shell ...) in it), so none is exported but those the recipes need in
# their environment, which are made simple (their text as typed, never expanded); recipes read each one
# with $(value ...), unexpanded, and hand it to the shell as one single-quoted word (`quote`, `quote_each`).
KEEP_EXPORTED := PATH TF_CPP_MIN_LOG_LEVEL
$(foreach name,$(.VARIABLES),$(if $(filter command line,$(origin $(name))),$(if $(filter $(name),$(KEEP_EXPORTED)),$(eval override $(name) := $$(value $(name))),$(eval unexport $(name)))))
quote = '$(subst ','\'',$(value $(1)))'
quote_each = $(foreach word,$(value $(1)),'$(subst ','\'',$(word))')

PYTHON ?= python3
VENV ?= .venv
VENV_DIR := $(value VENV)
$(if $(word 2,$(VENV_DIR)),$(error VENV=$(VENV_DIR): give a folder whose path has no spaces (make cannot name it as a target)))
BIN := $(VENV_DIR)/bin
export PATH := $(if $(filter /%,$(BIN)),$(BIN),$(CURDIR)/$(BIN)):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Every target but the installs runs a command of `classifier` (classifier/cli.py) as `python -m classifier`
# in the repository root: the repository's own package, with the project `make install` puts in .venv.
CLASSIFIER := $(call quote,BIN)/python -m classifier
RECIPE ?= laptop
BASE ?= imagenet

.PHONY: install install-test demo own compare lint test unit bench

$(VENV_DIR)/installed: requirements.txt pyproject.toml
	$(value PYTHON) -m venv $(call quote,VENV)
	$(call quote,BIN)/python -m pip install --quiet -r requirements.txt
	$(call quote,BIN)/python -m pip install --quiet --no-deps --editable .  # the `classifier` command
	$(CLASSIFIER) plots-page  # `dvc plots show` without the network
	touch $(call quote,@)

$(VENV_DIR)/installed-test: $(VENV_DIR)/installed requirements-test.txt requirements-export.txt requirements-jax.txt requirements-torch.txt
	$(call quote,BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(call quote,@)

install: $(VENV_DIR)/installed
install-test: $(VENV_DIR)/installed-test

demo: install  # recipes/demo.yaml on generated images, as the DVC experiment `demo` in a temporary copy
	$(CLASSIFIER) demo

own: install  # make own DATA=path/to/photos [BASE=path/to/base.keras] [RECIPE=laptop]
	$(CLASSIFIER) own --base=$(call quote,BASE) --recipe=$(call quote,RECIPE) -- $(call quote,DATA)

compare: install  # the experiments side by side: the params that differ, the headline metrics
	$(CLASSIFIER) compare -- $(call quote_each,EXPS)

lint: install-test
	ruff check .
	ruff format --check .
	lint-imports --no-logo --no-cache

# Two pytest-xdist workers, a test module each at a time (its fixtures are built once); the tiny
# pipeline is built once for both (tests/conftest.py). About 40% less time on 2 cores than one process.
TEST_WORKERS ?= 2
PYTEST := python -m pytest -n $(call quote,TEST_WORKERS) --dist loadscope

test: lint
	$(PYTEST)

unit: lint
	$(PYTEST) -m 'not e2e'

bench: install-test  # the backend table needs JAX and PyTorch
	python -m benchmarks
