# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# On first use a virtual environment is created in .venv with the pinned versions of
# requirements.lock, then the project is installed into it (editable).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
# Test workers (pytest-xdist): most tests wait on sockets, subprocesses and terminals, so three
# workers share two cores well; a module's tests stay on one worker (--dist loadfile).
TEST_WORKERS ?= 3

.PHONY: demo demo-campus test test-fast bench lint clean check mutate

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	# Compile the numba kernels now, so the first start after install loads them instead of
	# compiling (docs/ARCHITECTURE.md "Data flow": kernels ready first): into NUMBA_CACHE_DIR
	# for the make targets, and into alarms.kernels' default (~/.cache/facility-numba) for a
	# `facility run` started outside make (copied, then loaded once to check it).
	mkdir -p $(NUMBA_CACHE_DIR) && test -w $(NUMBA_CACHE_DIR)
	$(PY) -c "from alarms.engine import warm_up; warm_up()"
	-mkdir -p $(HOME)/.cache/facility-numba && cp -R $(NUMBA_CACHE_DIR)/. $(HOME)/.cache/facility-numba/
	-env -u NUMBA_CACHE_DIR $(PY) -c "from alarms.engine import warm_up; warm_up()"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facility demo

# The same plant as a campus over MQTT Sparkplug B (needs mosquitto: apt-get install mosquitto).
demo-campus: $(STAMP)
	$(VENV)/bin/facility demo --campus

check: $(STAMP)
	$(VENV)/bin/facility check-config --summary

test: $(STAMP)
	$(VENV)/bin/ruff check facility sensors alarms hazmat tui tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/alarms/test_engine.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check facility sensors alarms hazmat tui tests benchmarks

# Mutation testing of the alarm and record paths with mutmut ([tool.mutmut] in pyproject.toml
# names the modules and their tests). Slow (minutes per module), so not part of `make test`;
# MUTANTS limits it to some modules: make mutate MUTANTS='alarms.rules.* facility.store.audit.*'.
# The kernels run as plain Python (NUMBA_DISABLE_JIT=1) so their mutants can be tested.
# Results stay in mutants/ (a rerun tests only what changed); `mutmut show NAME` shows one.
mutate: $(STAMP)
	NUMBA_DISABLE_JIT=1 $(VENV)/bin/mutmut run $(MUTANTS)
	@$(VENV)/bin/mutmut results --all true | awk -F': ' '$$2 != "not checked" { m = $$1; \
	  sub(/^ +/, "", m); sub(/\.x[^A-Za-z0-9.].*/, "", m); n[m]++; if ($$2 == "killed") k[m]++ } \
	  END { for (m in n) printf "%-28s %4d / %4d killed (%.1f %%)\n", m, k[m], n[m], 100 * k[m] / n[m] }' | sort

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache var
