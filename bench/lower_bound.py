"""The lower bound of the pipeline's work: DuckDB reading every raw source record once, one aggregate query.

    uv run python -m bench.lower_bound DEMO_DIR [--out FILE]    writes {"query_seconds": …, "keys": …} as JSON

Per-customer aggregates keyed by a normalised email (lower + trim), a stand-in for the real identity key: the
webshop database through the SQLite scanner, the helpdesk JSONL exports and the survey exports (CSV, JSONL, Parquet).
DuckDB runs with the settings' memory limit (duckdb.memory_limit), as the pipeline's own DuckDB does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb

from pipeline.lib.duckdb_extensions import load_extension
from pipeline.settings import load_settings

AGGREGATES_TABLE = "customer_aggregates"

_TICKET_COLUMNS = (
    "{id: 'VARCHAR', requester: 'STRUCT(id VARCHAR, email VARCHAR, phone VARCHAR, name VARCHAR)', "
    "updated_at: 'VARCHAR'}"
)
_SURVEY_JSON_COLUMNS = "{response_id: 'VARCHAR', email: 'VARCHAR', score: 'VARCHAR'}"
# The CSV header of the contract: declaring it skips DuckDB's per-file dialect sniffing (~15 ms a file).
_SURVEY_CSV_COLUMNS = (
    "{response_id: 'VARCHAR', submitted_at: 'VARCHAR', survey: 'VARCHAR', score: 'VARCHAR', "
    "comment: 'VARCHAR', email: 'VARCHAR', phone: 'VARCHAR', order_ref: 'VARCHAR', "
    "consent: 'VARCHAR'}"
)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _email_key(column: str) -> str:
    return f"nullif(lower(trim({column})), '')"


def _survey_sources(survey_dir: Path) -> str:
    """The survey exports of every format present, unioned by name (a glob matching no file is an error in DuckDB)."""
    readers = {
        "csv": f"read_csv(GLOB, header = true, auto_detect = false, columns = {_SURVEY_CSV_COLUMNS})",
        "jsonl": f"read_json(GLOB, format = 'newline_delimited', ignore_errors = true, "
        f"columns = {_SURVEY_JSON_COLUMNS})",
        "parquet": "read_parquet(GLOB, union_by_name = true)",
    }
    parts = [
        f"select cast(response_id as varchar) as response_id, cast(email as varchar) as email, "
        f"cast(score as varchar) as score from {reader.replace('GLOB', _quoted(survey_dir / f'responses-*.{ext}'))}"
        for ext, reader in readers.items()
        if any(survey_dir.glob(f"responses-*.{ext}"))
    ]
    if not parts:
        return "select null::varchar as response_id, null::varchar as email, null::varchar as score limit 0"
    return " union all ".join(parts)


def customer_aggregates_sql(demo_dir: Path) -> str:
    """One statement that reads every source record once and aggregates per normalised email.

    Expects the webshop database attached as `shop`. Columns: email_key, accounts, orders, revenue, units,
    item_value, last_order_at, tickets, surveys, avg_score.
    """
    tickets_glob = _quoted(demo_dir / "helpdesk" / "tickets-*.jsonl")
    return f"""
        with customers as (
            select customer_id, {_email_key("arg_max(email, updated_at)")} as email_key
            from shop.customers group by customer_id
        ),
        items as (
            select order_id, sum(quantity) as units, sum(quantity * unit_price) as item_value
            from shop.order_items group by order_id
        ),
        orders as (
            select coalesce(c.email_key, {_email_key("o.guest_email")}) as email_key, o.order_id, o.net_amount,
                   i.units, i.item_value,
                   try_strptime(left(o.ordered_at, 19), '%Y-%m-%dT%H:%M:%S') as ordered_at
            from shop.orders o
            left join customers c on c.customer_id = o.customer_id
            left join items i on i.order_id = o.order_id
        ),
        tickets as (
            select {_email_key("requester.email")} as email_key, id
            from read_json({tickets_glob}, format = 'newline_delimited', ignore_errors = true,
                           columns = {_TICKET_COLUMNS})
        ),
        surveys as (
            select {_email_key("email")} as email_key, response_id, try_cast(score as double) as score
            from ({_survey_sources(demo_dir / "survey")})
        ),
        per_source as (
            select email_key, count(*) as accounts from customers group by email_key
            union all by name
            select email_key, count(*) as orders, sum(net_amount) as revenue, sum(units) as units,
                   sum(item_value) as item_value, max(ordered_at) as last_order_at
            from orders group by email_key
            union all by name
            select email_key, count(distinct id) as tickets from tickets group by email_key
            union all by name
            select email_key, count(distinct response_id) as surveys, avg(score) as avg_score
            from surveys group by email_key
        )
        select email_key,
               coalesce(sum(accounts), 0) as accounts, coalesce(sum(orders), 0) as orders,
               coalesce(sum(revenue), 0) as revenue, coalesce(sum(units), 0) as units,
               coalesce(sum(item_value), 0) as item_value, max(last_order_at) as last_order_at,
               coalesce(sum(tickets), 0) as tickets, coalesce(sum(surveys), 0) as surveys, max(avg_score) as avg_score
        from per_source
        where email_key is not null
        group by email_key
    """


def compute_customer_aggregates(con: duckdb.DuckDBPyConnection, demo_dir: Path) -> str:
    """Materialise the aggregates as the temp table `customer_aggregates` on `con`; returns the table name."""
    load_extension(con, "sqlite_scanner")
    con.execute(f"attach {_quoted(demo_dir / 'webshop.sqlite')} as shop (type sqlite, read_only)")
    con.execute(f"create or replace temp table {AGGREGATES_TABLE} as {customer_aggregates_sql(demo_dir)}")
    return AGGREGATES_TABLE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here instead of printing it")
    args = parser.parse_args()
    con = load_settings().connect_memory()
    started = time.perf_counter()
    table = compute_customer_aggregates(con, args.demo_dir)
    seconds = time.perf_counter() - started
    keys = con.execute(f"select count(*) from {table}").fetchone()[0]
    result = json.dumps({"query_seconds": round(seconds, 3), "keys": keys})
    if args.out:
        args.out.write_text(result, encoding="utf-8")
    else:
        print(result)


if __name__ == "__main__":
    main()
