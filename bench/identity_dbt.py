"""Identity's dbt models alone at scale (not a test: it prints timings and the dbt process's peak RSS).

    uv run python -m bench.identity_dbt --persons 1000000 --cache .bench-cache [--data-dir DIR]

Where bench/identity_scale.py times identity's in-memory path, this times the path the pipeline takes: the dbt
models from int_phone_numbers to int_identity_map in one `dbt run`, over a warehouse whose staging tables hold the
messy generator's data (bench/identity_scale.py's cache), once from nothing (a full build) and once after 0.1 %
new order records (a nightly run). Each run is one process measured with bench.run.measure (wall, CPU, peak RSS of
the dbt process); per-model times come from dbt's log lines. Pairwise precision and recall of int_identity_map
against the generator's truth are printed after the full build.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path

import duckdb
import psutil

from bench.identity_scale import data_arguments, messy_frames
from bench.run import DBT, DBT_DIR, MIB, _commit, measure
from pipeline.lib import messy_data
from pipeline.settings import load_settings

MODELS = (
    "int_run_date",
    "int_phone_numbers",
    "int_identifiers",
    "int_identity_records",
    "int_identity_links",
    "int_identity_match_model",
    "int_identity_matches",
    "int_identity_components",
    "int_identity_map",
)
# Staging columns int_run_date reads that the messy generator's staged frames lack.
MISSING = {"stg_helpdesk__tickets": {"solved_at": "varchar"}}
LOADED = datetime(2026, 1, 1)  # the staged rows' load time (_loaded_at, as landing stamps it) before the nightly


def stage(warehouse: Path, staged: dict) -> None:
    """A warehouse holding only the staging tables, from the generator's staged frames, loaded at LOADED."""
    warehouse.unlink(missing_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema staging")
        for name, frame in staged.items():
            extra = "".join(f", cast(null as {kind}) as {column}" for column, kind in MISSING.get(name, {}).items())
            con.register("frame", frame.to_arrow())
            con.execute(
                f"create table staging.{name} as select *{extra}, ?::timestamp as _loaded_at from frame", [LOADED]
            )
            con.unregister("frame")


def add_orders(warehouse: Path, fraction: float, seed: int) -> int:
    """Appends `fraction` of the staged orders again under new ids (a day of existing guests' orders, loaded now),
    the same ones on every run with the same seed."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "create temp table extra as select * replace ('N' || order_id as order_id, "
            "current_timestamp::timestamp as _loaded_at) "
            "from staging.stg_webshop__orders where hash(order_id, ?) % ? = 0",
            [seed, round(1 / fraction)],
        )
        con.execute("insert into staging.stg_webshop__orders select * from extra")
        return con.execute("select count(*) from extra").fetchone()[0]


def sample_rss(samples: list[tuple[float, int]], warehouse: Path, done: threading.Event) -> None:
    """(epoch seconds, RSS) of the dbt process on `warehouse` every 0.2 s until `done`: which model holds the
    peak."""
    while not done.is_set():
        for proc in psutil.process_iter(["cmdline", "memory_info"]):
            cmdline = proc.info["cmdline"] or []
            ours = any(Path(word).name == "dbt" for word in cmdline[:2]) and str(warehouse) in " ".join(cmdline)
            if ours and proc.info["memory_info"]:
                samples.append((time.time(), proc.info["memory_info"].rss))
        done.wait(0.2)


def model_peaks(text: str, samples: list[tuple[float, int]]) -> list[tuple[str, float, float]]:
    """(model, seconds, peak RSS GiB while it ran) from dbt's START / OK lines (local clock) and the samples."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    today = datetime.now().date()
    moments = [
        (kind, model, datetime.combine(today, datetime.strptime(clock, "%H:%M:%S").time()).timestamp(), seconds)
        for clock, kind, model, seconds in re.findall(
            r"^(\d\d:\d\d:\d\d)\s+\d+ of \d+ (START|OK) .*?model \S+?\.(\w+) .*?(?:in ([\d.]+)s\])?$", text, re.M
        )
    ]
    started = {model: at for kind, model, at, _ in moments if kind == "START"}
    peaks = []
    for kind, model, ended, seconds in moments:
        if kind == "OK":
            during = [rss for at, rss in samples if started[model] - 1 <= at <= ended + 1]
            peaks.append((model, float(seconds), max(during, default=0) / 2**30))
    return peaks


def dbt_run(data_dir: Path, memory_limit: str | None, log: Path):
    warehouse = data_dir / "warehouse.duckdb"
    settings = load_settings()
    if memory_limit:
        settings = settings.model_copy(
            update={"duckdb": settings.duckdb.model_copy(update={"memory_limit": memory_limit})}
        )
    dbt_vars = settings.dbt_vars(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:  # duckdb.keep_open decided as a pipeline run does
        dbt_vars["duckdb_keep_open"] = settings.keep_warehouse_open(con)
    cmd = [DBT, "run", "--select", *MODELS, "--vars", json.dumps(dbt_vars)]
    cmd += ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    env = {"PATH": str(Path(DBT).parent) + ":/usr/bin:/bin", "CDP_WAREHOUSE": str(warehouse), "HOME": str(data_dir)}
    log.unlink(missing_ok=True)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(samples, warehouse, done), daemon=True)
    sampler.start()
    measured = measure(cmd, env, log)
    done.set()
    sampler.join()
    text = log.read_text(encoding="utf-8", errors="replace")
    return measured, model_peaks(text, samples), text


def report(label: str, measured, steps) -> None:
    dbt_peak = max((v for k, v in measured.process_peak_rss_mib.items() if k.startswith("dbt")), default=0.0)
    print(
        f"{label}: {measured.seconds:.1f} s wall, {measured.cpu_seconds:.1f} CPU s, dbt peak RSS "
        f"{dbt_peak / 1024:.2f} GiB ({dbt_peak * MIB / 1e9:.2f} GB), load {measured.load_average_1m}, "
        f"exit {measured.returncode}",
        flush=True,
    )
    for model, seconds, peak in steps:
        print(f"  {model}: {seconds:.1f} s, peak RSS {peak:.2f} GiB", flush=True)


def main() -> None:
    parser = data_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".bench-identity-dbt"))
    parser.add_argument("--memory-limit", help="dbt's DuckDB memory_limit (default: the settings')")
    parser.add_argument("--no-nightly", action="store_true")
    args = parser.parse_args()

    config = messy_data.MessyConfig(persons=args.persons, seed=args.seed, mix=args.mix)
    staged, truth = messy_frames(config, args.cache)
    shutil.rmtree(args.data_dir, ignore_errors=True)
    args.data_dir.mkdir(parents=True)
    warehouse = (args.data_dir / "warehouse.duckdb").resolve()
    stage(warehouse, staged)
    records = sum(frame.height for frame in staged.values())
    del staged
    print(f"commit {_commit()}; {args.persons} persons, {records} staged records", flush=True)

    full, steps, text = dbt_run(warehouse.parent, args.memory_limit, args.data_dir / "full.log")
    report("full build", full, steps)
    if full.returncode:
        print(text[-3000:])
        return
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assigned = con.execute("select source, record_id, customer_id from intermediate.int_identity_map").pl()
    overall = messy_data.pairwise_scores(assigned, truth).row(0, named=True)
    print(f"  pairwise precision {overall['precision']:.4f}, recall {overall['recall']:.4f}", flush=True)
    del assigned
    if args.no_nightly:
        return
    added = add_orders(warehouse, 0.001, args.seed)
    nightly, steps, text = dbt_run(warehouse.parent, args.memory_limit, args.data_dir / "nightly.log")
    report(f"nightly run (+{added} order records)", nightly, steps)
    if nightly.returncode:
        print(text[-3000:])


if __name__ == "__main__":
    main()
