"""DuckDB's memory per tag while one query runs, at its peak (not a test: it prints what it measured).

    uv run python -m bench.query_memory WAREHOUSE QUERY.sql [--memory-limit 2GB] [--threads 2]

Samples `duckdb_memory()` (the buffer pool's use per tag: HASH_TABLE, COLUMN_DATA for materialised CTEs, ORDER_BY,
...) from a second cursor every 5 ms while the query runs on a read-only connection, and prints the query's wall
time and each tag's peak in MiB with the total's peak: which operators hold a query's memory, at a scale where it
still runs, before it runs out of memory at a larger one (how int_customer_traits' full build was read, session 10;
since it is built in steps its compiled SQL reads the steps' temporary tables and no longer runs alone).
"""

from __future__ import annotations

import argparse
import re
import threading
import time

import duckdb

MIB = 2**20


def peak_memory(warehouse: str, sql: str, memory_limit: str = "2GB", threads: int = 2) -> tuple[float, dict[str, int]]:
    """(wall seconds, peak bytes per tag and 'TOTAL') of reading every row of `sql` on the warehouse."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit):
        raise ValueError(f"memory limit {memory_limit!r}: expected a size such as 2GB or 512MiB")
    con = duckdb.connect(warehouse, read_only=True)
    con.execute(f"set memory_limit = '{memory_limit}'")
    con.execute(f"set threads = {int(threads)}")
    peaks: dict[str, int] = {}
    running = threading.Event()
    running.set()

    def sample() -> None:
        cursor = con.cursor()
        while running.is_set():
            rows = cursor.execute("select tag, memory_usage_bytes from duckdb_memory()").fetchall()
            for tag, used in rows:
                peaks[tag] = max(peaks.get(tag, 0), used)
            peaks["TOTAL"] = max(peaks.get("TOTAL", 0), sum(used for _, used in rows))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    try:
        # Every column fetched and dropped: under count(*) DuckDB would skip the aggregates no one reads.
        reader = con.execute(sql).fetch_record_batch()  # the developer's own query file
        for _ in reader:
            pass
    finally:
        running.clear()
        sampler.join()
        con.close()
    return time.perf_counter() - began, {tag: used for tag, used in peaks.items() if used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse")
    parser.add_argument("query", help="a file holding one SELECT (e.g. a model's compiled SQL)")
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with open(args.query, encoding="utf-8") as file:
        seconds, peaks = peak_memory(args.warehouse, file.read(), args.memory_limit, args.threads)
    print(f"{args.query}: {seconds:.1f} s")
    for tag, used in sorted(peaks.items(), key=lambda item: -item[1]):
        print(f"  {tag:<12} {used / MIB:8.0f} MiB")


if __name__ == "__main__":
    main()
