# rsna-yolo: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
LOCK   := requirements.lock
STAMP  := $(VENV)/.installed
# uv is itself in the lock (the dev group); the first install of it comes through pip, at the locked version.
UV_VERSION = $(shell sed -n 's/^uv==\([^ ;]*\).*/\1/p' $(LOCK))
# uv reads no pip configuration. Where pip is set to use local package folders or extra indexes (a mirror, or
# the build machines' local disk), uv is given the same places; the lock's hashes still decide what installs.
UV_SOURCES = $(shell $(PYTHON) scripts/pip_sources.py)
DEMO   ?= demo
# `make demo DATA=/path/to/kaggle/download` runs the same steps on the real data (yolo_configs/recipes/real.yaml).
DATA   ?=
DEMO_RECIPE = $(if $(DATA),yolo_configs/recipes/real.yaml --set data.kaggle=$(DATA),yolo_configs/recipes/demo.yaml)

.PHONY: venv lock test demo lint format bench clean

venv: $(STAMP)

# Exactly the lock (uv pip sync: what is not in it is removed, hashes checked), then the project itself, editable
# and without dependencies: the `rsna-yolo` command, and `python -m convert|analysis|rsna_yolo.train` from any
# folder. Redone when the lock, pyproject.toml or this file changes; the last line checks the venv against the lock.
# --compile-bytecode: uv writes no .pyc files unless asked, and where Python runs with PYTHONDONTWRITEBYTECODE
# (the build machines do) none are ever written, so every process compiled torch's sources again: `import torch`
# 3.3 s -> 1.8 s, `import torchvision` 8 s -> 3.4 s on the 2-core build machine; the compiling costs ~20 s once.
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) --require-hashes $(UV_SOURCES) $(LOCK)
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation $(UV_SOURCES) -e .
	$(PY) scripts/lock_check.py venv
	touch $(STAMP)

# Refresh the lock from pyproject.toml's ranges (and its [tool.uv] pins): the newest releases that fit, for
# every platform and Python >= 3.11, with hashes. Then `make test` must pass, the hard level's fingerprint
# included (docs/environment.md).
lock:
	test -x $(UV) || $(MAKE) venv
	$(UV) pip compile --quiet --universal --python-version 3.11 --group dev --generate-hashes \
		--upgrade pyproject.toml -o $(LOCK)
	$(PYTHON) scripts/lock_check.py lock

# The suite runs in parallel on every core (pytest-xdist; a test file stays on one worker, so the fixtures it
# shares are built once). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) scripts/lock_check.py lock
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The demo is a recipe (docs/recipes.md): rerun after an interruption, it keeps what finished.
demo: $(STAMP)
	$(PY) -m rsna_yolo recipe $(DEMO_RECIPE) --out $(DEMO)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/convert_bench.py
	$(PY) benchmarks/metric_bench.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
