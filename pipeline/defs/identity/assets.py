"""The identity summary: how many persons the identity graph found, how much it merged and what it cut."""

import dagster as dg
import polars as pl

from pipeline.defs.resources import WarehouseResource
from pipeline.lib.metadata import markdown_table
from pipeline.lib.warehouse import read_frame, replace_snapshot

CLUSTER_SIZE_BUCKETS = (
    "case when n = 1 then '1' when n <= 3 then '2-3' when n <= 10 then '4-10' when n <= 50 then '11-50' else '51+' end"
)


@dg.asset(
    key=["marts", "identity_summary"],
    group_name="identity",
    deps=[
        dg.AssetKey(["intermediate", "int_identity_map"]),
        dg.AssetKey(["marts", "identity_violations"]),
        dg.AssetKey(["marts", "identity_changes"]),
    ],
    pool="warehouse",
    description="Persons, records, merge rate, cluster sizes, cut identifiers and id changes of the latest identity "
    "run; one row per run date in marts.identity_summary.",
)
def identity_summary(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        run_date = con.execute("select max(run_date) from intermediate.int_identity_map").fetchone()[0]
        summary = read_frame(
            con,
            """
            select count(*) as records, count(distinct customer_id) as persons,
                   1 - count(distinct customer_id) / count(*) as merge_rate
            from intermediate.int_identity_map""",
        )
        sizes = read_frame(
            con,
            f"""
            select {CLUSTER_SIZE_BUCKETS} as records_per_person, count(*) as persons, max(n) as largest
            from (select customer_id, count(*) as n from intermediate.int_identity_map group by 1)
            group by 1 order by min(n)""",
        )
        violations = read_frame(
            con,
            """
            select reason, id_type, count(*) as identifiers, sum(records) as records
            from marts.identity_violations where run_date = (select max(run_date) from marts.identity_violations)
            group by all order by identifiers desc""",
        )
        changes = read_frame(
            con,
            """
            select change_type, count(*) as changes, sum(records) as records
            from marts.identity_changes where run_date = (select max(run_date) from marts.identity_changes)
            group by 1 order by 1""",
        )
        row = summary.with_columns(
            violations=pl.lit(int(violations["identifiers"].sum() or 0)),
            merges=pl.lit(int(changes.filter(pl.col("change_type") == "merge")["changes"].sum() or 0)),
            splits=pl.lit(int(changes.filter(pl.col("change_type") == "split")["changes"].sum() or 0)),
            largest_cluster=pl.lit(int(sizes["largest"].max() or 0)),
        )
        replace_snapshot(con, "marts.identity_summary", row, run_date)
    values = row.row(0, named=True)
    return dg.MaterializeResult(
        metadata={
            "run_date": str(run_date),
            "persons": int(values["persons"]),
            "records": int(values["records"]),
            "merge_rate": float(values["merge_rate"]),
            "violations": values["violations"],
            "merges": values["merges"],
            "splits": values["splits"],
            "cluster_sizes": dg.MetadataValue.md(markdown_table(sizes)),
            "violations_by_reason": dg.MetadataValue.md(markdown_table(violations)),
            "identity_changes": dg.MetadataValue.md(markdown_table(changes)),
        }
    )
