# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/.dagster
# Backfills over long ranges record one planned event per asset, not one per asset and day.
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1
# A step's per-day materializations reach the event log in batches, written at once (pipeline/defs/runs/event_log.py).
export DAGSTER_EVENT_BATCH_SIZE ?= 10000
UV ?= uv
# Bytecode is compiled once, by `make setup`: compiling again on every `uv run` cost ~0.5 s each.
RUN := $(UV) run --frozen --quiet
SCALE ?= 10k
DEMO_CUSTOMERS ?= 2000
DEV_PORT ?= 3000
# Optional dependency groups to install too, e.g. UV_GROUPS="--group spark" (the Spark build, README "Scaling out").
UV_GROUPS ?=

.PHONY: run test test-unit test-integration test-spark check-databricks lint format definitions-snapshot setup demo-data dbt-parse dev bench forget clean mart-digests doctor

# Install uv with pip when missing, then the locked environment.
setup:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	@$(UV) sync --frozen --compile-bytecode --quiet $(UV_GROUPS)
	@mkdir -p $(DAGSTER_HOME) && cp -n pipeline/config/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

dbt-parse: setup
	@cd dbt_project && $(RUN) dbt parse --quiet --profiles-dir .

demo-data: setup
	@$(RUN) python -m pipeline.cli demo-data --customers $(DEMO_CUSTOMERS)

# Generate the demo data (up to yesterday), materialize every asset over all its partitions, say what came out.
# No dbt-parse first: loading the definitions parses the project only when a dbt file changed (ensure_manifest), and
# a parse here would replace the run's own partial parse with one made without the run's vars.
run: demo-data
	@$(RUN) python -m pipeline.cli run

# Read the configured sources and check them against pipeline/config/cdp.yaml (CDP_CONFIG): run before a first backfill.
doctor: setup
	$(RUN) python -m pipeline.cli doctor

test: dbt-parse
	$(RUN) pytest

# The fast layer on both cores (pytest-xdist; a test file stays on one worker, so its module fixtures are built once).
test-unit: dbt-parse
	$(RUN) pytest tests/unit -n 2 --dist loadfile

test-integration: dbt-parse
	$(RUN) pytest tests/integration

# The DuckDB-vs-Spark equality test, with the spark group installed (needs Java 17). Kept apart from `make test`,
# which syncs without the group: with pyspark installed, importing Great Expectations exits a daemon-launched run
# worker (pyspark.sql.connect's dependency check calls sys.exit), so every check of a UI backfill failed.
test-spark: UV_GROUPS = --group spark
test-spark: dbt-parse
	$(RUN) $(UV_GROUPS) pytest -m spark

# Compile the dbt project against the `databricks` target of profiles.yml without a workspace, then check the compiled
# SQL with Spark's parser (.ci/databricks/check.py; needs Java 17). dbt-databricks has its own locked environment
# (.ci/databricks/uv.lock): it requires dbt-spark < 1.11, which uv.lock cannot hold beside the Spark group.
check-databricks: setup
	@$(UV) sync --frozen --quiet --project .ci/databricks
	DATABRICKS_HOST=compile-only.invalid DATABRICKS_HTTP_PATH=/sql/1.0/warehouses/compile-only \
	DATABRICKS_TOKEN=compile-only $(UV) run --frozen --quiet --project .ci/databricks \
	python .ci/databricks/check.py "$$($(RUN) python -m pipeline.spark dbt-vars)"

# Record the mart digests of the default demo run (tests/integration/mart_digests.json) after an INTENDED change of
# what the pipeline outputs; say so in the commit message. Builds the demo in a temporary data dir.
mart-digests: dbt-parse
	$(RUN) python -m tests.integration.mart_digest --build --out tests/integration/mart_digests.json

# Record what the code location defines (tests/support/definitions_snapshot.json) after an INTENDED change.
definitions-snapshot: dbt-parse
	$(RUN) python -m tests.support.definitions_snapshot

# ruff for the Python, sqlfluff for the dbt SQL (models, tests, macros). `make format` fixes what it can.
lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	cd dbt_project && $(RUN) sqlfluff lint models tests macros

format: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .
	cd dbt_project && $(RUN) sqlfluff fix models tests macros

# The Dagster UI on http://127.0.0.1:3000 (bound to loopback only).
dev: dbt-parse
	$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DEV_PORT)

bench: dbt-parse
	$(RUN) python -m bench.run --scale $(SCALE)

# Right to erasure (UU PDP / GDPR): make forget EMAIL=… | PHONE=… | CUSTOMER_ID=…
forget: setup
	@$(RUN) python -m pipeline.forget $(if $(EMAIL),--email '$(EMAIL)')$(if $(PHONE),--phone '$(PHONE)')$(if $(CUSTOMER_ID),--customer-id '$(CUSTOMER_ID)')

clean:
	rm -rf data .dagster dbt_project/target dbt_project/logs
