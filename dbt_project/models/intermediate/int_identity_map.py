"""Every source record -> its stable customer_id (plus the id it had before this run, for the change audit); null
for records of no person (int_identity_components.is_person).

Ids survive between runs: the previous version of this table is read before dbt replaces it. Rerunning the same
run date starts again from the ids before that date, so a rerun is idempotent. `--vars '{identity_full_rebuild: true}'`
ignores all earlier ids.
"""

import polars as pl


def previous_mapping(session, this, run_date):
    """(baseline mapping, ids to never mint again) from the table as it stands before this run, or (None, None)."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, f"{this.schema}.{this.identifier}"):
        return None, None
    current = session.sql(f"select source, record_id, customer_id, previous_customer_id, run_date from {this}").pl()
    same_run = current.filter(pl.col("run_date") == run_date).height == current.height and current.height > 0
    before = current.get_column("previous_customer_id").drop_nulls()
    if same_run:  # ids minted earlier on this same run date are minted again, identically
        return current.select("source", "record_id", customer_id="previous_customer_id").drop_nulls(
            "customer_id"
        ), before
    return current.select("source", "record_id", "customer_id"), pl.concat([current.get_column("customer_id"), before])


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import assign_stable_ids, duckdb_limits

    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    components = dbt.ref("int_identity_components").pl()
    clusters = components.filter("is_person").select("source", "record_id", "cluster_key")
    # Records of no person (no linking identifier) stay in the map without a customer id.
    anonymous = components.filter(~pl.col("is_person")).select(
        "source", "record_id", customer_id=pl.lit(None, pl.Utf8), previous_customer_id=pl.lit(None, pl.Utf8)
    )

    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    baseline, issued = (None, None) if full_rebuild else previous_mapping(session, dbt.this, run_date)
    limits = duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory"))
    mapped = pl.concat([assign_stable_ids(clusters, baseline, issued, limits), anonymous])
    return mapped.with_columns(run_date=pl.lit(run_date, pl.Date)).to_arrow()
