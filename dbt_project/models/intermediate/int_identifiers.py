"""One row per source record x identifier it carries, with the value made canonical (pipeline/lib/identity.py).

Rows whose value is junk or malformed stay with status 'invalid' or 'blocklisted', a null value and the reason, so
identity_violations counts every rejected value; only status 'ok' rows can link records.

The rows never leave the warehouse: only distinct spellings that need it are normalised in Python
(identity.normalised_rows), then joined back there.
"""

import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, identifier_rows, normalised_rows

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    return normalised_rows(session, identifier_rows(staged), rules, dbt.ref("int_phone_numbers").pl())
