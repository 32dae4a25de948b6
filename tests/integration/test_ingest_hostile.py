"""Hostile and broken deliveries against real files, a real SQLite webshop and a real DuckDB warehouse: nothing from a
source becomes SQL, every row ends in raw, quarantine or a counted drop, schema drift fails naming what drifted."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime

import duckdb
import pytest

from pipeline.lib import ingest
from pipeline.lib.sources import sql_orders
from tests.support.demo_shop import DEMO_RULES

DAY = date(2026, 11, 20)
WINDOW = (DAY, date(2026, 11, 21))
HEADER = "response_id,submitted_at,survey,score,comment,email,phone,order_ref,consent"


def _row(response_id: str, score: str = "9", at: str = "2026-11-20T10:00:00", comment: str = "ok") -> str:
    return f"{response_id},{at},nps,{score},{comment},{response_id.lower()}@mail.id,,,true"


@pytest.fixture()
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ingest.prepare_session(connection, "Asia/Jakarta")
    yield connection
    connection.close()


def _land_survey(con, paths, window=WINDOW, **kwargs):
    with ingest.export_files([str(p) for p in paths]) as (files, empty):
        staged = ingest.stage_survey_files(con, files)
        result = ingest.land(con, ingest.SURVEY_RESPONSES, staged, window, "files", DEMO_RULES, **kwargs)
    return result, files, empty


def _raw_ids(con, table="survey_responses", key="response_id"):
    return sorted(r[0] for r in con.execute(f"select {key} from raw.{table}").fetchall())


def _quarantine(con, table="survey_responses", key="response_id"):
    return sorted(con.execute(f"select _payload::json->>'{key}', _reason from quarantine.{table}").fetchall(), key=str)


def test_hostile_header_is_refused_before_any_sql_and_the_warehouse_is_intact(con, tmp_path):
    con.execute("create table raw.webshop_orders as select 'O1' as order_id")
    hostile = "x': 'VARCHAR'}, filename = true, header = true); drop table raw.webshop_orders; --"
    export = tmp_path / "responses-2026-11-20.csv"
    export.write_text(f'{HEADER},"{hostile}"\n{_row("R1")},1\n')
    with pytest.raises(ingest.SourceSchemaError) as error:
        _land_survey(con, [export])
    assert str(export) in str(error.value) and "column name" in str(error.value) and "drop table" in str(error.value)
    assert con.execute("select count(*) from raw.webshop_orders").fetchone()[0] == 1


def test_column_name_with_a_space_is_kept(con, tmp_path):
    export = tmp_path / "responses-2026-11-20.csv"
    export.write_text(f"{HEADER},loyalty tier\n{_row('R1')},gold\n")
    result, _, _ = _land_survey(con, [export])
    assert result.loaded == 1
    assert con.execute('select "loyalty tier" from raw.survey_responses').fetchall() == [("gold",)]


def test_bom_utf16_empty_and_partial_files(con, tmp_path):
    (tmp_path / "a-2026-11-20.csv").write_bytes(f"{HEADER}\n{_row('R1')}\n".encode("utf-8-sig"))
    (tmp_path / "b-2026-11-20.csv").write_bytes(f"{HEADER}\r\n{_row('R2')}\r\n".encode("utf-16"))
    (tmp_path / "c-2026-11-20.jsonl").write_bytes(
        b'\xef\xbb\xbf{"response_id": "R3", "submitted_at": "2026-11-20T10:00:00", "survey": "csat", "score": 5}\n'
    )
    (tmp_path / "d-2026-11-20.csv").write_bytes(b"")
    growing = tmp_path / "e-2026-11-20.csv"
    growing.write_text(f"{HEADER}\n{_row('R4')}\n{_row('R5')[:12]}")  # the exporter is still writing R5
    paths = sorted(tmp_path.glob("*-2026-11-20.*"))

    result, files, empty = _land_survey(con, paths)
    assert _raw_ids(con) == ["R1", "R2", "R3", "R4"]  # the other files are not refused
    assert empty == [str(tmp_path / "d-2026-11-20.csv")]
    assert [f.path for f in files if f.partial_line] == [str(growing)]
    assert [r for _, r in _quarantine(con)] == ["partial last line (file still being written?)"]
    assert result.loaded + result.quarantined == 5

    growing.write_text(f"{HEADER}\n{_row('R4')}\n{_row('R5')}\n")  # complete now: the next read takes all of it
    _land_survey(con, paths)
    assert _raw_ids(con) == ["R1", "R2", "R3", "R4", "R5"]
    assert _quarantine(con) == []
    assert list(tmp_path.glob("cdp-exports-*")) == []


def test_decimal_score_and_absurd_amount_are_quarantined(con, tmp_path):
    export = tmp_path / "responses-2026-11-20.csv"
    export.write_text(f"{HEADER}\n{_row('R1', '8.6')}\n{_row('R2', '8.0')}\n{_row('R3', 'sangat')}\n")
    _land_survey(con, [export])
    assert _raw_ids(con) == ["R2"]
    assert _quarantine(con) == [("R1", "non-integer score"), ("R3", "non-numeric score")]

    con.execute("""create temp table orders as select * from (values
        ('O1', 'C1', '2026-11-20T10:00:00', 'paid', 'web', 'IDR', '1e15', '2026-11-20T10:00:00', null::date),
        ('O2', 'C1', '2026-11-20T10:00:00', 'paid', 'web', 'IDR', '150000', '2026-11-20T10:00:00', null),
        ('O3', 'C1', '2026-11-20T10:00:00', 'paid', 'web', 'IDR', 'NaN', '2026-11-20T10:00:00', null))
        t(order_id, customer_id, ordered_at, status, channel, currency, net_amount, updated_at, _partition_date)""")
    spec = ingest.spec("webshop_orders", ingest.Limits(currency="IDR", max_amount=1e12))
    ingest.land(con, spec, "orders", WINDOW, "sqlite", DEMO_RULES)
    assert _raw_ids(con, "webshop_orders", "order_id") == ["O2"]
    assert _quarantine(con, "webshop_orders", "order_id") == [
        ("O1", "net_amount above 1e+12"),
        ("O3", "non-numeric net_amount"),
    ]


def test_typed_source_columns_get_the_verdicts_of_the_same_values_as_text(con):
    """A PostgreSQL or SQLite source delivers numbers and timestamps typed; landing decides "was a value sent" from
    the type (not NULL) instead of the text, so both deliveries must end the same way, row for row."""
    text_rows = """select * from (values
        ('O1', '2026-11-20 10:00:00', 'paid', '150000', '2026-11-20 10:00:00', 1),
        ('O2', '2026-11-20 10:00:00', 'paid', null, '2026-11-20 10:00:00', 2),
        ('O3', '2026-11-20 10:00:00', 'paid', 'NaN', '2026-11-20 10:00:00', 3),
        ('O4', '2026-11-20 10:00:00', 'paid', 'Infinity', '2026-11-20 10:00:00', 4),
        ('O5', '2026-11-20 10:00:00', 'paid', '-5', '2026-11-20 10:00:00', 5),
        ('O6', null, 'paid', '7', '2026-11-20 10:00:00', 6),
        ('O7', '2026-11-20 10:00:00', 'paid', '0', '2026-11-20 10:00:00', null),
        ('O8', '2026-11-20 10:00:00', 'paid', '  ', '2026-11-20 10:00:00', 8))
        t(order_id, ordered_at, status, net_amount, updated_at, line_count)"""
    columns = "order_id, null as customer_id, {at} as ordered_at, status, 'web' as channel, {amount} as net_amount, "
    columns += "{updated} as updated_at, {count} as line_count, null::date as _partition_date"
    as_text = columns.format(at="ordered_at", amount="net_amount", updated="updated_at", count="line_count::varchar")
    as_typed = columns.format(
        at="ordered_at::timestamp",
        amount="try_cast(net_amount as double)",
        updated="updated_at::timestamptz",
        count="line_count::bigint",
    )
    verdicts = []
    for select in (as_text, as_typed):
        con.execute(f"create or replace temp table delivered as select {select} from ({text_rows})")
        result = ingest.land(con, ingest.WEBSHOP_ORDERS, "delivered", WINDOW, "sqlite", DEMO_RULES, frontier=True)
        verdicts.append(
            (result.loaded, result.reasons, _raw_ids(con, "webshop_orders", "order_id"), _reasons_by_order(con))
        )
    assert verdicts[0] == verdicts[1]
    assert verdicts[1][3] == {
        "O2": "missing net_amount",
        "O3": "non-numeric net_amount",
        "O4": "non-numeric net_amount",
        "O5": "negative net_amount",
        "O6": "missing ordered_at",
        "O8": "missing net_amount",
    }


def _reasons_by_order(con) -> dict[str, str]:
    return dict(con.execute("select _payload::json->>'order_id', _reason from quarantine.webshop_orders").fetchall())


def test_conflicting_duplicates_resolve_to_the_latest_and_are_counted(con, tmp_path):
    export = tmp_path / "responses-2026-11-20.csv"
    export.write_text(
        f"{HEADER}\n{_row('R1', '3', '2026-11-20T09:00:00')}\n{_row('R1', '10', '2026-11-20T11:00:00')}\n"
        f"{_row('R2')}\n{_row('R2')}\n"
    )
    result, _, _ = _land_survey(con, [export])
    assert con.execute("select response_id, score from raw.survey_responses order by 1").fetchall() == [
        ("R1", 10),
        ("R2", 9),
    ]
    assert (result.conflicts, result.duplicates_dropped) == (1, 1)
    assert _quarantine(con) == [("R1", "conflicting duplicate")]

    # R2 again in the next day's export, edited later: it wins, the first day's version moves to quarantine.
    later = tmp_path / "responses-2026-11-21.csv"
    later.write_text(f"{HEADER}\n{_row('R2', '4', '2026-11-21T10:00:00')}\n{_row('R3')}\n")
    day_two = (date(2026, 11, 21), date(2026, 11, 22))
    result, _, _ = _land_survey(con, [later], window=day_two)
    assert result.conflicts_with_other_days == 1
    assert _versions(con, "R2") == [(4, "raw", date(2026, 11, 21)), (9, "conflicting duplicate", DAY)]

    # A third day re-delivers R2 as it was before the edit (an older submitted_at): quarantined, raw keeps the edit.
    # The same content again (R3 in a later export) is no conflict.
    stale = tmp_path / "responses-2026-11-22.csv"
    stale.write_text(f"{HEADER}\n{_row('R2', '7', '2026-11-20T12:00:00')}\n{_row('R3')}\n")
    result, _, _ = _land_survey(con, [stale], window=(date(2026, 11, 22), date(2026, 11, 23)))
    assert (result.conflicts_with_other_days, result.reasons) == (1, {"conflicting duplicate": 1})
    assert _versions(con, "R2")[0] == (4, "raw", date(2026, 11, 21))

    # Re-running the first day (a backfill) replaces its verdicts instead of repeating them; raw still has one R2.
    _land_survey(con, [export])
    _land_survey(con, [later], window=day_two)
    assert _versions(con, "R2") == [
        (4, "raw", date(2026, 11, 21)),
        (7, "conflicting duplicate", date(2026, 11, 22)),
        (9, "conflicting duplicate", DAY),
    ]
    assert con.execute("select count(*) from raw.survey_responses where response_id = 'R3'").fetchone()[0] == 2


def _versions(con, response_id: str) -> list[tuple]:
    """(score, 'raw' or the quarantine reason, partition day) of every landed version of a response."""
    return sorted(
        con.execute(
            """
            select score, 'raw', _partition_date from raw.survey_responses where response_id = ?
            union all
            select (_payload::json->>'score')::int, _reason, _partition_date from quarantine.survey_responses
            where _payload::json->>'response_id' = ?""",
            [response_id, response_id],
        ).fetchall(),
        key=lambda row: (row[1] != "raw", row[0]),
    )


def test_future_dates_are_quarantined_and_rows_without_a_date_survive_later_runs(con, tmp_path):
    export = tmp_path / "responses-2026-11-20.csv"
    export.write_text(
        f"{HEADER}\n{_row('R1')}\n{_row('R2', at='2027-11-20T10:00:00')}\n{_row('R3', at='2026-11-21T03:00:00')}\n"
    )
    _land_survey(con, [export])
    assert _raw_ids(con) == ["R1", "R3"]  # 03:00 the next morning is within the tolerance (6 h)
    assert _quarantine(con) == [("R2", "future date")]

    undated = tmp_path / "responses.csv"  # no date in the name, and none in the row: no partition to put it in
    undated.write_text(f"{HEADER}\n{_row('R9', at='kemarin')}\n")
    elsewhere = (date(2026, 11, 23), date(2026, 11, 24))
    _land_survey(con, [undated], window=elsewhere)
    later = tmp_path / "responses-2026-11-25.csv"
    later.write_text(f"{HEADER}\n{_row('R4', at='2026-11-25T10:00:00')}\n")
    _land_survey(con, [later], window=(date(2026, 11, 25), date(2026, 11, 26)))
    _land_survey(con, [undated], window=elsewhere)  # delivered again: replaces its verdict, no second copy
    assert _quarantine(con) == [("R2", "future date"), ("R9", "unparseable submitted_at")]


@pytest.fixture()
def shop(tmp_path):
    """A small real SQLite webshop: two orders with lines, one orphan line, customers."""
    db = tmp_path / "webshop.sqlite"
    with sqlite3.connect(db) as lite:
        lite.executescript("""
            create table customers (customer_id text, email text, phone text, updated_at text);
            create table orders (order_id text, customer_id text, status text, channel text, net_amount real,
                ordered_at text, updated_at text);
            create table order_items (order_id text, line_no integer, sku text, quantity real, unit_price real);
            insert into customers values ('C1', 'a@b.id', null, '2026-11-18T08:00:00');
            insert into orders values
                ('O1', 'C1', 'paid', 'web', 200.0, '2026-11-18T09:00:00', '2026-11-18T09:00:00'),
                ('O2', 'C1', 'paid', 'app', 50.0, '2026-11-19T09:00:00', '2026-11-19T09:00:00');
            insert into order_items values ('O1', 1, 'A', 1, 100.0), ('O1', 2, 'B', 0, 100.0),
                ('O2', 1, 'A', 1, 50.0), ('GONE', 1, 'C', 1, 10.0);
        """)
    return db, sql_orders.SqlSource.from_config("webshop", {"kind": "sqlite", "location": str(db)})


def _pull_webshop(con, source, window, frontier=False):
    pulled = sql_orders.extract(con, source, window=window, frontier=frontier)
    results = {}
    for table in ("customers", "orders", "order_items"):
        extract = pulled[table]
        relation = ingest.stage_order_items(con, extract.relation) if table == "order_items" else extract.relation
        land_window = (min(window[0], (pulled["orders"].window or window)[0]), window[1])
        results[table] = ingest.land(
            con,
            ingest.spec(f"webshop_{table}", ingest.Limits(currency="IDR")),
            relation,
            land_window,
            "sqlite",
            DEMO_RULES,
            frontier=frontier,
        )
    sql_orders.save_marks(con, source, pulled)
    return results


def test_orphan_and_zero_quantity_lines_are_quarantined_and_late_orders_arrive(con, shop):
    db, source = shop
    _pull_webshop(con, source, (date(2026, 11, 18), date(2026, 11, 20)))
    assert _raw_ids(con, "webshop_orders", "order_id") == ["O1", "O2"]
    assert con.execute("select order_id, line_no from raw.webshop_order_items order by 1, 2").fetchall() == [
        ("O1", 1),
        ("O2", 1),
    ]
    assert _quarantine(con, "webshop_order_items", "order_id") == [
        ("GONE", "order missing"),
        ("O1", "quantity below 1"),
    ]

    # An order written late with an updated_at five days back, and an order dated next year, then the nightly run.
    with sqlite3.connect(db) as lite:
        lite.execute(
            "insert into orders values ('O3', 'C1', 'paid', 'web', 75.0, '2026-11-16T09:00:00', '2026-11-16T09:00:00')"
        )
        lite.execute("insert into order_items values ('O3', 1, 'A', 1, 75.0)")
        lite.execute(
            "insert into orders values ('O4', 'C1', 'paid', 'web', 75.0, '2027-11-21T09:00:00', '2027-11-21T09:00:00')"
        )
        # Written after midnight, before the nightly run: tomorrow's business, counted, neither raw nor quarantine.
        lite.execute(
            "insert into orders values ('O5', 'C1', 'paid', 'web', 75.0, '2026-11-22T01:00:00', '2026-11-22T01:00:00')"
        )
        lite.execute("insert into order_items values ('O5', 1, 'A', 1, 75.0)")
    results = _pull_webshop(con, source, (date(2026, 11, 21), date(2026, 11, 22)), frontier=True)
    assert _raw_ids(con, "webshop_orders", "order_id") == ["O1", "O2", "O3"]
    assert ("O4", "future date") in _quarantine(con, "webshop_orders", "order_id")
    assert results["orders"].reasons == {"future date": 1}
    assert results["orders"].outside_window == results["order_items"].outside_window == 1
    assert "O5" not in {k for k, _ in _quarantine(con, "webshop_order_items", "order_id")}
    mark = con.execute("select high_water_mark from raw._extract_state where table_name = 'orders'").fetchone()[0]
    assert mark == datetime(2026, 11, 19, 9)  # the future order does not move the mark
    # The orphan line stays quarantined once, not once per run.
    assert _quarantine(con, "webshop_order_items", "order_id").count(("GONE", "order missing")) == 1


def test_a_missing_required_column_fails_naming_source_table_and_column(con, shop):
    db, source = shop
    with sqlite3.connect(db) as lite:
        lite.execute("alter table orders rename column net_amount to total")
    with pytest.raises(ingest.SourceSchemaError) as error:
        sql_orders.extract(con, source, window=(date(2026, 11, 18), date(2026, 11, 20)))
    assert "webshop source 'webshop'" in str(error.value) and "main.orders" in str(error.value)
    assert "'net_amount'" in str(error.value)


def test_a_renamed_jsonl_field_fails_naming_file_and_field(con, tmp_path):
    export = tmp_path / "responses-2026-11-20.jsonl"
    export.write_text('{"response_id": "R1", "submitted_at": "2026-11-20T10:00:00", "survey": "nps", "rating": 9}\n')
    with pytest.raises(ingest.SourceSchemaError, match=r"responses-2026-11-20.jsonl has no field 'score'"):
        _land_survey(con, [export])


def test_landed_rows_meet_every_critical_raw_expectation(con, shop):
    from pipeline.lib.expectations import validate_table

    _, source = shop
    _pull_webshop(con, source, (date(2026, 11, 18), date(2026, 11, 20)))
    for table in ("webshop_orders", "webshop_order_items"):
        suite = ingest.raw_suite(ingest.spec(table, ingest.Limits(currency="IDR")))
        outcome = validate_table(con, f"raw.{table}", suite)
        assert outcome.success, outcome.summary  # the zero-quantity line never reached raw


def _dbt_run(warehouse, tmp_path, *select, full_refresh=False):
    import os
    import subprocess
    import sys
    from pathlib import Path

    project = Path(__file__).resolve().parents[2] / "dbt_project"
    command = [
        str(Path(sys.executable).parent / "dbt"),
        "run",
        "--quiet",
        "--select",
        *select,
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
        "--vars",
        '{"timezone": "Asia/Jakarta"}',
        *(["--full-refresh"] if full_refresh else []),
    ]
    subprocess.run(command, check=True, env={**os.environ, "CDP_WAREHOUSE": str(warehouse)})


def test_an_updated_order_replaces_its_set_of_lines_in_staging(shop, tmp_path):
    db, source = shop
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest.prepare_session(con, "Asia/Jakarta")
        _pull_webshop(con, source, (date(2026, 11, 18), date(2026, 11, 20)))
    with sqlite3.connect(db) as lite:  # the shop fixes O2: line 1 removed, line 2 added, a day later
        lite.execute("update orders set updated_at = '2026-11-20T08:00:00', net_amount = 30 where order_id = 'O2'")
        lite.execute("delete from order_items where order_id = 'O2'")
        lite.execute("insert into order_items values ('O2', 2, 'B', 1, 30.0)")
    _dbt_run(warehouse, tmp_path, "stg_webshop__order_items")
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("select order_line_id from staging.stg_webshop__order_items order by 1").fetchall() == [
            ("O1#1",),
            ("O2#1",),
        ]
        ingest.prepare_session(con, "Asia/Jakarta")
        _pull_webshop(con, source, (date(2026, 11, 20), date(2026, 11, 21)))
    _dbt_run(warehouse, tmp_path, "stg_webshop__order_items")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select order_line_id from staging.stg_webshop__order_items order by 1").fetchall() == [
            ("O1#1",),
            ("O2#2",),
        ]


STAGED_WEBSHOP = ("stg_webshop__customers", "stg_webshop__orders", "stg_webshop__order_items")


def _staged(con) -> dict[str, list]:
    """The staged webshop tables without their bookkeeping (load time, dbt invocation)."""
    return {
        model: con.execute(f"select columns(c -> not starts_with(c, '_')) from staging.{model} order by all").fetchall()
        for model in STAGED_WEBSHOP
    }


def _load_times(con, table, key):
    return dict(con.execute(f"select {key}, _loaded_at from raw.{table}").fetchall())


def test_a_pull_read_again_keeps_rows_that_did_not_change_as_they_landed(shop, tmp_path):
    """A re-read window (the nightly's lookback, a re-run) lands again only what changed: an unchanged row keeps its
    first load time, so staging, which takes what landed since it last ran, does not stage it again; an order's lines
    land again with their order, and staging still equals a build from scratch."""
    db, source = shop
    window = (date(2026, 11, 18), date(2026, 11, 20))
    with sqlite3.connect(db) as lite:
        lite.executescript("""
            insert into customers values ('C2', null, '+6281234567890', '2026-11-18T10:00:00');
            insert into orders values
                ('O3', 'C2', 'paid', 'web', 20.0, '2026-11-19T10:00:00', '2026-11-19T10:00:00'),
                ('O4', 'C2', 'paid', 'web', 30.0, '2026-11-19T11:00:00', '2026-11-19T11:00:00');
            insert into order_items values ('O3', 1, 'A', 1, 10.0), ('O3', 2, 'B', 1, 10.0), ('O4', 1, 'C', 1, 30.0);
        """)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest.prepare_session(con, "Asia/Jakarta")
        _pull_webshop(con, source, window)
        first_orders = _load_times(con, "webshop_orders", "order_id")
        first_lines = _load_times(con, "webshop_order_items", "order_id || '#' || line_no")
        first_customers = _load_times(con, "webshop_customers", "customer_id")
    _dbt_run(warehouse, tmp_path, *STAGED_WEBSHOP)

    with sqlite3.connect(db) as lite:
        lite.executescript("""
            update order_items set unit_price = 15.0 where order_id = 'O3' and line_no = 2;  -- not its order
            delete from order_items where order_id = 'O2';  -- every line removed, not its order
            update orders set status = 'shipped', updated_at = '2026-11-19T15:00:00' where order_id = 'O4';
        """)
    with duckdb.connect(str(warehouse)) as con:
        ingest.prepare_session(con, "Asia/Jakarta")
        results = _pull_webshop(con, source, window)
        orders = _load_times(con, "webshop_orders", "order_id")
        lines = _load_times(con, "webshop_order_items", "order_id || '#' || line_no")
        customers = _load_times(con, "webshop_customers", "customer_id")
    # Customers (one with a NULL email) and O1 with its line did not change: they stay as they landed.
    assert customers == first_customers
    assert (orders["O1"], lines["O1#1"]) == (first_orders["O1"], first_lines["O1#1"])
    assert results["customers"].unchanged == results["customers"].loaded == 2
    # O3's changed line lands again with its other line (staging takes an order version's lines of one load); O2,
    # whose lines all went, lands again (staging drops an order's lines when the order lands); O4 is a new version,
    # its line follows.
    assert orders["O3"] == first_orders["O3"]
    assert all(orders[o] > first_orders[o] for o in ("O2", "O4"))
    assert all(lines[line] > first_lines[line] for line in ("O3#1", "O3#2", "O4#1"))
    assert "O2#1" not in lines
    # The orders' landing found O1, O2 and O3 unchanged; the lines' landing then landed O2 again.
    assert (results["orders"].unchanged, results["orders"].loaded) == (3, 4)
    assert (results["order_items"].unchanged, results["order_items"].loaded) == (1, 4)

    _dbt_run(warehouse, tmp_path, *STAGED_WEBSHOP)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        nightly = _staged(con)
    assert [line[0] for line in nightly["stg_webshop__order_items"]] == ["O1#1", "O3#1", "O3#2", "O4#1"]
    _dbt_run(warehouse, tmp_path, *STAGED_WEBSHOP, full_refresh=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _staged(con) == nightly
