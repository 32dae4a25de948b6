"""The benchmark's lower-bound query computes the right per-customer aggregates (checked against polars + sqlite3)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from bench.lower_bound import compute_customer_aggregates
from pipeline.lib.demo_data import DemoConfig, generate

COUNTS = ["accounts", "orders", "units", "tickets", "surveys"]
AMOUNTS = ["revenue", "item_value", "avg_score"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench_demo") / "demo"
    generate(DemoConfig(customers=150, seed=7), out)
    return out


def _email_key(column: str) -> pl.Expr:
    key = pl.col(column).str.strip_chars(" ").str.to_lowercase()
    return pl.when(key != "").then(key)


def _independent_aggregates(demo_dir: Path) -> pl.DataFrame:
    """The same aggregates from the raw files with sqlite3 + polars (no DuckDB)."""
    with sqlite3.connect(demo_dir / "webshop.sqlite") as shop:
        customers, orders, items = (
            pl.read_database(f"select * from {t}", shop, infer_schema_length=None)
            for t in ("customers", "orders", "order_items")
        )
    accounts = (
        customers.sort("updated_at")
        .group_by("customer_id")
        .agg(pl.col("email").last())
        .with_columns(email_key=_email_key("email"))
    )
    per_order = items.group_by("order_id").agg(
        units=pl.col("quantity").sum(), item_value=(pl.col("quantity") * pl.col("unit_price")).sum()
    )
    orders = (
        orders.join(accounts.select("customer_id", account_key="email_key"), on="customer_id", how="left")
        .join(per_order, on="order_id", how="left")
        .with_columns(
            email_key=pl.coalesce("account_key", _email_key("guest_email")),
            ordered_at=pl.col("ordered_at").str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False),
        )
    )

    lines = pl.Series(
        [
            line
            for f in sorted((demo_dir / "helpdesk").glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    )
    tickets = pl.DataFrame(
        {"id": lines.str.json_path_match("$.id"), "email": lines.str.json_path_match("$.requester.email")}
    ).filter(pl.col("id").is_not_null())

    survey_dir = demo_dir / "survey"
    survey_cols = ["response_id", "email", "score"]
    surveys = pl.concat(
        [
            *(pl.read_csv(f, infer_schema=False).select(survey_cols) for f in survey_dir.glob("*.csv")),
            *(pl.read_ndjson(f).select(pl.col(survey_cols).cast(pl.Utf8)) for f in survey_dir.glob("*.jsonl")),
            *(pl.read_parquet(f).select(pl.col(survey_cols).cast(pl.Utf8)) for f in survey_dir.glob("*.parquet")),
        ]
    )

    parts = [
        accounts.group_by("email_key").agg(accounts=pl.len()),
        orders.group_by("email_key").agg(
            orders=pl.len(),
            revenue=pl.col("net_amount").sum(),
            units=pl.col("units").sum(),
            item_value=pl.col("item_value").sum(),
            last_order_at=pl.col("ordered_at").max(),
        ),
        tickets.group_by(email_key=_email_key("email")).agg(tickets=pl.col("id").n_unique()),
        surveys.group_by(email_key=_email_key("email")).agg(
            surveys=pl.col("response_id").n_unique(), avg_score=pl.col("score").cast(pl.Float64, strict=False).mean()
        ),
    ]
    combined = pl.concat(parts, how="diagonal_relaxed").filter(pl.col("email_key").is_not_null())
    return combined.group_by("email_key").agg(
        *(pl.col(c).sum() for c in COUNTS + ["revenue", "item_value"]),
        pl.col("avg_score").max(),
        pl.col("last_order_at").max(),
    )


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "email_key",
        *(pl.col(c).cast(pl.Int64) for c in COUNTS),
        *(pl.col(c).cast(pl.Float64) for c in AMOUNTS),
        pl.col("last_order_at").cast(pl.Datetime("us")),
    ).sort("email_key")


def test_lower_bound_aggregates_match_an_independent_computation(demo_dir):
    con = duckdb.connect()
    table = compute_customer_aggregates(con, demo_dir)
    got = _normalised(con.execute(f"select * from {table}").pl())
    expected = _normalised(_independent_aggregates(demo_dir))

    # The data must exercise every source, or the comparison proves little.
    assert got.height > 100
    assert all(got[c].sum() > 0 for c in COUNTS)
    assert got.filter((pl.col("orders") > 0) & (pl.col("tickets") > 0) & (pl.col("surveys") > 0)).height > 0
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9)


def test_lower_bound_reads_every_order_and_ticket(demo_dir):
    """Orders with a usable email are all counted once; every distinct valid ticket id with an email is counted."""
    con = duckdb.connect()
    table = compute_customer_aggregates(con, demo_dir)
    orders_counted, tickets_counted = con.execute(f"select sum(orders), sum(tickets) from {table}").fetchone()
    with sqlite3.connect(demo_dir / "webshop.sqlite") as shop:
        all_orders = shop.execute("select count(*) from orders").fetchone()[0]
    assert 0 < orders_counted <= all_orders
    # Guest orders without an email are the only ones that cannot be keyed.
    with sqlite3.connect(demo_dir / "webshop.sqlite") as shop:
        unkeyed = shop.execute("""
            select count(*) from orders o
            left join (select customer_id, email from customers c1
                       where updated_at = (select max(updated_at) from customers c2
                                           where c2.customer_id = c1.customer_id)
                       group by customer_id) c using (customer_id)
            where coalesce(nullif(lower(trim(c.email)), ''), nullif(lower(trim(o.guest_email)), '')) is null
        """).fetchone()[0]
    assert orders_counted == all_orders - unkeyed
    assert tickets_counted > 0


def _result(scale: str, stamp: str, full: float, nightly: float, bound: float, rss_mib: float = 2048) -> dict:
    run = {
        "seconds": full,
        "cpu_seconds": full / 2,
        "peak_rss_mib": rss_mib,
        "returncode": 0,
        "process_peak_rss_mib": {"dbt build": 512},
    }
    return {
        "scale": scale,
        "timestamp": stamp,
        "sources": {"orders": 10},
        "full_build": run,
        "nightly": {"seconds": nightly, "peak_rss_mib": rss_mib, "returncode": 0},
        "lower_bound": {"seconds": bound, "cpu_seconds": bound},
    }


def test_summary_takes_the_newest_complete_result_per_scale_and_judges_the_targets(tmp_path):
    import json

    from bench.summary import incomplete_rows, latest_results, nightly_ratio_rows, summary_rows, target_rows

    files = {
        "100k-20261101T000000": _result("100k", "20261101T000000", 900, 200, 10),
        "100k-20261102T000000": _result("100k", "20261102T000000", 150, 50, 10),
        "1M-20261102T000000": _result("1M", "20261102T000000", 280, 75, 20, rss_mib=9000),
        "1M-20261103T000000": {"scale": "1M", "timestamp": "20261103T000000"},  # interrupted: no nightly
        "3M-20261104T000000": _result("3M", "20261104T000000", 900, 90, 60, rss_mib=7000),
    }
    for stem, record in files.items():
        (tmp_path / f"{stem}.json").write_text(json.dumps(record))
    results = latest_results(tmp_path)
    assert list(results) == ["100k", "1M", "3M"]
    assert results["100k"]["file"] == "100k-20261102T000000.json"
    assert results["1M"]["file"] == "1M-20261102T000000.json"
    rows = summary_rows(results)
    assert "| 100k | 10 | 150 | 50 | 2.00 | 2.00 | dbt build 0.50 | 10 | 15× / 8× | 5× |" in rows[2]
    assert nightly_ratio_rows(results) == [
        "- nightly 1M ÷ nightly 100k: 1.50 for 10× the data (flat would be ≈ 1)",
        "- nightly 3M ÷ nightly 1M: 1.20 for 3× the data (flat would be ≈ 1) — measured on different days "
        "(20261102, 20261104): indicative only",
    ]
    assert incomplete_rows(results, tmp_path) == [
        "- 1M: a newer attempt did not complete (1M-20261103T000000.json): stopped before the nightly run"
    ]
    verdicts = target_rows(results)
    assert verdicts[0] == "- full build at 100k: 15.0× the lower bound (target ≤ 20×): met"
    assert verdicts[1] == "- full build at 1M: 14.0× the lower bound (target ≤ 10×): missed"
    assert verdicts[2].endswith("met") and "280" in verdicts[2]
    assert verdicts[3].endswith("missed")  # 9.44 GB
    assert verdicts[4].endswith("missed")  # 75 s > 60 s
    assert verdicts[5].endswith("met") and "1.50" in verdicts[5]  # both measured on 20261102
    assert verdicts[6] == "- 3M: completed, peak 7.34 GB (6.84 GiB) (bound 8 GB): met"
    # The bound is 8 GB (8e9 bytes), not 8 GiB: 7,800 MiB is 8.18 GB.
    results["3M"]["nightly"]["peak_rss_mib"] = 7800
    assert target_rows(results)[6] == "- 3M: completed, peak 8.18 GB (7.62 GiB) (bound 8 GB): missed"
    # A failed run's times stop at the failure: marked in the table, no nightly ratio from it.
    results["3M"]["full_build"]["returncode"] = results["3M"]["nightly"]["returncode"] = 1
    assert "| 3M | 10 | 900 (failed) | 90 (failed) |" in summary_rows(results)[4]
    assert nightly_ratio_rows(results)[1] == "- nightly 3M ÷ nightly 1M: not comparable (a nightly run failed)"


def test_summary_replaces_only_the_readme_block():
    from bench.summary import README_MARKERS, with_summary

    start, end = README_MARKERS
    readme = f"# Title\n\n## Performance\nintro\n{start}\nold table\n{end}\nafter\n"
    assert with_summary(readme, "| new |\n") == f"# Title\n\n## Performance\nintro\n{start}\n| new |\n{end}\nafter\n"
    with pytest.raises(SystemExit, match="no bench-summary markers"):
        with_summary("# Title\n", "| new |")


def test_measure_reports_the_peak_rss_of_each_process_in_the_tree(tmp_path):
    """A parent that starts a child holding 300 MiB: each is measured on its own, the tree as their sum."""
    import sys

    from bench.run import measure, process_label

    child = tmp_path / "child.py"
    child.write_text(
        "import time\nblock = bytearray(300 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\ntime.sleep(1.5)\n"
    )
    parent = tmp_path / "parent.py"
    parent.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, {str(child)!r}], check=True)\n")
    measured = measure([sys.executable, str(parent)], {}, tmp_path / "log")
    assert measured.returncode == 0
    peaks = measured.process_peak_rss_mib
    assert set(peaks) == {"parent.py", "child.py"}
    assert peaks["child.py"] >= 300 > peaks["parent.py"]
    assert measured.peak_rss_mib >= peaks["child.py"] + peaks["parent.py"] * 0.5
    assert process_label(["/x/.venv/bin/python", "/x/.venv/bin/dbt", "build", "--select", "m"]) == "dbt build"
    assert process_label(["/usr/bin/python3", "-m", "pipeline.cli", "run"]) == "python -m pipeline.cli"


def test_node_memory_maps_the_dbt_process_samples_to_the_nodes_of_its_log(tmp_path):
    """Each node gets the peak RSS of its own dbt process between its start and end in dbt.log, and the rise over
    the sample before it started; a node the process never finished runs to the process's last sample."""
    import json

    from bench.run import node_memory

    def event(name: str, node: str, at: float, pid: int = 41) -> str:
        """A line of dbt.log at info level: a node's start line or its result (which carries its end time)."""
        ts = datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z")
        finished = "" if name == "LogStartLine" else ts[:-1]
        info = {"name": name, "level": "info", "msg": "", "pid": pid, "ts": ts}
        return json.dumps({"data": {"node_info": {"unique_id": node, "node_finished_at": finished}}, "info": info})

    (tmp_path / "dbt_models-1").mkdir()
    lines = [
        event("LogStartLine", "model.cdp.small", 1000.0),
        event("LogModelResult", "model.cdp.small", 1001.0),
        event("LogStartLine", "model.cdp.big", 1001.1),
        event("LogModelResult", "model.cdp.big", 1003.0),
        event("LogStartLine", "test.cdp.unique_big_id.abc", 1003.1),
        event("LogStartLine", "model.cdp.elsewhere", 1000.0, pid=99),  # another process: not sampled
    ]
    (tmp_path / "dbt_models-1" / "dbt.log").write_text("\n".join(lines) + "\n")
    samples = [[999.9, 41, 300.0], [1000.5, 41, 350.0], [1002.0, 41, 2000.0], [1002.5, 41, 1800.0], [1003.5, 41, 900.0]]
    nodes = node_memory(samples, since=0.0, logs=tmp_path)
    assert list(nodes) == ["big", "unique_big_id.abc", "small"]  # largest first
    assert nodes["big"] == {"peak_mib": 2000.0, "rise_mib": 1650.0, "seconds": 1.9}
    assert nodes["small"] == {"peak_mib": 350.0, "rise_mib": 50.0, "seconds": 1.0}
    assert nodes["unique_big_id.abc"]["peak_mib"] == 900.0  # killed: it ran to the last sample
    assert node_memory(samples, since=2e9, logs=tmp_path) == {}  # logs older than the run are not read


