"""Every candidate pair of profiles (joined only by a shared or limit-breaking value) with the matcher's decision.

One row per pair: the shared value, the match probability and weight, the level each comparison reached (the
evidence: first name, last name, city, email, activity period) and whether the pair is linked (probability at or
above identity.match_probability, and no link joins two profiles scored apart). Linked pairs join persons in
int_identity_components.
"""

import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules
    from pipeline.lib.identity_matching import accept, candidate_entities, decisions_table, score

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    records = dbt.ref("int_identity_records").pl()
    entities = candidate_entities(dbt.ref("int_identity_links").pl(), records, dbt.ref("int_identifiers").pl())
    stored = dbt.ref("int_identity_match_model").pl()
    matcher = json.loads(stored.get_column("model")[0])
    return decisions_table(accept(score(entities, matcher), rules.match_probability)).to_arrow()
