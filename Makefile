# Two commands for a new user: `make demo` and `make test`. Each sets itself up from nothing:
# a project-local virtualenv (.venv) installed from the lock in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# Airflow writes logs and config under $AIRFLOW_HOME (default ~/airflow): keep them in the project folder.
export AIRFLOW_HOME := $(CURDIR)/.airflow_home

.PHONY: demo test bench lint lock clean integrity e2e mutate coverage test-quirks

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[test,examples,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The provider's tests with every data quirk of the real service on in every emulator they start (docs/emulator.md;
# the emulator's own tests pin the default shapes, tests/dags runs Airflow end to end, hub payloads have no quirks:
# none of those is here). About 8 min on a loaded 2-core machine.
QUIRKS_TESTS := tests/hooks tests/operators tests/sensors tests/parquet tests/integrity \
	--ignore=tests/integrity/test_realtime.py --ignore=tests/integrity/test_realtime_s3.py
test-quirks: $(STAMP)
	CPLUGIN_EMULATOR_QUIRKS=all $(BIN)/python -m pytest -q -p no:cacheprovider $(QUIRKS_TESTS)

# The integrity fault matrix, then its table in docs/integrity.md from the results.
integrity: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integrity
	$(BIN)/python scripts/integrity_matrix.py

# End-to-end on a real deployment (PostgreSQL, Redis, moto S3, CeleryExecutor with two workers); needs the
# Debian packages postgresql and redis-server. Several minutes; see docs/e2e.md.
e2e: $(STAMP)
	$(BIN)/python -m ruff check tests_e2e scripts/e2e
	$(BIN)/python -m pytest -q -p no:cacheprovider -rxXs tests_e2e

# Mutation testing of the provider's logic (scripts/mutations.toml, docs/mutation.md): one mutant at a time on
# focused test selections, about 75 min on 2 cores (198 entries), so not part of `make test`.
# MUTATE_ARGS="--area hooks" or "--only id1,id2" runs part of the catalogue.
mutate: $(STAMP)
	$(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

# Branch coverage of the provider outside the emulator (config: [tool.coverage.*] in pyproject.toml). The example
# DAG and benchmark tests run the provider in child processes coverage does not follow, so they are left out by
# default; COVERAGE_ARGS="tests/realtime" measures one area. 15-30 min for the whole suite on 2 busy cores. The
# report is printed even when a test fails; the target then fails with pytest's status.
COVERAGE_ARGS ?= tests --ignore=tests/dags --ignore=tests/benchmarks
coverage: $(STAMP)
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest -q -p no:cacheprovider $(COVERAGE_ARGS); status=$$?; \
	$(BIN)/python -m coverage report; exit $$status

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/python -m ruff check airflow_provider_cplugin dags_examples tests benchmarks scripts
	$(BIN)/python -m mypy

# Regenerate the lock after changing ranges in setup.cfg.
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra test --extra examples --extra bench setup.cfg -o constraints.txt

clean:
	rm -rf $(VENV) .airflow_home .demo .bench
