"""Every source record -> its stable customer_id (plus the id it had before this run date, for the change audit);
null for records of no person (int_identity_components.is_person).

Incremental (delete+insert by record): only records whose components int_identity_components resolved after this
table was last built, and the other records of their clusters, are given ids again (a component never leaves the
neighbourhood that was resolved whole, and a record attached alone brings its cluster, so an old id's records are all
among them or all kept); the other rows stay as they are, with the run date that decided
them, and never leave the warehouse (identity.stable_ids works in SQL). The ids before this run date are a row's
previous_customer_id when this date decided it already, else its customer_id, so rerunning a date starts again
from the same ids and is idempotent. `--vars '{identity_full_rebuild: true}'` ignores all earlier ids.
"""


def previous_state(session, this):
    """(settled resolution, SQL of a row's id before this run date) of the table as it stands before this run, or
    None. A table of an older layout (no resolution) is kept for its ids only."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, this):
        return None
    settled = "max(resolution)" if "resolution" in session.table(this).columns else "0"
    settled = session.execute(f"select coalesce({settled}, 0) from {this}").fetchone()[0]
    # a row this date decided already holds the id before it as previous_customer_id
    return int(settled), "if(run_date = (select run_date from identity_run_date), previous_customer_id, customer_id)"


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key=["source", "record_id"],
        on_schema_change="append_new_columns",
    )  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import stable_ids

    # dbt finds refs only as literal calls outside expressions
    run_date_rel, components = dbt.ref("int_run_date"), dbt.ref("int_identity_components")
    session.execute("create or replace temp view identity_run_date as " + run_date_rel.sql_query())
    session.execute("create or replace temp view identity_components as " + components.sql_query())
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    state = None if full_rebuild else previous_state(session, this)
    settled, before = state or (0, None)
    # The records resolved again, and the other records of their clusters: a new record attached to a profile
    # (identity.attachable_records) is resolved alone, and inherits its cluster's id from them. A cluster resolved
    # again whole has no other records. settled: an integer of this table.
    touched = f"""
        select * from identity_components
        where resolution > {settled}
            or cluster_key in (select cluster_key from identity_components where resolution > {settled})"""
    session.execute("create or replace temp view identity_touched as " + touched)
    session.execute(
        "create or replace temp view identity_clusters as "
        "select source, record_id, cluster_key from identity_touched where is_person"
    )
    if state is None:
        assigned = stable_ids(session, "identity_clusters")
    else:
        session.execute(
            f"create or replace temp view identity_baseline as select source, record_id, {before} as customer_id "
            f"from {this} where {before} is not null"
        )
        # Never minted again: the ids before this date (the baseline's: stable_ids never mints those) and those of
        # the rows this run keeps.
        session.execute(f"""
            create or replace temp view identity_issued as
            select previous_customer_id as customer_id from {this}
            union all select this.customer_id from {this} as this
            anti join identity_touched as t on t.source = this.source and t.record_id = this.record_id""")
        assigned = stable_ids(session, "identity_clusters", "identity_baseline", "identity_issued")
    session.execute("create or replace temp table identity_assigned as " + assigned.sql_query())
    return session.sql("""
        select t.source, t.record_id, a.customer_id, a.previous_customer_id, run.run_date, t.resolution,
            timezone('UTC', current_timestamp) as written_at
        from identity_touched as t
        left join identity_assigned as a using (source, record_id)
        cross join identity_run_date as run""")
