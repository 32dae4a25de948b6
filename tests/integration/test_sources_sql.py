"""Webshop extraction against a real PostgreSQL cluster and a real SQLite file, landing in a real DuckDB file."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import date, timedelta

import duckdb
import psycopg
import pytest

from pipeline.lib import ingest
from pipeline.lib.sources import sql_orders
from pipeline.lib.sources.incremental import STATE_TABLE
from tests.support.dbt_cli import run_dbt
from tests.support.demo_shop import DEMO_RULES

TARGETS = {table: f"raw.webshop_{table}" for table in sql_orders.CONTRACT}


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {t: con.execute(f"select count(*) from {target}").fetchone()[0] for t, target in TARGETS.items()}


def _pull(con, source):
    """Extract, then land through the pipeline's own `ingest.land` (window replacement + quarantine), then save
    marks."""
    ingest.prepare_session(con, "Asia/Jakarta")  # the demo shop's time zone: naive source times are Jakarta time
    extracts = sql_orders.extract(con, source)
    for spec, table in (
        (ingest.WEBSHOP_CUSTOMERS, "customers"),
        (ingest.spec("webshop_orders", ingest.Limits(currency="IDR")), "orders"),
    ):
        item = extracts[table]
        if item.window:
            ingest.land(con, spec, item.relation, item.window, source.name, DEMO_RULES)
    items = extracts["order_items"]
    if items.window:
        ingest.land(
            con,
            ingest.WEBSHOP_ORDER_ITEMS,
            ingest.stage_order_items(con, items.relation),
            items.window,
            source.name,
            DEMO_RULES,
        )
    sql_orders.save_marks(con, source, extracts)
    return extracts


@pytest.fixture()
def pg_shop(postgres_cluster, monkeypatch):
    """A fresh schema holding the webshop tables; orders use the user's own column names (id, modified_at)."""
    schema = "shop_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as pg:
        pg.execute(f"""
            create schema {schema};
            set search_path = {schema};
            create table customers (customer_id text primary key, email text, phone text, first_name text,
                last_name text, city text, province text, customer_type text, marketing_opt_in boolean,
                created_at timestamptz, updated_at timestamptz, loyalty_tier text);
            create table orders (id text primary key, customer_id text, ordered_at timestamptz, status text,
                channel text, currency text, gross_amount numeric(14,2), discount_amount numeric(14,2),
                shipping_amount numeric(14,2), net_amount numeric(14,2), modified_at timestamptz);
            create table order_items (order_id text, line_no int, sku text, category text, quantity int,
                unit_price numeric(14,2), unit_cost numeric(14,2));
            insert into customers select 'C' || g, 'u' || g || '@mail.id', '0812' || lpad(g::text, 8, '0'), 'Budi',
                'Santoso', 'Bandung', 'Jawa Barat', 'end_customer', g % 2 = 0,
                timestamptz '2025-01-01 08:00+07' + g * interval '1 hour',
                timestamptz '2025-01-01 08:00+07' + g * interval '1 hour', 'gold'
                from generate_series(1, 50) g;
            insert into orders select 'O' || g, 'C' || (g % 50 + 1),
                timestamptz '2025-02-01 00:00+07' + g * interval '10 minutes', 'paid', 'web', 'IDR',
                100000 + g, 0, 15000, 115000 + g,
                timestamptz '2025-02-01 00:00+07' + g * interval '10 minutes'
                from generate_series(1, 200) g;
            insert into order_items select 'O' || g, l, 'SKU-' || l, 'fashion', 1, 50000 + g, null
                from generate_series(1, 200) g, generate_series(1, 2) l;
        """)
    password_var = "CDP_TEST_WEBSHOP_PG_PASSWORD"
    monkeypatch.setenv(password_var, postgres_cluster.password)
    config = {
        "kind": "postgres",
        "location": f"postgresql://{postgres_cluster.host}:{postgres_cluster.port}/{postgres_cluster.dbname}",
        "schema": schema,
        "credentials": {"user": postgres_cluster.user, "password": f"env:{password_var}"},
        "columns": {"orders": {"id": "order_id", "modified_at": "updated_at"}},
        "incremental": {"lookback_minutes": 120},
    }
    yield schema, sql_orders.SqlSource.from_config("webshop_pg", config)
    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as pg:
        pg.execute(f"drop schema if exists {schema} cascade")


