"""Audit: customer ids created, merged or split on each run date (a rerun of a date replaces that date's rows)."""


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="delete+insert", unique_key="run_date")
    from pipeline.lib.identity import describe_changes

    mapped = dbt.ref("int_identity_map").pl()
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    return describe_changes(mapped, run_date).to_arrow()
