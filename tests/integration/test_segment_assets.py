"""The segment assets end to end on a real DuckDB file: tables, metadata, history snapshots and transitions."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import duckdb

from pipeline.defs.resources import resources_for
from pipeline.lib import segments as seg
from pipeline.lib.warehouse import connect, replace_table
from tests.support.planted_segments import (
    AS_OF,
    PURCHASES,
    make_orders,
    make_profile,
)


def test_assets_materialize_against_a_duckdb_warehouse(tmp_path, profile, orders, rules):
    from pipeline.defs.segments.assets import SEGMENT_ASSETS

    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as con:
        replace_table(con, "marts.customer_profile", profile)
        replace_table(con, "marts.fct_orders", orders)

    instance = dg.DagsterInstance.ephemeral()  # one instance for the three runs keeps the test quick
    result = dg.materialize(SEGMENT_ASSETS, instance=instance, resources=resources_for(warehouse_file=warehouse))
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute("select * from marts.customer_segments order by customer_id").pl()
        assert stored.equals(seg.assign_segments(profile, orders, rules, AS_OF))
        assert con.execute("select count(*) from marts.customer_rfm").fetchone()[0] == len(PURCHASES)
        assert con.execute("select shape from marts.customer_base_shape").fetchone()[0] == "tall"
        assert con.execute("select count(*) from marts.segment_transitions").fetchone()[0] == 0

    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", "customer_segments"])
    ]
    metadata = event.materialization.metadata
    assert "| prospect | 3 |" in metadata["segment_sizes"].value
    assert metadata["flag_occasional"].value == 3

    # Same run date again: the history keeps one snapshot.
    assert dg.materialize(SEGMENT_ASSETS, instance=instance, resources=resources_for(warehouse_file=warehouse)).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from marts.customer_segment_history").fetchone()[0] == profile.height

    # A month later PROSPECT_ACCOUNT has bought for the first time: a second snapshot. With 11 buyers the top
    # 20% by percentile rank (rank / buyers > 0.8) now reaches PROMO, the 9th of 11.
    later = AS_OF + timedelta(days=31)
    later_orders = make_orders({**PURCHASES, "PROSPECT_ACCOUNT": [(-26, 1e5, False)]})
    with connect(warehouse) as con:
        replace_table(con, "marts.customer_profile", make_profile(later_orders, as_of=later))
        replace_table(con, "marts.fct_orders", later_orders)
    assert dg.materialize(SEGMENT_ASSETS, instance=instance, resources=resources_for(warehouse_file=warehouse)).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        snapshots = con.execute("""select snapshot_date, count(*) from marts.customer_segment_history
                                   group by all order by 1""").fetchall()
        assert snapshots == [(AS_OF, profile.height), (later, profile.height)]
        transitions = con.execute(
            """select from_segment, to_segment, customers from marts.segment_transitions
                                     where from_date = ? and to_date = ?""",
            [AS_OF, later],
        ).fetchall()
    assert sorted(row for row in transitions if row[0] != row[1]) == [
        ("promo_driven", "high_value", 1),
        ("prospect", "new", 1),
    ]
    assert sum(row[2] for row in transitions) == profile.height
