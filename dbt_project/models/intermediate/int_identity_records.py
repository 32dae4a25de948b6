"""One row per staged record of a person with what the identity rules and the matcher read besides identifiers: the
name (parts joined), how trustworthy that name is (name_rank: an account's before a helpdesk display name), the city,
the day the record was seen and whether it states the person's current contacts (an account). Columns come from the
source registry (pipeline/lib/sources/registry.py: Column.match, event column). Built in the warehouse
(identity.record_rows): no row leaves it.

Incremental (delete+insert by record): a nightly run builds again only the records staged since the table was last
built (identity.restage), so it costs what the day brings. A full rebuild (`--vars '{identity_full_rebuild: true}'`)
builds every record again, with a tombstone for every old one (macro delete_identity_tombstones)."""

import duckdb


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key=["source", "record_id"],
        on_schema_change="sync_all_columns",
    )
    from pipeline.lib.identity import STAGED_UNTIL, record_rows, restage, staged_until, with_tombstones
    from pipeline.lib.warehouse import table_exists

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    until = staged_until(staged)
    changed, stale = restage(session, this if table_exists(session, this) else None, staged, full_rebuild)
    stamp = duckdb.ConstantExpression(until).cast(duckdb.sqltypes.TIMESTAMP).alias(STAGED_UNTIL)
    return with_tombstones(session, record_rows(changed).select(duckdb.StarExpression(), stamp), stale)
