# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# On first use a virtual environment is created in .venv with the pinned versions of
# requirements.lock, then the project is installed into it (editable).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: demo test test-fast bench lint clean check

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facility demo

check: $(STAMP)
	$(VENV)/bin/facility check-config --summary

test: $(STAMP)
	$(VENV)/bin/ruff check facility sensors alarms hazmat tui tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_engine.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check facility sensors alarms hazmat tui tests benchmarks

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache var
