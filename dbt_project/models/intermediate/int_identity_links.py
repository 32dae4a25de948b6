"""Every staged record with each usable identifier it carries and whether the identity rules let it link.

The rules (pipeline/lib/identity.py) decide value by value in priority order: a value that is shared (names
disagree, too many accounts) or would break a limit links nothing and carries its reason and evidence. A record
without any usable identifier has one row with a null identifier. `profile_key` names the profile the rules alone
make (the matcher's unit, int_identity_matches); the persons are the connected components of the linking rows and
the matcher's links (int_identity_components).

Nightly runs resolve again only the neighbourhoods that new, changed or gone records touch (identity.relink);
the other rows of the previous table stay as they are and never leave the warehouse. A full rebuild
(`--vars '{identity_full_rebuild: true}'`), other rules or a first run resolve everything, a batch of whole
neighbourhoods at a time (identity.resolve_in_batches), so their memory does not grow with the history.
`resolution` numbers the run that resolved a row, so the later steps redo only what is newer than what they saw.
"""

import json

import duckdb


def previous_links(session, this, rules_digest):
    """Whether the table as the last run left it can be kept in part: (exists in today's layout, its rules are
    today's)."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, f"{this.schema}.{this.identifier}"):
        return False, False
    if not {"resolution", "rules_digest"} <= set(session.sql(f"select * from {this} limit 0").columns):
        return False, False
    other_rules = session.execute(
        f"select count(*) from {this} where rules_digest is distinct from ?", [rules_digest]
    ).fetchone()[0]
    return True, other_rules == 0


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import LINK_SCHEMA, IdentityRules, duckdb_limits, relink

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    exists, same_rules = previous_links(session, dbt.this, rules.digest())
    # What the rules read, as views of this session: a usable value's raw spelling is not read (only rejected ones
    # are listed with theirs).
    identifiers = dbt.ref("int_identifiers")
    records = dbt.ref("int_identity_records")
    usable = "source, record_id, id_type, value, status, reason, if(status <> 'ok', raw_value, null) as raw_value"
    session.execute("create or replace temp view identity_identifiers as " + identifiers.project(usable).sql_query())
    session.execute("create or replace temp view identity_records as " + records.sql_query())
    fresh, replaced = relink(
        session,
        "identity_identifiers",
        "identity_records",
        rules,
        str(dbt.this) if exists else None,
        resolve_all=full_rebuild or not same_rules,
        duckdb_config=duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory")),
    )
    # A full build's rows (resolve_in_batches) stay in this session's DuckDB: dbt copies the table from there.
    columns = ", ".join([*LINK_SCHEMA, "rules_digest"])
    fresh = fresh.select(duckdb.StarExpression(), duckdb.ConstantExpression(rules.digest()).alias("rules_digest"))
    if replaced is None:
        return fresh
    # A nightly run: the rows of the records left alone never leave the warehouse.
    session.register("identity_replaced_records", replaced.to_arrow())
    return session.sql(f"""
        select {columns} from {dbt.this} anti join identity_replaced_records using (source, record_id)
        union all
        select {columns} from ({fresh.sql_query()})""")
