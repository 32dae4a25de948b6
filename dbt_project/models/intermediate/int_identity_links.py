"""Every staged record with each usable identifier it carries and whether the identity rules let it link.

The rules (pipeline/lib/identity.py) decide value by value in priority order: a value that is shared (names
disagree, too many accounts) or would break a limit links nothing and carries its reason and evidence. A record
without any usable identifier has one row with a null identifier. `profile_key` names the profile the rules alone
make (the matcher's unit, int_identity_matches); the persons are the connected components of the linking rows and
the matcher's links (int_identity_components).
"""

import json

import polars as pl


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, resolve_identities

    records = dbt.ref("int_identity_records").pl()
    identifiers = dbt.ref("int_identifiers").pl()
    links = resolve_identities(
        identifiers, records, IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    ).links
    bare = records.select("source", "record_id").unique().join(links, on=["source", "record_id"], how="anti")
    return pl.concat([links, bare], how="diagonal").to_arrow()
