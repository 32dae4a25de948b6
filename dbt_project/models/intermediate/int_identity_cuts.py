"""The identifiers identity resolution does not use as links, each with its reason (see pipeline/lib/identity.py):
blocklisted, invalid, too_many_records, shared_identifier, oversized_cluster."""

import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, resolve_identities

    identifiers = dbt.ref("int_identifiers").pl()
    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    return resolve_identities(identifiers, identifiers.select("source", "record_id"), rules).violations.to_arrow()
