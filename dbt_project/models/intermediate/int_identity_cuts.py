"""The identifiers identity resolution does not use as links, each with its reason (see pipeline/lib/identity.py):
blocklisted, invalid, too_many_records, shared_identifier, oversized_cluster."""

import sys
from pathlib import Path


def model(dbt, session):
    dbt.config(materialized="table")
    for root in (Path.cwd(), Path.cwd().parent):  # dbt runs from the repo root or from dbt_project/
        if (root / "pipeline" / "lib").is_dir() and str(root) not in sys.path:
            sys.path.insert(0, str(root))
    from pipeline.lib.config import section
    from pipeline.lib.identity import IdentityRules, resolve_identities

    identifiers = dbt.ref("int_identifiers").pl()
    rules = IdentityRules.from_config(section("identity"))
    return resolve_identities(identifiers, identifiers.select("source", "record_id"), rules).violations.to_arrow()
