"""One row per source record x identifier it carries, with the value made canonical (pipeline/lib/identity.py).

Rows whose value is junk or malformed stay with status 'invalid' or 'blocklisted', a null value and the reason, so
identity_violations counts every rejected value; only status 'ok' rows can link records.

The rows never leave the warehouse: only distinct spellings that need it are normalised in Python, a chunk at a
time (identity.normalised_rows), then joined back there. Incremental: a nightly run builds again only the records
staged since the table was last built (identity.restage; delete+insert by record, a tombstone per record that no
longer yields a row: macro delete_identity_tombstones), and spellings the table already looked up with the same
lookup rules (`normaliser`: identity.lookup_digest) are reused, so it normalises only new spellings. Other lookup
rules or a full rebuild (`--vars '{identity_full_rebuild: true}'`) build every record again.
"""

import json


def earlier_lookups(session, this, digest):
    """Whether the table as the last run left it holds lookups made as this run would make them."""
    if "normaliser" not in session.table(this).columns:
        return False
    other = session.execute(f"select count(*) from {this} where normaliser is distinct from ?", [digest]).fetchone()
    return other[0] == 0


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key=["source", "record_id"],
        on_schema_change="sync_all_columns",
    )
    from pipeline.lib.identity import (
        STAGED_UNTIL,
        IdentityRules,
        duckdb_limits,
        identifier_rows,
        lookup_digest,
        normalised_rows,
        restage,
        staged_until,
        with_tombstones,
    )
    from pipeline.lib.warehouse import table_exists

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    phones = dbt.ref("int_phone_numbers")
    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    digest = lookup_digest(rules)
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    exists = table_exists(session, this)
    reuse = exists and not full_rebuild and earlier_lookups(session, this, digest)
    until = staged_until(staged)
    changed, stale = restage(session, this if exists else None, staged, rebuild=not reuse)
    limits = duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory"))
    spelled = identifier_rows(changed)
    if reuse:  # a night's rows: only the parsed phones they spell leave the warehouse, not the history's
        spelled_phones = f"select raw_value from ({spelled.sql_query()}) where id_type = 'phone'"
        phones = phones.filter(f"raw_phone in ({spelled_phones})")
    rows = normalised_rows(session, spelled, rules, phones.pl(), this if reuse else None, limits)
    session.execute(
        f"create or replace temp table identity_lookup_rules as select ? as normaliser, ?::timestamp as {STAGED_UNTIL}",
        [digest, until],
    )
    return with_tombstones(session, rows.cross(session.table("identity_lookup_rules")), stale)
