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
    from pipeline.lib.identity import DUCKDB_SHARE_BESIDE_FRAMES, IdentityRules, duckdb_limits
    from pipeline.lib.identity_matching import candidate_rows, chunked_candidate_entities, decide, match_profiles
    from pipeline.lib.warehouse import memory_share, table_exists

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
    newest = links.aggregate("max(resolution)").fetchone()[0]
    settled = None
    if previous is not None and previous.height:
        # Only link rows newer than the kept decisions are matched again; of the older records, only those the kept
        # decisions name leave the warehouse.
        seen = int(previous.get_column("resolution").max())
        # a left_key is source:record_id (source names hold no colon): split on the few named keys, not joined
        # on keys built for every link row
        named = session.sql(
            "select distinct split_part(left_key, ':', 1) as source, left_key[strpos(left_key, ':') + 1:] as record_id "
            f"from {dbt.this}"
        ).set_alias("named")
        settled = (
            links.filter(f"resolution <= {seen}")
            .project("source, record_id")
            .set_alias("settled")
            .join(named, "source, record_id", how="semi")
            .pl()
        )
        links = links.filter(f"resolution > {seen}")
    limits = duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory"))
    if settled is None:
        # Every pair is scored: the entities are built a group of whole neighbourhoods at a time, with the
        # warehouse's DuckDB at a share of its memory beside the frames.
        with memory_share(session, limits["memory_limit"], DUCKDB_SHARE_BESIDE_FRAMES):
            entities = chunked_candidate_entities(session, links, records, identifiers)
            decisions = decide(entities, json.loads(stored), rules.match_probability, limits)
    else:
        decisions = match_profiles(
            *candidate_rows(session, links, records, identifiers),
            json.loads(stored),
            rules.match_probability,
            previous,
            settled,
            duckdb_config=limits,
        )
    # The newest resolution seen, though the rows read were only the candidates'.
    decisions = decisions.with_columns(resolution=pl.lit(newest, pl.Int64))
    return decisions.with_columns(model_digest=pl.lit(model_digest)).to_arrow()
