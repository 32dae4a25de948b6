"""Buffer memory DuckDB cannot give back once a table with deleted rows is read (not a test: prints what it measured).

    uv run python -m bench.deleted_rows_memory [--rows 20000000] [--every 1000] [WAREHOUSE]

Why: the 3M nightly run failed in fct_orders with "failed to pin block (3.7 GiB/3.7 GiB used)", and the 1M nightly
fails the same way at a 1.4 GB limit, while the model alone runs in 600 MB. A nightly run deletes a few rows in every
row group of the tables it updates (delete+insert by key); with DuckDB 1.5.5, reading such a table (even a count) or
checkpointing the database leaves buffer memory pinned until the database is closed: lowering `memory_limit` below it
fails. In one database held open for a whole dbt invocation, later models ran in what remained of the limit; dbt now
closes it after every model (dbt_project/profiles.yml, keep_open). DuckDB 1.5.6 gives it back; the
`duckdb-extension-*` packages the connectors need exist only for 1.5.5 so far (pyproject.toml).

Measured here, in one process: a file with one table of `--rows` rows, a second file where every `--every`-th row of
it was deleted (and checkpointed); each is opened, counted, and the memory limit is lowered step by step to the
smallest that DuckDB accepts (what it cannot evict). With WAREHOUSE, that file is measured the same way (read-only).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb

from pipeline.lib.warehouse import quote_identifier


def unevictable_mb(con: duckdb.DuckDBPyConnection, ceiling_mb: int) -> int:
    """The smallest memory limit (MB, to 8 MB) DuckDB accepts now: the buffer memory it cannot evict."""
    low, high = 0, ceiling_mb  # low: refused (or nothing), high: accepted
    while high - low > 8:
        middle = (low + high) // 2
        try:
            con.execute(f"set memory_limit = '{middle}MB'")
            high = middle
        except duckdb.OutOfMemoryException:
            low = middle
    con.execute(f"set memory_limit = '{ceiling_mb}MB'")
    return high


def table_file(path: Path, rows: int, every: int | None) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table t as select range as id, md5(range::varchar) as s, random() as r from range(?)", [rows]
        )
    if every:
        with duckdb.connect(str(path)) as con:  # the deletes of a later run, checkpointed when it closes
            con.execute("delete from t where id % ? = 0", [every])


def measure(path: Path, ceiling_mb: int) -> int:
    """Open `path` read-only, count the rows of each of its tables, return what DuckDB then cannot evict."""
    with duckdb.connect(str(path), read_only=True, config={"memory_limit": f"{ceiling_mb}MB"}) as con:
        tables = con.execute("select schema_name, table_name from duckdb_tables() where not temporary").fetchall()
        for schema, table in tables:
            con.execute(f"select count(*) from {quote_identifier(schema)}.{quote_identifier(table)}").fetchone()
        return unevictable_mb(con, ceiling_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--every", type=int, default=1000, help="delete every n-th row")
    parser.add_argument("--ceiling-mb", type=int, default=4000, help="the memory limit the files are opened with")
    parser.add_argument("warehouse", nargs="?", help="a warehouse file to measure as well (opened read-only)")
    args = parser.parse_args()
    print(f"duckdb {duckdb.__version__}; {args.rows:,} rows, every {args.every}th deleted")
    with tempfile.TemporaryDirectory(prefix="deleted-rows-") as work:
        whole, deleted = Path(work) / "whole.duckdb", Path(work) / "deleted.duckdb"
        table_file(whole, args.rows, None)
        table_file(deleted, args.rows, args.every)
        print("| file | MB DuckDB cannot evict after counting its tables |\n|---|---:|")
        print(f"| no deleted rows | {measure(whole, args.ceiling_mb)} |")
        print(f"| 1 in {args.every} rows deleted | {measure(deleted, args.ceiling_mb)} |")
    if args.warehouse:
        print(f"| {args.warehouse} | {measure(Path(args.warehouse), args.ceiling_mb)} |")


if __name__ == "__main__":
    main()
