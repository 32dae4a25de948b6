"""One row per source record x identifier it carries, with the value made canonical (pipeline/lib/identity.py).

Rows whose value is junk or malformed stay with status 'invalid' or 'blocklisted', a null value and the reason, so
identity_violations counts every rejected value; only status 'ok' rows can link records.
"""

import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, extract_identifiers, normalise_identifiers, read_staged

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    raw, _ = extract_identifiers(read_staged(staged))
    known_phones = dbt.ref("int_phone_numbers").pl()
    return normalise_identifiers(
        raw, IdentityRules.from_config(json.loads(dbt.config.get("identity_rules"))), known_phones
    ).to_arrow()
