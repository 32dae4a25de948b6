# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/.dagster
# Backfills over long ranges record one planned event per asset, not one per asset and day.
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1
UV ?= uv
RUN := $(UV) run --frozen
SCALE ?= 10k

.PHONY: run test setup demo-data dbt-parse dev bench forget clean

# Install uv with pip when missing, then the locked environment.
setup:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv
	$(UV) sync --frozen
	@mkdir -p $(DAGSTER_HOME) && cp -n pipeline/config/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

dbt-parse: setup
	cd dbt_project && $(RUN) dbt parse --quiet --profiles-dir .

demo-data: setup
	$(RUN) python -m pipeline.cli demo-data

# Generate the demo data, materialize every asset over all its partitions, print the output tables.
run: demo-data dbt-parse
	$(RUN) python -m pipeline.cli run

test: dbt-parse
	$(RUN) pytest

# The Dagster UI on http://127.0.0.1:3000 (bound to loopback only).
dev: dbt-parse
	$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: dbt-parse
	$(RUN) python -m bench.run --scale $(SCALE)

clean:
	rm -rf data .dagster dbt_project/target dbt_project/logs