def test_postgres_full_then_incremental_with_late_update(pg_shop, postgres_cluster, tmp_path):
    schema, source = pg_shop
    assert postgres_cluster.password not in repr(source)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))

    first = _pull(con, source)
    assert _counts(con) == {"customers": 50, "orders": 200, "order_items": 400}
    assert not any(item.incremental for item in first.values())
    # Contract names from the mapping; the pull keeps source types, missing optional columns are NULL in raw.
    pulled = {r[0]: r[1] for r in con.execute("describe _extract_webshop_pg_orders").fetchall()}
    assert pulled["updated_at"] == "TIMESTAMP WITH TIME ZONE" and pulled["net_amount"] == "DECIMAL(14,2)"
    assert "order_id" in pulled and "id" not in pulled and "modified_at" not in pulled
    landed = {r[0]: r[1] for r in con.execute("describe raw.webshop_orders").fetchall()}
    assert "promo_code" in landed
    assert landed["updated_at"] == "TIMESTAMP" and landed["net_amount"] == "DOUBLE"
    assert con.execute("select count(*) from quarantine.webshop_orders").fetchone()[0] == 0
    assert con.execute("select count(*) from raw.webshop_customers where loyalty_tier = 'gold'").fetchone()[0] == 50
    mark = first["orders"].high_water_mark
    assert str(mark) == "2025-02-02 09:20:00"  # O200: 2025-02-01 00:00+07 + 2000 min, as Jakarta local time
    assert mark == con.execute("select max(updated_at) from raw.webshop_orders").fetchone()[0]

    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as pg:
        pg.execute(f"set search_path = {schema}")
        # Three ordinary changes after the mark, one late write inside the lookback, one outside it.
        pg.execute(
            "update orders set status = 'refunded', modified_at = modified_at + interval '3 days' "
            "where id in ('O5', 'O6', 'O7')"
        )
        pg.execute(
            "update orders set status = 'shipped', modified_at = %s where id = 'O100'",
            [f"{mark - timedelta(minutes=30)}+07"],
        )
        pg.execute(
            "update orders set status = 'cancelled', modified_at = %s where id = 'O101'",
            [f"{mark - timedelta(hours=26)}+07"],
        )
        pg.execute(
            "update customers set city = 'Medan', updated_at = updated_at + interval '90 days' where customer_id = 'C3'"
        )

    second = _pull(con, source)
    pulled = {r[0] for r in con.execute("select order_id from _extract_webshop_pg_orders").fetchall()}
    # Changed rows plus the whole day the lookback reaches into (02-02 from 00:00: O144..O200), so that day's
    # partition is replaced completely; O101 was back-dated beyond the lookback and is not seen.
    assert pulled == {"O5", "O6", "O7", "O100"} | {f"O{g}" for g in range(144, 201)}
    assert second["orders"].incremental and second["orders"].window == (date(2025, 2, 2), date(2025, 2, 5))
    assert second["order_items"].rows == 2 * len(pulled)
    assert second["customers"].rows == 12  # C3 moved on, plus C40..C50 of the mark's day
    # New versions appended (old ones stay in their earlier partitions), the re-read day replaced, not doubled.
    assert _counts(con) == {"customers": 51, "orders": 204, "order_items": 408}
    assert (
        con.execute(
            "select status from raw.webshop_orders where order_id = 'O100' order by updated_at desc limit 1"
        ).fetchone()[0]
        == "shipped"
    )
    marks = dict(con.execute(f"select table_name, high_water_mark from {STATE_TABLE}").fetchall())
    assert str(marks["orders"]) == "2025-02-04 01:10:00"  # O7 (00:00 + 70 min) moved three days on
    third = _pull(con, source)  # only the last day again (O5..O7); landing it twice changes nothing
    assert third["orders"].rows == 3
    assert _counts(con) == {"customers": 51, "orders": 204, "order_items": 408}
    con.close()


def _staged_lines(warehouse) -> dict[str, list[int]]:
    """Build the order-line staging model on the warehouse; its lines per order."""
    done = run_dbt(warehouse, "run", "--quiet", "--select", "stg_webshop__order_items")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select order_id, line_no from staging.stg_webshop__order_items order by 1, 2").fetchall()
    lines: dict[str, list[int]] = {}
    for order_id, line_no in rows:
        lines.setdefault(order_id, []).append(line_no)
    return lines


