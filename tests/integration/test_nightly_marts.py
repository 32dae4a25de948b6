"""A nightly run gives the marts a full build gives: full build over days 1..N == build over 1..N-1 + nightly N.

The nightly run recomputes traits (and with them the per-customer inputs of the segments) only for the customers the
day touched (int_customer_traits), warm-starts the CLV fit and computes the CLV backtest only on its schedule dates, so
this is the proof that none of it changes what comes out. Both builds read the same sources.

What is compared, and why not more:
- customer_id: identity mints stable ids as runs go, so the two builds name the same person differently; the nightly
  build's ids are mapped to the full build's through the records both hold (the mapping must be one-to-one).
- Results that break ties by customer_id (RFM quintiles, backtest deciles) depend on those names, not on the
  nightly mechanism, and are left out; everything else about those tables is compared.
- History tables hold one snapshot per run date and are compared on day N; what is about the change between runs
  (segment transitions, identity changes, the merges and splits of identity_summary) has no counterpart in a
  single build.
- A fit that ended on a flat ridge of its likelihood (a parameter on the optimiser's bound) has no unique optimum:
  only its log-likelihood is compared. The fits the scores use are compared to 1e-6 like every float.
Floating-point values compare within a relative 1e-6 (a warm-started fit stops at the same optimum to within the
optimiser's tolerance, not bit for bit), the rest exactly.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from pipeline.lib.demo_data import DemoConfig, generate
from pipeline.settings import load_settings
from tests.support.dbt_cli import run_dbt
from tests.support.pipeline_run import run_on

# END is a Monday, a schedule date of the weekly CLV backtest (clv.backtest.every_days): the nightly run computes it.
START, END = date(2025, 6, 1), date(2026, 3, 9)
CUSTOMERS = 300
SNAPSHOT_TABLES = {
    "customer_segment_history": "snapshot_date",
    "customer_equity_history": "snapshot_date",
    "identity_summary": "snapshot_date",
    "identity_violations": "run_date",
}
BETWEEN_RUNS_TABLES = {"segment_transitions", "identity_changes"}
NAME_DEPENDENT = {
    "customer_rfm": pl.all().exclude("r_score", "f_score", "m_score", "rfm_code", "rfm_segment"),
    "clv_backtest": pl.all(),
}
NAME_DEPENDENT_ROWS = {"clv_backtest": pl.col("grouping") != "decile"}
# Counts of what changed since the previous run.
BETWEEN_RUNS_COLUMNS = {"identity_summary": pl.all().exclude("merges", "splits")}
# When a fit ran, when a record was staged and resolved (the watermarks of the incremental fact tables) and by which
# dbt run.
VOLATILE_COLUMNS = {"fitted_at", "_loaded_at", "_resolution", "_invocation_id"}


def _identity_names(full: Path, nightly: Path) -> dict[str, str]:
    """The nightly build's customer_id -> the full build's, through the source records both resolved."""
    with duckdb.connect() as con:
        con.execute(f"attach '{full}' as full_build (read_only)")
        con.execute(f"attach '{nightly}' as nightly_build (read_only)")
        pairs = con.execute("""
            select distinct n.customer_id, f.customer_id
            from nightly_build.intermediate.int_identity_map as n
            full join full_build.intermediate.int_identity_map as f using (source, record_id)
            where n.customer_id is not null or f.customer_id is not null""").fetchall()
    names = dict(pairs)
    assert len(names) == len(pairs) == len(set(names.values())), "the builds resolved different persons"
    return names


def _fit_params(frame: pl.DataFrame) -> pl.DataFrame:
    """clv_model_params without the iteration counts (how the run went), and only the log-likelihood of a fit on a
    flat ridge."""
    on_ridge = frame.filter((pl.col("param") == "at_bounds") & (pl.col("value") == 1))["model"]
    frame = frame.filter(pl.col("param") != "iterations")
    keep = pl.col("model").is_in(on_ridge.implode()).not_() | pl.col("param").is_in(["log_likelihood", "n_customers"])
    return frame.filter(keep).drop("converged")


def _marts(warehouse: Path, names: dict[str, str] | None = None) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        tables = [
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        ]
        marts = {}
        for name in sorted(set(tables) - BETWEEN_RUNS_TABLES):
            frame = con.execute(f'select * from marts."{name}"').pl()
            frame = frame.drop(VOLATILE_COLUMNS & set(frame.columns))
            if name in SNAPSHOT_TABLES:
                frame = frame.filter(pl.col(SNAPSHOT_TABLES[name]) == END)
            if name == "clv_model_params":
                frame = _fit_params(frame)
            frame = frame.filter(NAME_DEPENDENT_ROWS.get(name, True)).select(NAME_DEPENDENT.get(name, pl.all()))
            frame = frame.select(BETWEEN_RUNS_COLUMNS.get(name, pl.all()))
            if names and "customer_id" in frame.columns:
                frame = frame.with_columns(pl.col("customer_id").replace_strict(names, default=None))
            marts[name] = frame
        return marts


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns by name, rows sorted by the exact columns first (floats last, so float noise cannot reorder rows)."""
    columns = sorted(frame.columns)
    exact = [c for c in columns if not frame.schema[c].is_float()]
    floats = [c for c in columns if frame.schema[c].is_float()]
    sortable = [c for c in exact + floats if not isinstance(frame.schema[c], pl.List | pl.Struct)]
    return frame.select(columns).sort(sortable, nulls_last=True)


