"""Every staged record with each usable identifier it carries and whether the identity rules let it link.

The rules (pipeline/lib/identity.py) decide value by value in priority order: a value that is shared (names
disagree, too many accounts) or would break a limit links nothing and carries its reason and evidence. A record
without any usable identifier has one row with a null identifier. `profile_key` names the profile the rules alone
make (the matcher's unit, int_identity_matches); the persons are the connected components of the linking rows and
the matcher's links (int_identity_components).

Nightly runs resolve again only the neighbourhoods that new, changed or gone records touch (identity.link_records)
and keep the other rows of the previous table; a full rebuild (`--vars '{identity_full_rebuild: true}'`), other
rules or a first run resolve everything. `resolution` numbers the run that resolved a row, so the later steps redo
only what is newer than what they saw.
"""

import json

import polars as pl


def previous_links(session, this, rules_digest):
    """The table as the last run left it, or None (none yet, or of an older layout); with whether its rules are
    today's."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, f"{this.schema}.{this.identifier}"):
        return None, False
    previous = session.sql(f"select * from {this}").pl()
    if "resolution" not in previous.columns:
        return None, False
    same_rules = previous.height == 0 or set(previous.get_column("rules_digest").unique()) == {rules_digest}
    return previous.drop("rules_digest"), same_rules


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import IdentityRules, duckdb_limits, link_records

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    previous, same_rules = previous_links(session, dbt.this, rules.digest())
    links = link_records(
        dbt.ref("int_identifiers").pl(),
        dbt.ref("int_identity_records").pl(),
        rules,
        previous,
        resolve_all=full_rebuild or not same_rules,
        duckdb_config=duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory")),
    )
    return links.with_columns(rules_digest=pl.lit(rules.digest())).to_arrow()