def test_an_order_delivered_again_without_lines_ends_with_none(pg_shop, postgres_cluster, tmp_path):
    """The re-delivered version of an order replaces its whole set of lines in staging, also by none (the contract
    does not require an order to have lines), incrementally and in a full rebuild alike."""
    schema, source = pg_shop
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        _pull(con, source)
    assert _staged_lines(warehouse)["O5"] == [1, 2]

    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as pg:
        pg.execute(f"set search_path = {schema}")
        pg.execute(
            "update orders set status = 'cancelled', modified_at = modified_at + interval '3 days' where id = 'O5'"
        )
        pg.execute("delete from order_items where order_id = 'O5'")
        pg.execute("update orders set modified_at = modified_at + interval '3 days' where id = 'O6'")
        pg.execute("delete from order_items where order_id = 'O6' and line_no = 2")
    with duckdb.connect(str(warehouse)) as con:
        second = _pull(con, source)
        assert second["orders"].incremental
        # O5's new version landed, with no line: its old lines stay only in raw, in the old version's partition.
        assert con.execute("select count(*) from raw.webshop_order_items where order_id = 'O5'").fetchone()[0] == 2
    lines = _staged_lines(warehouse)
    assert "O5" not in lines and lines["O6"] == [1] and lines["O7"] == [1, 2]

    # A full rebuild agrees: lines belong to the order's latest version.
    done = run_dbt(warehouse, "run", "--quiet", "--full-refresh", "--select", "stg_webshop__order_items")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert (
            con.execute(
                "select count(*) from staging.stg_webshop__order_items where order_id in ('O5', 'O6')"
            ).fetchone()[0]
            == 1
        )


def test_postgres_down_gives_clear_error_and_writes_nothing(pg_shop, postgres_cluster, tmp_path):
    _, source = pg_shop
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    _pull(con, source)
    before = (_counts(con), con.execute(f"select * from {STATE_TABLE} order by all").fetchall())

    postgres_cluster.stop()
    try:
        with pytest.raises(sql_orders.SourceUnavailable) as failure:
            sql_orders.extract(con, source)
    finally:
        postgres_cluster.start()
    message = str(failure.value)
    assert "webshop_pg" in message and f":{postgres_cluster.port}/" in message and "Connection refused" in message
    assert postgres_cluster.password not in message
    assert (_counts(con), con.execute(f"select * from {STATE_TABLE} order by all").fetchall()) == before
    con.close()


def test_sqlite_text_timestamps_incremental(tmp_path):
    """SQLite (the embedded demo) stores ISO text; offsets and naive Jakarta times both work, bad dates land once."""
    db = tmp_path / "webshop.sqlite"
    with sqlite3.connect(db) as lite:
        lite.executescript("""
            create table customers (customer_id text, email text, updated_at text);
            create table orders (order_id text, customer_id text, status text, channel text, net_amount real,
                updated_at text, ordered_at text);
            create table order_items (order_id text, line_no integer, sku text, quantity integer, unit_price real);
            with recursive g(n) as (select 1 union all select n + 1 from g where n < 30)
            insert into orders select 'O' || n, 'C1', 'paid', 'web', 1000.0 * n,
                case when n % 2 = 0 then strftime('%Y-%m-%dT%H:%M:%S', '2025-03-01 00:00:00', '+' || n || ' hours')
                     else strftime('%Y-%m-%dT%H:%M:%S', '2025-02-28 17:00:00', '+' || n || ' hours') || 'Z' end,
                '2025-02-01T10:00:00'
                from g;
            insert into orders values ('O-BAD', 'C1', 'paid', 'web', 1.0, 'kemarin sore', '2025-02-01T10:00:00');
            insert into customers values ('C1', 'a@b.id', '2025-03-01T00:00:00+07:00');
            insert into order_items select order_id, 1, 'SKU', 1, net_amount from orders;
        """)
    source = sql_orders.SqlSource.from_config(
        "webshop", {"kind": "sqlite", "location": str(db), "incremental": {"lookback_minutes": 120}}
    )
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    first = _pull(con, source)
    assert _counts(con) == {"customers": 1, "orders": 30, "order_items": 30}
    assert con.execute("select _reason from quarantine.webshop_orders").fetchall() == [("unparseable updated_at",)]
    # 'Z' rows are UTC: 17:00Z + n h == 00:00+07 + n h, so O30 (naive) is the newest at 2025-03-02 06:00 Jakarta.
    assert str(first["orders"].high_water_mark) == "2025-03-02 06:00:00"

    with sqlite3.connect(db) as lite:
        lite.execute(
            "update orders set status = 'completed', updated_at = '2025-03-05T09:00:00+07:00' where order_id = 'O3'"
        )
    second = _pull(con, source)
    # From 2025-03-02 00:00 (mark minus lookback, whole day): O3's new version, O24..O30 and the undated O-BAD.
    pulled = {r[0] for r in con.execute("select order_id from _extract_webshop_orders").fetchall()}
    assert pulled == {"O3", "O-BAD"} | {f"O{n}" for n in range(24, 31)}
    assert second["order_items"].rows == len(pulled)
    # O3 now in two partitions (old and new version); O-BAD and its line stay quarantined once, not twice.
    assert _counts(con) == {"customers": 1, "orders": 31, "order_items": 31}
    assert con.execute("select count(*) from quarantine.webshop_orders").fetchone()[0] == 1
    assert con.execute("select count(*) from quarantine.webshop_order_items").fetchone()[0] == 1
    con.close()


