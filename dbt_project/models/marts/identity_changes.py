"""Audit: customer ids created, merged or split on each run date (a rerun of a date replaces that date's rows)."""


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="delete+insert", unique_key="run_date")
    from pipeline.lib.identity import changes

    # set-wise in the warehouse (identity.changes): the map's rows never leave it. dbt finds refs only as literal
    # calls outside expressions.
    mapped, run_date = dbt.ref("int_identity_map"), dbt.ref("int_run_date")
    session.execute("create or replace temp view identity_run as " + run_date.sql_query())
    # the rows this run date decided (int_identity_map keeps the others as an earlier date left them)
    session.execute(
        "create or replace temp view identity_assignments as select * from ("
        + mapped.sql_query()
        + ") where run_date = (select run_date from identity_run)"
    )
    moves = changes(session, "identity_assignments").sql_query()
    return session.sql(
        "select run.run_date, moves.* from (" + moves + ") as moves cross join identity_run as run "
        "order by moves.change_type, moves.new_customer_id, moves.old_customer_id nulls last"
    )
