"""Every candidate pair of profiles (joined only by a shared or limit-breaking value) with the matcher's decision.

One row per pair: the shared value, the match probability and weight, the level each comparison reached (the
evidence: first name, last name, city, email, activity period) and whether the pair is linked (probability at or
above identity.match_probability, and no link joins two profiles scored apart). Linked pairs join persons in
int_identity_components.

Only profiles int_identity_links resolved after the previous decisions are scored again; the rest keep their
decisions, unless the matcher's model changed (or a full rebuild): then every pair is scored.
"""

import hashlib
import json

import polars as pl


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import IdentityRules, duckdb_limits
    from pipeline.lib.identity_matching import match_profiles
    from pipeline.lib.warehouse import table_exists

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    stored = dbt.ref("int_identity_match_model").pl().get_column("model")[0]
    model_digest = hashlib.md5(stored.encode()).hexdigest()
    previous = None
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    if not full_rebuild and table_exists(session, f"{dbt.this.schema}.{dbt.this.identifier}"):
        kept = session.sql(f"select * from {dbt.this}").pl()
        if "model_digest" in kept.columns and set(kept.get_column("model_digest").unique()) == {model_digest}:
            previous = kept.drop("model_digest")
    links, records, identifiers = (
        dbt.ref("int_identity_links"),
        dbt.ref("int_identity_records"),
        dbt.ref("int_identifiers"),
    )
    settled = None
    if previous is not None and previous.height:
        # Only link rows newer than the kept decisions, and their records, leave the warehouse.
        seen = int(previous.get_column("resolution").max())
        settled = links.filter(f"resolution <= {seen}").project("source, record_id").distinct().pl()
        links = links.filter(f"resolution > {seen}")
        keys = links.project("source, record_id").distinct()
        records, identifiers = (
            records.join(keys, "source, record_id", how="semi"),
            identifiers.join(keys, "source, record_id", how="semi"),
        )
    decisions = match_profiles(
        links.pl(),
        records.pl(),
        identifiers.pl(),
        json.loads(stored),
        rules.match_probability,
        previous,
        settled,
        duckdb_config=duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory")),
    )
    return decisions.with_columns(model_digest=pl.lit(model_digest)).to_arrow()