def test_demo_sources_are_generated_once_per_config_then_copied(tmp_path):
    from datetime import date

    from bench.run import demo_sources
    from pipeline.lib.demo_data import DemoConfig

    cache, out = tmp_path / "cache", tmp_path / "work" / "demo"
    small = DemoConfig(customers=60, start_date=date(2026, 9, 1), end_date=date(2026, 11, 22))
    counts, cached = demo_sources(small, out, cache)
    assert not cached and counts["orders"] > 0
    [small_entry] = [entry.name for entry in cache.iterdir()]
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "stale.txt").write_text("left by an earlier run")
    again, cached = demo_sources(small, out, cache)
    assert cached and again == counts
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
    # Another config is another entry: generated, not served from the first one.
    _, cached = demo_sources(
        DemoConfig(customers=60, start_date=small.start_date, cutoff=date(2026, 11, 21)), out, cache
    )
    assert not cached and len(list(cache.iterdir())) == 2
    # Entries no bench used for CACHE_UNUSED_DAYS go when the next bench starts; the one it uses stays.
    import os
    import time

    from bench.run import CACHE_UNUSED_DAYS

    long_ago = time.time() - (CACHE_UNUSED_DAYS + 1) * 86400
    for entry in cache.iterdir():
        os.utime(entry / "sources.json", (long_ago, long_ago))
    _, cached = demo_sources(small, out, cache)
    assert cached and [entry.name for entry in cache.iterdir()] == [small_entry]


