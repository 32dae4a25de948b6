"""Every source record -> its stable customer_id (plus the id it had before this run, for the change audit); null
for records of no person (int_identity_components.is_person).

Ids survive between runs: the previous version of this table is read before dbt replaces it. Only records whose
components int_identity_components resolved after this table was last built are given ids again (a component
never leaves the neighbourhood that was resolved whole, so an old id's records are all among them or all kept);
the other rows keep their ids and never leave the warehouse (identity.stable_ids works in SQL). Rerunning the same
run date starts again from the ids before that date, so a rerun is idempotent. `--vars '{identity_full_rebuild:
true}'` ignores all earlier ids.
"""


def previous_state(session, this, run_date):
    """(settled resolution, column of the ids to keep, whether this run date already ran) of the table as it stands
    before this run, or None. A table of an older layout (no resolution) is kept for its ids only."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, f"{this.schema}.{this.identifier}"):
        return None
    columns = set(session.sql(f"select * from {this} limit 0").columns)
    settled = "max(resolution)" if "resolution" in columns else "0"
    rows, other_dates, settled = session.execute(
        f"select count(*), count(*) filter (run_date is distinct from ?), coalesce({settled}, 0) from {this}",
        [run_date],
    ).fetchone()
    same_run = rows > 0 and other_dates == 0
    # ids minted earlier on this same run date are minted again, identically
    return int(settled), "previous_customer_id" if same_run else "customer_id", same_run


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import stable_ids

    # dbt finds refs only as literal calls outside expressions
    run_date_rel, components = dbt.ref("int_run_date"), dbt.ref("int_identity_components")
    session.execute("create or replace temp view identity_run_date as " + run_date_rel.sql_query())
    run_date = session.sql("select run_date from identity_run_date").fetchone()[0]
    session.execute("create or replace temp view identity_components as " + components.sql_query())
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    state = None if full_rebuild else previous_state(session, dbt.this, run_date)
    settled, baseline, same_run = state or (0, None, False)
    touched = f"select * from identity_components where resolution > {settled}"  # settled: an integer of this table
    session.execute("create or replace temp view identity_touched as " + touched)
    session.execute(
        "create or replace temp view identity_clusters as "
        "select source, record_id, cluster_key from identity_touched where is_person"
    )
    if state is None:
        assigned = stable_ids(session, "identity_clusters")
    else:
        # The rows of untouched records, as they stand; their ids (and on a new date every id issued before) are
        # never minted again.
        session.execute(f"""
            create or replace temp view identity_kept as
            select this.* from {dbt.this} as this
            semi join identity_components as c
                on c.source = this.source and c.record_id = this.record_id and c.resolution <= {settled}""")
        session.execute(
            f"create or replace temp view identity_baseline as select source, record_id, {baseline} as customer_id "
            f"from {dbt.this} where {baseline} is not null"
        )
        issued = f"select previous_customer_id as customer_id from {dbt.this}"
        if not same_run:
            issued += f" union all select customer_id from {dbt.this}"
        session.execute(
            f"create or replace temp view identity_issued as {issued} union all select customer_id from identity_kept"
        )
        assigned = stable_ids(session, "identity_clusters", "identity_baseline", "identity_issued")
    session.execute("create or replace temp table identity_assigned as " + assigned.sql_query())
    rows = """
        select t.source, t.record_id, a.customer_id, a.previous_customer_id, run.run_date, t.resolution
        from identity_touched as t
        left join identity_assigned as a using (source, record_id)
        cross join identity_run_date as run"""
    if settled:
        # on a rerun of this date a kept row's id before the date stays; on a new date it is the id it had so far
        previous_id = "previous_customer_id" if same_run else "customer_id"
        rows += f"""
        union all
        select kept.source, kept.record_id, kept.customer_id, kept.{previous_id}, run.run_date, kept.resolution
        from identity_kept as kept cross join identity_run_date as run"""
    return session.sql(rows)
