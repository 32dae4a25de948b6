"""Every staged record with each usable identifier it carries and whether the identity rules let it link.

The rules (pipeline/lib/identity.py) decide value by value in priority order: a value that is shared (names
disagree, too many accounts) or would break a limit links nothing and carries its reason and evidence. A record
without any usable identifier has one row with a null identifier. `profile_key` names the profile the rules alone
make (the matcher's unit, int_identity_matches); the persons are the connected components of the linking rows and
the matcher's links (int_identity_components).

Incremental: a nightly run resolves again only the neighbourhoods that new, changed or gone records touch
(identity.relink). The candidates are the records int_identity_records or int_identifiers built again since this
table was (`staged_until`) and those erasure marked (fingerprint 0); only their fingerprints are compared, and their
rows are read from the rows staged since then (night_candidates), not searched for in the history. A
record whose only change is a day that changes no decision (an order's status, an account's update: redated_records)
keeps its rows with the new fingerprint and day (`seen_on`); a new record that joins a known profile without changing
a decision (a known customer's new order: attachable_records) gets its rows alone. dbt replaces the rows of the
records resolved again, redated or attached (delete+insert by record; a record gone has a tombstone: macro
delete_identity_tombstones); the other rows never leave the warehouse. A full rebuild (`--vars
'{identity_full_rebuild: true}'`), other rules or a first run resolve everything, a batch of whole neighbourhoods
at a time (identity.resolve_in_batches), so their memory does not grow with the history. `resolution` numbers the
run that resolved a row, so the later steps redo only what is newer than what they saw.
"""

import json

import duckdb


def previous_links(session, this, rules_digest):
    """Whether the table as the last run left it can be kept in part: (exists in today's layout, its rules are
    today's)."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, this):
        return False, False
    if not {"resolution", "rules_digest"} <= set(session.table(this).columns):
        return False, False
    other_rules = session.execute(
        f"select count(*) from {this} where rules_digest is distinct from ?", [rules_digest]
    ).fetchone()[0]
    return True, other_rules == 0


def night_candidates(session, this, seen, views):
    """(candidates, candidate rows) for relink: temp tables `identity_restaged_<name>` with the rows of the views
    (name -> (relation, select list), as identity_<name> reads them) staged since `seen` (the table's watermark), and
    `identity_candidates`: their records and those erasure marked (fingerprint 0). The staged rows hold every
    candidate's rows (a record staged since then was built again, all its rows stamped later), so relink need not
    search the history for them, unless erasure marked records, whose rows are older: the candidate rows are None
    then."""
    from pipeline.lib.identity import STAGED_UNTIL

    for name, (relation, columns) in views.items():
        session.execute(
            f"create or replace temp table identity_restaged_{name} as "
            f"select {columns} from ({relation.sql_query()}) where {STAGED_UNTIL} > $seen",
            {"seen": seen},
        )
    session.execute(
        f"create or replace temp table identity_marked as select source, record_id from {this} where fingerprint = 0"
    )
    session.execute(
        "create or replace temp table identity_candidates as select * from identity_marked "
        + "".join(f"union select source, record_id from identity_restaged_{name} " for name in views)
    )
    marked = session.execute("select count(*) from identity_marked").fetchone()[0]
    session.execute("drop table identity_marked")
    return "identity_candidates", None if marked else {name: f"identity_restaged_{name}" for name in views}


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key=["source", "record_id"],
        on_schema_change="sync_all_columns",
    )
    from pipeline.lib.identity import LINK_SCHEMA, STAGED_UNTIL, IdentityRules, duckdb_limits, relink, with_tombstones

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    exists, same_rules = previous_links(session, this, rules.digest())
    # What the rules read, as views of this session: a usable value's raw spelling is not read (only rejected ones
    # are listed with theirs).
    identifiers = dbt.ref("int_identifiers")
    records = dbt.ref("int_identity_records")
    views = {
        "identifiers": (
            identifiers,
            "source, record_id, id_type, value, status, reason, if(status <> 'ok', raw_value, null) as raw_value",
        ),
        "records": (records, f"* exclude ({STAGED_UNTIL})"),
    }
    for name, (relation, columns) in views.items():
        view = f"create or replace temp view identity_{name} as select {columns} from ({relation.sql_query()})"
        session.execute(view)
    # the newest staging load time the two inputs have seen, stored with the rows (the next run's watermark)
    stamps = [relation.aggregate(f"max({STAGED_UNTIL})").fetchone()[0] for relation in (identifiers, records)]
    until = max((stamp for stamp in stamps if stamp is not None), default=None)
    seen = candidates = candidate_rows = None
    if exists and STAGED_UNTIL in session.table(this).columns:
        seen = session.execute(f"select max({STAGED_UNTIL}) from {this}").fetchone()[0]
    if seen is not None:
        candidates, candidate_rows = night_candidates(session, this, seen, views)
    fresh, replaced = relink(
        session,
        "identity_identifiers",
        "identity_records",
        rules,
        this if exists else None,
        resolve_all=full_rebuild or not same_rules,
        duckdb_config=duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory")),
        candidates=candidates,
        candidate_rows=candidate_rows,
    )
    if seen is not None:
        for name in views:
            session.execute(f"drop table identity_restaged_{name}")
    rows = fresh.select(
        *(duckdb.ColumnExpression(column) for column in LINK_SCHEMA),
        duckdb.ConstantExpression(rules.digest()).alias("rules_digest"),
        duckdb.ConstantExpression(until).cast(duckdb.sqltypes.TIMESTAMP).alias(STAGED_UNTIL),
    )
    # Every old record is stale on a rebuild; on a nightly the ones resolved again or gone.
    stale = None
    if replaced is not None:
        session.register("identity_replaced_records", replaced.to_arrow())
        stale = session.table("identity_replaced_records")
    elif exists:
        stale = session.table(this).project("source, record_id").distinct()
    return with_tombstones(session, rows, stale)