def test_benches_started_together_each_get_whole_sources(tmp_path):
    """Two benches missing the same cache entry at once (helpers on one machine): each gets every source file.
    When both generated into the entry itself, one deleted the other's half-written files."""
    import subprocess
    import sys

    from pipeline.lib.environment import REPO_ROOT

    script = (
        "import sys\nfrom datetime import date\nfrom pathlib import Path\nfrom bench.run import demo_sources\n"
        "from pipeline.lib.demo_data import DemoConfig\n"
        "cfg = DemoConfig(customers=200, start_date=date(2026, 9, 1), end_date=date(2026, 11, 22))\n"
        "demo_sources(cfg, Path(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    cache = tmp_path / "cache"
    benches = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"work{i}"), str(cache)], cwd=REPO_ROOT)
        for i in range(3)
    ]
    assert [bench.wait(timeout=300) for bench in benches] == [0, 0, 0]
    files = [sorted(p.relative_to(tmp_path / f"work{i}") for p in (tmp_path / f"work{i}").rglob("*")) for i in range(3)]
    assert Path("webshop.sqlite") in files[0] and files[1] == files[0] and files[2] == files[0]
    assert [entry.name for entry in cache.iterdir() if not (entry / "sources.json").exists()] == []


def test_query_memory_reports_the_hash_table_of_a_large_aggregate(tmp_path):
    from bench.query_memory import peak_memory

    warehouse = str(tmp_path / "w.duckdb")
    with duckdb.connect(warehouse) as con:
        con.execute("create table t as select range as k, range::varchar as v from range(3000000)")
    seconds, peaks = peak_memory(warehouse, "select k, max(v) from t group by k", memory_limit="1GB")
    assert seconds > 0
    assert peaks["HASH_TABLE"] > 20 * 2**20  # three million groups
    assert peaks["TOTAL"] >= peaks["HASH_TABLE"]
    with pytest.raises(ValueError, match="expected a size"):
        peak_memory(warehouse, "select 1", memory_limit="1GB'; drop table t; --")


