# rsna-yolo: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo
# `make demo DATA=/path/to/kaggle/download` runs the same pipeline on the real data.
DATA   ?=

.PHONY: venv test demo lint format bench clean

venv: $(STAMP)

# Reinstall only when requirements.txt or pyproject.toml changes. The project itself is installed editable
# (`pip install -e .`): the `rsna-yolo` command, and `python -m convert|analysis|rsna_yolo.train` from any folder.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

demo: $(STAMP)
	PY=$(PY) bash scripts/demo.sh $(DEMO) $(DATA)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/convert_bench.py
	$(PY) benchmarks/metric_bench.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
