"""One row per source record x identifier it carries, with the value normalised (email lower-cased, phone E.164).

Rows whose value is junk or malformed stay in the table with status 'invalid' or 'blocklisted' (value null), so the
identity_violations report can count them; only status 'ok' rows link records.
"""

import json

import polars as pl

# (source, staging model, record id column, {identifier type: column})
EXTRACTS = [
    (
        "webshop_customer",
        "stg_webshop__customers",
        "customer_id",
        {"webshop_customer_id": "customer_id", "email": "email", "phone": "phone"},
    ),
    (
        "webshop_order",
        "stg_webshop__orders",
        "order_id",
        {"order_id": "order_id", "webshop_customer_id": "customer_id", "email": "guest_email", "phone": "guest_phone"},
    ),
    (
        "helpdesk_ticket",
        "stg_helpdesk__tickets",
        "ticket_id",
        {
            "helpdesk_requester_id": "requester_id",
            "email": "requester_email",
            "phone": "requester_phone",
            "order_id": "order_ref",
        },
    ),
    (
        "survey_response",
        "stg_survey__responses",
        "response_id",
        {"email": "email", "phone": "phone", "order_id": "order_ref"},
    ),
]


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, normalise_identifiers

    # dbt only sees refs written as literals
    models = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    parts = []
    for source, ref_name, record_col, columns in EXTRACTS:
        staged = models[ref_name].select(", ".join(sorted({record_col, *columns.values()}))).pl()
        parts += [
            staged.select(
                source=pl.lit(source),
                record_id=pl.col(record_col).cast(pl.Utf8),
                id_type=pl.lit(id_type),
                raw_value=pl.col(column).cast(pl.Utf8),
            )
            for id_type, column in columns.items()
        ]
    raw = pl.concat(parts)
    known_phones = dbt.ref("int_phone_numbers").pl()
    return (
        normalise_identifiers(
            raw, IdentityRules.from_config(json.loads(dbt.config.get("identity_rules"))), known_phones
        )
        .sort("source", "record_id", "id_type")
        .to_arrow()
    )
