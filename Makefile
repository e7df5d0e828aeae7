# make demo   install, then run the whole pipeline offline on generated images (~6 min on 2 cores, install included)
# make test   install with the test tools (the ONNX converter, JAX and PyTorch), then lint and run the test suite (unit + end-to-end)
# make unit   lint, then the fast tests only (no `dvc repro`)
# make lint   ruff's lint and format check, and the import layers (pyproject.toml configures all three)
# make bench  each stage's speed against this machine's limit, memory on 25,000 images, Keras backends vs TensorFlow (~18 min)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# The demo: tiny generated images, VGG16 with random weights (ImageNet's cannot be
# downloaded offline), few epochs. Run as a DVC experiment in a temporary copy of the
# repository, so the workspace and git stay untouched: see it with `dvc exp show`.
DEMO_DATA := data/demo
DEMO_EXP := demo
DEMO_PARAMS := -S data.raw_dir=$(DEMO_DATA) -S data.image_size=64 \
	-S 'data.split.train=[0,150]' -S 'data.split.validation=[150,200]' -S 'data.split.test=[200,250]' \
	-S base.weights=null \
	-S train_classifier.epochs=15 -S train_frozen.epochs=3 -S train_frozen.learning_rate=1e-4 -S fine_tune.epochs=3 \
	-S train_scratch.epochs=6 -S train_scratch_augmented.epochs=6

.PHONY: install install-test demo lint test unit bench

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/installed-test: $(VENV)/installed requirements-test.txt requirements-export.txt requirements-jax.txt requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/installed
install-test: $(VENV)/installed-test

demo: install
	python tools/make_demo_data.py $(DEMO_DATA) --per-class 250
	-@dvc exp remove $(DEMO_EXP) >/dev/null 2>&1
	dvc exp run --temp --copy-paths $(DEMO_DATA) -n $(DEMO_EXP) $(DEMO_PARAMS)
	python tools/results_table.py --exp $(DEMO_EXP)

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
