"""Every dbt model is an asset and every dbt test an asset check, built by `dbt build` in two steps per run.

The first step builds staging, identity, the profile and the facts; the second the customer marts that depend on
the profile (segments, CLV, value, equity). Two steps, so the blocking quality check on `marts.customer_profile`
holds the customer marts back when the profile is bad, and the previous tables stay.

The models are not partitioned: staging models are incremental on the raw load time (macro `newly_loaded`), so a
run stages exactly what its ingest steps landed, one night or a backfilled range alike. dbt gets the configuration
sections it needs as vars, and the run date (the run's last partition) in a one-row table each step writes before dbt
starts (RUN_CONTEXT): vars that differ from the last parse's make dbt parse the whole project again (~3 s of every
run on a quiet machine, 15 s and more on a busy one), and a run-date var differed every night.
"""

import json
import os
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, dbt_assets

from pipeline.defs.dbt.resources import RUN_CONTEXT, dbt_project, dbt_vars
from pipeline.defs.dbt.translator import CdpDbtTranslator
from pipeline.defs.partitions import RANGE_END_TAG
from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.defs.table_metadata import table_metadata

# The customer marts built after the profile's checks (dbt_project/models/marts/segments and value).
CUSTOMER_MARTS = "tag:customer_marts"
# Run tag of a run over one partition (the schedule); a range (backfill, `pipeline.cli run`) has RANGE_END_TAG.
PARTITION_TAG = "dagster/partition"
PARTIAL_PARSE = "partial_parse.msgpack"
# The newest dbt invocation directories kept in the project's target/ (each holds a step's dbt.log and compiled SQL,
# ~2 MB): a nightly schedule adds two a day, which would fill the disk over the years.
INVOCATIONS_KEPT = 20


def last_partition(tags: dict[str, str]) -> date | None:
    """The run's last daily partition, from its tags (None for a run outside the partitions)."""
    key = tags.get(RANGE_END_TAG) or tags.get(PARTITION_TAG)
    return date.fromisoformat(key) if key else None


def record_run_date(con: duckdb.DuckDBPyConnection, run_date: date | None) -> None:
    """Write the run date for int_run_date: the run's last partition, or null outside the partitions (dbt then takes
    the latest staged day). Written by the dbt step itself, under the warehouse pool, so no other run's step can
    change it before its dbt has read it."""
    con.execute(f"create schema if not exists {RUN_CONTEXT.split('.')[0]}")
    con.execute(f"create or replace table {RUN_CONTEXT} as select cast(? as date) as run_date", [run_date])


def share_parse(invocation_target: Path, project_target: Path) -> None:
    """Make an invocation's parse the one the next invocation starts from.

    dagster-dbt runs each invocation in its own target directory, seeded with the project's partial_parse.msgpack
    (from `make dbt-parse`, without vars). dbt parses the whole project again whenever the vars differ from that
    file's, so every step of a run did a full parse; with the run's parse shared, the second step of a run parses
    only what changed (nothing). Replaced in one rename: other processes may be reading it."""
    parsed = invocation_target / PARTIAL_PARSE
    if parsed.is_file():
        staged = project_target / f"{PARTIAL_PARSE}.tmp-{os.getpid()}"
        shutil.copyfile(parsed, staged)
        os.replace(staged, project_target / PARTIAL_PARSE)


def prune_invocations(project_target: Path, keep: int = INVOCATIONS_KEPT) -> list[Path]:
    """Delete all but the `keep` newest invocation directories that dagster-dbt made in `project_target` (named
    `<step>-<run id>-<suffix>`, holding a dbt.log); returns what was deleted. The project's own files (manifest,
    partial parse) are no invocation directories."""
    invocations = sorted(
        (folder for folder in project_target.glob("*-*-*") if folder.is_dir() and (folder / "dbt.log").is_file()),
        key=lambda folder: folder.stat().st_mtime,
        reverse=True,
    )
    for folder in invocations[keep:]:
        shutil.rmtree(folder, ignore_errors=True)
    return invocations[keep:]


def _dbt_step(name: str, **selection: str) -> dg.AssetsDefinition:
    """One `dbt build` step over the models the selection (select= or exclude=) names."""

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        dagster_dbt_translator=CdpDbtTranslator(),
        pool="warehouse",
        name=name,
        **selection,
    )
    def _step(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        settings: SettingsResource,
        warehouse: WarehouseResource,
    ):
        # dbt runs in its own process: the warehouse path, DuckDB limits and model settings go in as vars, the run
        # date in the run-context table.
        run_settings = settings.get()
        with warehouse.connect() as con:
            record_run_date(con, last_partition(context.run.tags))
            keep_open = run_settings.keep_warehouse_open(con)
        variables = dbt_vars(run_settings, warehouse.file(), keep_open)
        # No JSON artifacts (manifest, semantic manifest, run results: several MB per step, seconds to write, and
        # nothing reads them; the next step's partial_parse.msgpack is still written). dbt.log keeps dbt's info lines:
        # at dbt's default (debug, as JSON) it was ~4 MB per step and ~1 CPU s of rendering, mostly dbt's SQL
        # statements; at info it is a tenth of that, each node's start and result with their times (what the bench
        # maps its memory samples to, bench.run.node_memory).
        args = ["build", "--vars", json.dumps(variables), "--exclude-resource-type", "unit_test", "--no-write-json"]
        args += ["--log-level-file", "info"]
        invocation = dbt.cli(args, context=context, raise_on_error=False)
        # Collected first: the dbt process holds the warehouse until it ends, then every built table gets its row
        # count and DuckDB's column types and descriptions in the UI.
        events = list(invocation.stream())
        with warehouse.connect(read_only=True) as con:
            for event in events:
                if isinstance(event, dg.Output | dg.AssetMaterialization):
                    key = (
                        event.asset_key
                        if isinstance(event, dg.AssetMaterialization)
                        else context.asset_key_for_output(event.output_name)
                    )
                    event = event.with_metadata({**event.metadata, **table_metadata(con, key)})
                yield event
        project_target = Path(dbt_project.project_dir) / dbt_project.target_path
        share_parse(Path(invocation.target_path), project_target)
        prune_invocations(project_target)
        if not invocation.is_successful():
            raise invocation.get_error()

    return _step


dbt_models = _dbt_step("dbt_models", exclude=CUSTOMER_MARTS)
dbt_customer_marts = _dbt_step("dbt_customer_marts", select=CUSTOMER_MARTS)
