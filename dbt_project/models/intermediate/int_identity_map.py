"""Every source record -> its stable customer_id (plus the id it had before this run, for the change audit).

Ids survive between runs: the previous version of this table is read before dbt replaces it. Rerunning the same
run date starts again from the ids before that date, so a rerun is idempotent. `--vars '{identity_full_rebuild: true}'`
ignores all earlier ids.
"""

import json

import polars as pl

RECORD_KEYS = [
    ("webshop_customer", "stg_webshop__customers", "customer_id"),
    ("webshop_order", "stg_webshop__orders", "order_id"),
    ("helpdesk_ticket", "stg_helpdesk__tickets", "ticket_id"),
    ("survey_response", "stg_survey__responses", "response_id"),
]


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
    from pipeline.lib.identity import IdentityRules, assign_stable_ids, cluster_records

    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    # dbt only sees refs written as literals
    models = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    records = pl.concat(
        [
            models[ref_name].select(key).pl().select(source=pl.lit(source), record_id=pl.col(key).cast(pl.Utf8))
            for source, ref_name, key in RECORD_KEYS
        ]
    )
    identifiers = dbt.ref("int_identifiers").pl()
    cuts = dbt.ref("int_identity_cuts").pl()
    clusters = cluster_records(
        identifiers, records, cuts, IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    )

    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    baseline, issued = (None, None) if full_rebuild else previous_mapping(session, dbt.this, run_date)
    mapped = assign_stable_ids(clusters, baseline, issued)
    return mapped.with_columns(run_date=pl.lit(run_date, pl.Date)).to_arrow()
