"""Every candidate pair of profiles (joined only by a shared or limit-breaking value) with the matcher's decision.

One row per pair: the shared value, the match probability and weight, the level each comparison reached (the
evidence: first name, last name, city, email, activity period) and whether the pair is linked (probability at or
above identity.match_probability, and no link joins two profiles scored apart). Linked pairs join persons in
int_identity_components.

Incremental by profile (delete+insert by left_key): only profiles int_identity_links resolved after the table's
newest `resolution` are scored again (a pair never leaves a neighbourhood, and a touched neighbourhood is resolved
again whole); the decisions of every other profile never leave the warehouse. A profile whose record was resolved
again, or is gone, and has no pair today gets a tombstone (its left_key, a null model_digest: macro
delete_identity_tombstones). A night that writes no decision leaves that watermark where it was, so the next night
scores those profiles again, to the same decisions. Another matcher model or a full rebuild scores every pair.
"""

import hashlib
import json

import polars as pl


def stale_profiles(session, this, seen, links, records):
    """left_key of the profiles `this` (None: no table yet) names whose decisions go: every one when `seen` is None
    (all pairs are scored), else those whose record was resolved after `seen` (with its whole neighbourhood) or is
    gone (int_identity_records holds every record, in fewer rows than the links)."""
    if this is None:
        return pl.DataFrame(schema={"left_key": pl.Utf8})
    if seen is None:
        return session.sql(f"select distinct left_key from {this}").pl()
    # a left_key is source:record_id (source names hold no colon): split on these few keys, not joined on keys built
    # for every link row
    session.execute(
        "create or replace temp table identity_named as select split_part(left_key, ':', 1) as source, "
        f"left_key[strpos(left_key, ':') + 1:] as record_id from (select distinct left_key from {this})"
    )
    named = session.table("identity_named").set_alias("named")
    present = records.project("source, record_id").set_alias("present").join(named, "source, record_id", "semi")
    resolved = links.filter(f"resolution > {seen}").project("source, record_id").set_alias("resolved")
    stale = named.join(present, "source, record_id", how="anti").union(
        named.join(resolved, "source, record_id", how="semi")
    )
    keys = stale.project("source || ':' || record_id as left_key").pl()
    session.execute("drop table identity_named")
    return keys


def model(dbt, session):
    # identity_full_rebuild and the tombstones' post-hook come from the YAML config
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key="left_key",
        on_schema_change="sync_all_columns",
    )
    from pipeline.lib.identity import DUCKDB_SHARE_BESIDE_FRAMES, IdentityRules, duckdb_limits
    from pipeline.lib.identity_matching import candidate_rows, chunked_candidate_entities, decide, match_profiles
    from pipeline.lib.warehouse import memory_share, table_exists

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    stored = dbt.ref("int_identity_match_model").pl().get_column("model")[0]
    model_digest = hashlib.md5(stored.encode()).hexdigest()
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    exists = table_exists(session, this)
    seen = None
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    if exists and not full_rebuild and "model_digest" in session.table(this).columns:
        rows, other_models, newest_seen = session.execute(
            f"select count(*), count(*) filter (where model_digest is distinct from ?), max(resolution) from {this}",
            [model_digest],
        ).fetchone()
        if rows and not other_models:
            seen = newest_seen
    links, records, identifiers = (
        dbt.ref("int_identity_links"),
        dbt.ref("int_identity_records"),
        dbt.ref("int_identifiers"),
    )
    newest = links.aggregate("max(resolution)").fetchone()[0]
    gone = stale_profiles(session, this if exists else None, seen, links, records)
    limits = duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory"))
    if seen is None:
        # Every pair is scored: the entities are built a group of whole neighbourhoods at a time, with the
        # warehouse's DuckDB at a share of its memory beside the frames.
        with memory_share(session, limits["memory_limit"], DUCKDB_SHARE_BESIDE_FRAMES):
            entities = chunked_candidate_entities(session, links, records, identifiers)
            decisions = decide(entities, json.loads(stored), rules.match_probability, limits)
    else:
        decisions = match_profiles(
            *candidate_rows(session, links.filter(f"resolution > {seen}"), records, identifiers),
            json.loads(stored),
            rules.match_probability,
            duckdb_config=limits,
        )
    decisions = decisions.with_columns(resolution=pl.lit(newest, pl.Int64), model_digest=pl.lit(model_digest))
    gone = gone.join(decisions.select("left_key").unique(), on="left_key", how="anti")
    return pl.concat([decisions, gone], how="diagonal_relaxed").to_arrow()
