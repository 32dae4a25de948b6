"""The identity summary model on the demo pipeline run: its row for the run date agrees with the identity map and
the audit tables it summarises."""

import duckdb


def test_summary_matches_identity_map(demo_run):
    with duckdb.connect(str(demo_run.warehouse), read_only=True) as con:
        records, persons, largest = con.execute("""
            select sum(n), count(*), max(n)
            from (select count(*) as n from intermediate.int_identity_map
                  where customer_id is not null group by customer_id)""").fetchone()
        without_person = con.execute(
            "select count(*) from intermediate.int_identity_map where customer_id is null"
        ).fetchone()[0]
        run_date = con.execute("select run_date from intermediate.int_run_date").fetchone()[0]
        cut = con.execute("select count(*) from marts.identity_violations where run_date = ?", [run_date]).fetchone()[0]
        merges = con.execute(
            "select count(*) from marts.identity_changes where run_date = ? and change_type = 'merge'", [run_date]
        ).fetchone()[0]
        summary = con.execute("select * from marts.identity_summary").pl()
    assert run_date == demo_run.end  # the run's last partition
    assert summary.height == 1
    row = summary.row(0, named=True)
    assert (row["snapshot_date"], row["records"], row["persons"], row["largest_cluster"]) == (
        run_date,
        records,
        persons,
        largest,
    )
    assert row["records_without_person"] == without_person
    assert 0 < persons < records and row["merge_rate"] == 1 - persons / records
    assert row["violations"] == cut > 0  # the demo plants shared household phones and junk values
    assert row["merges"] == merges
