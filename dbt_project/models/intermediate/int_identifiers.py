"""One row per source record x identifier it carries, with the value made canonical (pipeline/lib/identity.py).

Rows whose value is junk or malformed stay with status 'invalid' or 'blocklisted', a null value and the reason, so
identity_violations counts every rejected value; only status 'ok' rows can link records.

The rows never leave the warehouse: only the distinct spellings are normalised in Python, then joined back here.
"""

import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, identifier_lookup, identifier_rows

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    rows = identifier_rows(staged)
    known_phones = dbt.ref("int_phone_numbers").pl()
    lookup = identifier_lookup(
        rows.project("id_type, raw_value").distinct().pl(),
        IdentityRules.from_config(json.loads(dbt.config.get("identity_rules"))),
        known_phones,
    )
    # A temporary table, so the lookup is DuckDB's memory (bounded, spillable) rather than a Python frame's.
    session.register("identity_lookup_frame", lookup.to_arrow())
    session.execute("create or replace temp table identity_value_lookup as select * from identity_lookup_frame")
    session.unregister("identity_lookup_frame")
    del lookup, known_phones
    return (
        rows.set_alias("row")
        .join(
            session.table("identity_value_lookup").set_alias("lookup"),
            "row.id_type = lookup.id_type and row.raw_value = lookup.raw_value",
            how="left",
        )
        .project("row.source, row.record_id, row.id_type, row.raw_value, lookup.value, lookup.status, lookup.reason")
    )