def test_missing_sqlite_file_is_a_clear_error(tmp_path):
    source = sql_orders.SqlSource.from_config("webshop", {"kind": "sqlite", "location": str(tmp_path / "nope.sqlite")})
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with pytest.raises(sql_orders.SourceUnavailable, match="does not exist"):
        sql_orders.extract(con, source)
    assert con.execute("select count(*) from duckdb_tables() where schema_name = 'raw'").fetchone()[0] == 0


@pytest.mark.parametrize("layout", ["table", "without rowid"])
def test_sqlite_rows_fetched_by_rowid_are_the_rows_the_scanner_reads(tmp_path, layout):
    """A SQLite pull from the mark picks rows on the cursor (and lines on their order id) and fetches them by rowid:
    every value, extreme doubles and integers included, must equal what the scanner reads from the whole table; a
    table without rowids is read by the scanner."""
    db = tmp_path / "webshop.sqlite"
    suffix = " without rowid" if layout == "without rowid" else ""
    key = ", primary key (order_id)" if suffix else ""
    # Tiny doubles SQLite's quote() renders inexactly, the largest, infinity, a sum that needs 17 digits.
    doubles = [0.1 + 0.2, 5e-324, -3.0759906210417096e-305, 1.1090946904133901e-302, 1.7976931348623157e308]
    doubles += [float("inf"), -0.5, 1e16 + 2]
    with sqlite3.connect(db) as lite:
        lite.execute("create table customers (customer_id varchar, email varchar, updated_at varchar)")
        lite.execute(
            "create table orders (order_id varchar, customer_id varchar, status varchar, channel varchar, "
            f"net_amount double, gross_amount double, ordered_at varchar, updated_at varchar{key}){suffix}"
        )
        lite.execute("create table order_items (order_id varchar, line_no bigint, quantity bigint, unit_price double)")
        lite.executemany(
            "insert into orders values (?, 'C1', 'paid', 'web', ?, ?, '2026-11-01', ?)",
            [
                (f"O{n}", value, n, f"2026-11-{20 - n}T09:00:00+07:00" if n % 2 else f"2026-11-{20 - n} 09:00")
                for n, value in enumerate(doubles)
            ]
            + [("O-NULL", None, None, "not a date"), ("O-INT", 7, -(2**53) - 1, "2026-11-20T01:00:00Z")]
            + [("O-OLD", 1.5, 1e-310, "2026-11-02T09:00:00")]
            # October's history, so that a day of November is a small share of the table.
            + [(f"H{n}", 1.0, 1.0, f"2026-10-{1 + n % 28:02} 10:00") for n in range(200)],
        )
        lite.executemany(
            "insert into order_items values (?, ?, ?, ?)",
            [(f"O{n}", n, 2**63 - 1 - n, value) for n, value in enumerate(doubles)]
            + [("GONE", -(2**63), None, 1.5), (None, 1, 1, None), ("O-OLD", 1, 1, 2.5)],
        )
        lite.execute("insert into customers values ('C1', 'a@b.id', '2026-11-15T08:00:00')")
    source = sql_orders.SqlSource.from_config("webshop", {"kind": "sqlite", "location": str(db)})
    con = duckdb.connect()
    ingest.prepare_session(con, "Asia/Jakarta")

    def pulled(**kwargs) -> dict[str, list[tuple]]:
        extracts = sql_orders.extract(con, source, **kwargs)
        rows = {t: con.execute(f"select * from {e.relation} order by all").fetchall() for t, e in extracts.items()}
        types = {t: con.execute(f"describe {e.relation}").fetchall() for t, e in extracts.items()}
        return rows, types

    whole, whole_types = pulled()  # the first pull: the scanner, every row
    days = (date(2026, 11, 17), date(2026, 11, 19))
    scanned_days, _ = pulled(window=days)  # a first load of two days: no mark yet, read by the scanner
    first_load = sql_orders.extract(con, source)
    assert not any(item.by_rowid for item in first_load.values())
    sql_orders.save_marks(con, source, first_load)
    # A backfill of the same two days, now that the table was loaded: a small share of it, fetched by rowid.
    assert pulled(window=days) == (scanned_days, whole_types)
    by_rowid = layout == "table"
    assert sql_orders.extract(con, source, window=days)["order_items"].by_rowid == by_rowid
    assert not sql_orders.extract(con, source, window=(date(2026, 10, 1), date(2026, 11, 22)))["orders"].by_rowid
    # The nightly run: from the mark (2026-11-20 09:00) less the week of lookback.
    window, window_types = pulled(window=(date(2026, 11, 21), date(2026, 11, 22)), frontier=True)
    assert window_types == whole_types
    assert sql_orders.extract(con, source, window=days, frontier=True)["orders"].by_rowid == by_rowid
    # From the 13th: all but the earlier orders, the undated one included, and the orphan lines (GONE, none).
    expected_orders = [r for r in whole["orders"] if r[0] != "O-OLD" and not r[0].startswith("H")]
    assert window["orders"] == expected_orders
    net_amount = [name for name, *_ in window_types["orders"]].index("net_amount")
    assert [r[net_amount] for r in window["orders"] if r[0] in ("O1", "O5")] == [5e-324, float("inf")]
    expected_lines = [r for r in whole["order_items"] if r[0] != "O-OLD"]
    assert window["order_items"] == expected_lines and any(r[0] == "GONE" for r in expected_lines)
    assert window["customers"] == whole["customers"]