def assert_same_marts(full: Path, nightly: Path) -> None:
    expected, actual = _marts(full), _marts(nightly, _identity_names(full, nightly))
    assert expected.keys() == actual.keys()
    assert expected["customer_profile"].height > 0
    for name in expected:
        assert expected[name].height > 0 or name == "identity_summary", (
            f"{name} is empty: the comparison proves nothing"
        )
        try:
            assert_frame_equal(_canonical(actual[name]), _canonical(expected[name]), rel_tol=1e-6, abs_tol=1e-9)
        except AssertionError as exc:
            raise AssertionError(f"marts.{name}: {exc}") from None


def _backtest_date(data_dir: Path) -> date:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select max(as_of_date) from marts.clv_backtest").fetchone()[0]


def test_full_build_equals_previous_build_plus_nightly_run(tmp_path):
    full_dir, nightly_dir = tmp_path / "full", tmp_path / "nightly"
    generate(DemoConfig(customers=CUSTOMERS, start_date=START, end_date=END), full_dir / "demo")
    shutil.copytree(full_dir / "demo", nightly_dir / "demo")
    run_on(full_dir, START, END)
    # The same sources: the first build lands days 1..N-1, the nightly run day N.
    run_on(nightly_dir, START, END - timedelta(days=1))
    assert _backtest_date(nightly_dir) == END - timedelta(days=7)
    run_on(nightly_dir, END, END)
    assert _backtest_date(nightly_dir) == END
    with duckdb.connect(str(nightly_dir / "warehouse.duckdb"), read_only=True) as con:
        recomputed, customers = con.execute("""
            select count(*) filter (where _loaded_through = last_run), count(*)
            from intermediate.int_customer_traits,
                (select max(_loaded_through) as last_run from intermediate.int_customer_traits)""").fetchone()
    assert 0 < recomputed < customers / 2, "the nightly run should recompute the day's customers, not everyone"
    with duckdb.connect(str(nightly_dir / "warehouse.duckdb"), read_only=True) as con:
        # the incremental Python models' new rows (dbt-duckdb's <model>__dbt_tmp<timestamp>) are gone
        leftovers = con.execute("select table_name from duckdb_tables() where contains(table_name, '__dbt_tmp')")
        assert leftovers.fetchall() == []
    assert_same_marts(full_dir / "warehouse.duckdb", nightly_dir / "warehouse.duckdb")


def test_traits_written_by_another_version_of_the_model_are_recomputed(demo_run, tmp_path):
    """int_customer_traits keeps rows between runs, so a changed model file (new rules, new columns) must not leave
    rows of the old one behind: a nightly run recomputes every row another version wrote, nothing else."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_run.warehouse, warehouse)
    variables = json.dumps({**load_settings().dbt_vars(warehouse), "run_date": demo_run.end.isoformat()})
    count_sql = """select count(*) filter (where order_count = -1), count(*) filter (where _model_checksum = 'old'),
        count(*) from intermediate.int_customer_traits"""

    def rebuild_traits() -> tuple[int, int, int]:
        result = run_dbt(warehouse, "run", "--select", "int_customer_traits", "--vars", variables)
        assert result.returncode == 0, result.stdout[-3000:]
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(count_sql).fetchone()

    # Every row marked wrong; a third of them written by an "old" version of the file.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update intermediate.int_customer_traits set order_count = -1")
        con.execute(
            "update intermediate.int_customer_traits set _model_checksum = 'old' where hash(customer_id) % 3 = 0"
        )
        old, customers = con.execute(count_sql).fetchone()[1:]
    assert 0 < old < customers
    # Nothing new was staged: only the old version's rows are recomputed.
    assert rebuild_traits() == (customers - old, 0, customers)
    # A table from before the checksum column: everyone is recomputed.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table intermediate.int_customer_traits drop column _model_checksum")
    assert rebuild_traits() == (0, 0, customers)
