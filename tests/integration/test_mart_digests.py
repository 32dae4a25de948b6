"""Behaviour check of refactorings: every mart table of the default demo run matches the recorded digests.

The fixture `mart_digests.json` holds the digests of the default demo (`tests/integration/mart_digest.py` says
how they are computed). A change of what the pipeline outputs fails here; when the change is intended, regenerate
the fixture with `make mart-digests` and say so in the commit message.
"""

import json

import duckdb

from pipeline.lib import equity
from pipeline.settings import load_settings
from tests.integration.mart_digest import FIXTURE, differences, mart_digests


def test_every_mart_table_matches_the_recorded_digest(demo_run):
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert differences(expected, mart_digests(demo_run.warehouse)) == []


def test_every_mart_is_as_of_the_runs_last_partition(demo_run):
    """The run date of every mart is the run's last partition: no as-of or history row is dated after it. The CLV
    backtest is measured as of its schedule date on or before it (clv.backtest.every_days)."""
    with duckdb.connect(str(demo_run.warehouse), read_only=True) as con:
        dated = con.execute("""
            select table_name, column_name from information_schema.columns
            where table_schema = 'marts' and column_name in ('as_of_date', 'snapshot_date', 'run_date')""").fetchall()
        latest = {
            f"{table}.{column}": con.execute(f'select max("{column}") from marts."{table}"').fetchone()[0]
            for table, column in dated
        }
    assert {
        "customer_profile.as_of_date",
        "customer_segment_history.snapshot_date",
        "customer_equity_history.snapshot_date",
        "identity_summary.snapshot_date",
    } <= latest.keys()
    backtest_date = equity.backtest_as_of(demo_run.end, load_settings().section("clv")["backtest"]["every_days"])
    assert latest.pop("clv_backtest.as_of_date") == backtest_date
    assert set(latest.values()) == {demo_run.end}