def test_unloaded_history_finds_the_first_day_without_parsing_every_order(tmp_path):
    """The nightly look at history left out parses only the orders that may be dated before the loaded history: an
    offset of 99 hours puts an order dated the 26th on the 22nd, and a non-ISO text is parsed whatever it says."""
    from pipeline.lib import doctor

    db = tmp_path / "webshop.sqlite"
    with sqlite3.connect(db) as lite:
        lite.execute("create table orders (order_id text, updated_at text)")
        lite.executemany(
            "insert into orders values (?, ?)",
            [("O1", "2026-11-23T09:00:00"), ("O2", "kemarin"), ("O3", None), ("O4", "2026-11-30T09:00:00+07:00")],
        )
    source = sql_orders.SqlSource.from_config("webshop", {"kind": "sqlite", "location": str(db)})
    con = duckdb.connect()
    ingest.prepare_session(con, "Asia/Jakarta")
    assert doctor.unloaded_history(con, source, date(2026, 11, 23)) is None
    with sqlite3.connect(db) as lite:
        lite.execute("insert into orders values ('O5', '2026-11-26T01:00:00+99:00')")
    assert doctor.unloaded_history(con, source, date(2026, 11, 23)) == date(2026, 11, 22)
    assert doctor.earliest_webshop_date(con, source) == date(2026, 11, 22)
    with sqlite3.connect(db) as lite:
        lite.execute("insert into orders values ('O6', ' 2026-11-02 10:00:00')")  # not ISO-first: parsed anyway
    assert doctor.unloaded_history(con, source, date(2026, 11, 23)) == date(2026, 11, 2)
    # A warehouse holding orders from the 1st has that history.
    con.execute("create table raw.webshop_orders as select date '2026-11-01' as _partition_date")
    assert doctor.unloaded_history(con, source, date(2026, 11, 23)) is None