def test_query_memory_computes_every_column_of_the_query(tmp_path):
    """Counting the rows instead would let DuckDB drop the aggregates nobody reads, and with them their memory."""
    from bench.query_memory import peak_memory

    warehouse = str(tmp_path / "w.duckdb")
    with duckdb.connect(warehouse) as con:
        con.execute("create table t as select range as k, repeat('x', 100) || range as v from range(1000000)")
    _, keys_only = peak_memory(warehouse, "select k from t group by k", memory_limit="1GB")
    _, with_values = peak_memory(warehouse, "select k, max(v) from t group by k", memory_limit="1GB")
    # A million strings of over 100 bytes held as the aggregate's states: more than twice the hash table of the keys.
    assert with_values["HASH_TABLE"] > 2 * keys_only["HASH_TABLE"]


def test_forked_workers_shared_pages_count_once_in_the_pss_peak(tmp_path):
    """A parent touching 300 MiB, then forking a worker that shares them: the sum of RSS counts them twice, PSS once."""
    import sys

    from bench.run import measure

    script = tmp_path / "forks.py"
    script.write_text(
        "import os, time\nblock = bytearray(300 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\n"
        "pid = os.fork()\ntime.sleep(2.5)\nif pid:\n    os.waitpid(pid, 0)\n"
    )
    measured = measure([sys.executable, str(script)], {}, tmp_path / "log")
    assert measured.returncode == 0
    assert measured.peak_rss_mib >= 600
    assert 300 <= measured.peak_pss_mib < 450


@pytest.mark.xfail(
    strict=True, reason="DuckDB 1.5.5 pins ~8 bytes a row of a table with deleted rows (README: Known limit)"
)
def test_duckdb_gives_back_the_memory_of_a_table_with_deleted_rows(tmp_path):
    """A tripwire for the DuckDB upgrade: when it passes, this DuckDB no longer has the defect that fails the 3M
    nightly, and the marker (and the README's known limit) go."""
    from bench.deleted_rows_memory import measure, table_file

    whole, deleted = tmp_path / "whole.duckdb", tmp_path / "deleted.duckdb"
    table_file(whole, 4_000_000, None)
    table_file(deleted, 4_000_000, 100)
    baseline = measure(whole, 1000)
    assert measure(deleted, 1000) <= baseline + 8  # 4M rows pinned would be about 32 MB more
