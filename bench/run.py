"""End-to-end benchmark of the pipeline at a demo scale (what `make bench SCALE=10k|100k|1M|3M` calls).

    uv run python -m bench.run --scale 10k [--keep] [--env NAME=VALUE ...]

1. generates the demo sources as of the night before the last day (cutoff = end_date - 1 day), or copies them from
   the cache of an earlier bench with the same generator and settings (~/.cache/cdp-bench; `--no-cache` regenerates).
   The last day is the newest complete day of the shop's calendar (yesterday in its time zone), so the nightly run
   is the one the schedule makes: at the newest partition, pulling from the high-water mark with its lookback. The
   demo's own end day (2026-11-22) made it a backfill of one past day once the clock had passed that day: a window
   pull without lookback, measured so until session 23. The history keeps the demo's length (1,056 days),
   whatever the day,
2. times the full build from an empty warehouse (`python -m pipeline.cli run --end <cutoff>`, a subprocess, so
   interpreter, Dagster and dbt start-up count),
3. times the lower bound on the same sources (bench/lower_bound.py: DuckDB reading every record once), so every
   ratio to it is measured in the same run on the same machine,
4. regenerates without cutoff (one new day) and times the nightly incremental run of that single partition,
5. times the fixed overheads (imports, dbt start-up/parse) in fresh processes.
Every process is measured for wall time, CPU time and peak RSS of its whole process tree, and the peak RSS of each
kind of process in it (the Dagster run process, which executes the steps in-process, and each dbt command it starts;
RSS sampled every 0.2 s); per-step and per-dbt-node times come from the Dagster run's event log (DAGSTER_HOME is the
work directory's `dagster/`, with the shipped pipeline/config/dagster.yaml). Each dbt node's memory is the peak RSS
of its dbt process between the node's start and end in that invocation's dbt.log, and its rise over the RSS at its
start (what the node itself added; the allocator may keep what earlier nodes took).
Results go to bench/results/<scale>-<timestamp>.{md,json}; the Markdown is also printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil

from pipeline.lib import demo_data
from pipeline.lib.demo_data import DEFAULT_END, HISTORY_START, DemoConfig, generate
from pipeline.lib.environment import REPO_ROOT, SHIPPED_INSTANCE
from pipeline.settings import shop_calendar

SCALES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000, "3M": 3_000_000}
# The memory bound of the whole run (issue 18: 8 GB, i.e. 8e9 bytes = 7.45 GiB): every process tree stays below it.
MEMORY_BOUND_MIB = 8e9 / 2**20
SAMPLE_SECONDS = 0.2
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DBT_DIR = REPO_ROOT / "dbt_project"
PYTHON = sys.executable
DBT = str(Path(sys.executable).with_name("dbt"))
MIB = 1024 * 1024
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cdp-bench"
CACHE_UNUSED_DAYS = 3


@dataclass
class Measured:
    """One process run: wall seconds, CPU seconds and peak RSS of its process tree (the sum of its processes' RSS;
    also their PSS, in which pages a forked worker shares with its parent count once), exit code, epoch start/end,
    and the peak RSS of each kind of process in the tree (`process_label`)."""

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    returncode: int
    started_at: float
    ended_at: float
    process_peak_rss_mib: dict[str, float] = field(default_factory=dict)
    load_average_1m: float = 0.0  # at the end: how busy the shared machine was
    peak_pss_mib: float = 0.0
    # The tree's peak, process kind by process kind: which processes were alive together at that moment.
    peak_breakdown_mib: dict[str, float] = field(default_factory=dict)
    # [epoch, pid, RSS MiB] of every dbt process at every sample: mapped to dbt's nodes by node_memory().
    dbt_rss_samples: list[list[float]] = field(default_factory=list)


def process_label(cmdline: list[str]) -> str:
    """What a process of the tree is, for the per-process peaks: `dbt <command>`, `python -m <module>`, the script
    an interpreter runs, or the program's name."""
    words = [Path(word).name for word in cmdline]
    if "dbt" in words:
        rest = cmdline[words.index("dbt") + 1 :]
        return f"dbt {rest[0]}" if rest else "dbt"
    if "-m" in cmdline[:-1]:
        return f"python -m {cmdline[cmdline.index('-m') + 1]}"
    if len(cmdline) > 1 and not cmdline[1].startswith("-"):
        return words[1]
    return words[0] if words else "?"


def _tree_rss(
    root: psutil.Process, peaks: dict[str, int], now: dict[int, tuple[str, int]]
) -> tuple[int, list[psutil.Process]]:
    """RSS of the tree now and its processes; raises each process kind's entry in `peaks` to its RSS now and fills
    `now` with pid -> (kind, RSS)."""
    total, alive = 0, []
    now.clear()
    for proc in [root, *root.children(recursive=True)]:
        try:
            rss, cmdline = proc.memory_info().rss, proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # exited between listing and reading
        if not cmdline:
            continue  # exiting: nothing left to measure
        label = process_label(cmdline)
        total += rss
        alive.append(proc)
        now[proc.pid] = (label, rss)
        peaks[label] = max(peaks.get(label, 0), rss)
    return total, alive


def _tree_pss(processes: list[psutil.Process]) -> int:
    """Proportional set size of the processes: pages a forked worker shares with its parent count once, not once
    per process as in the sum of RSS (reading it costs ~0.1 s per GB-sized process)."""
    total = 0
    for proc in processes:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


def measure(cmd: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run `cmd` to completion (output to `log`), sampling the RSS of its process tree every SAMPLE_SECONDS."""
    with open(log, "ab") as out:
        # Waited-for descendants (dbt under Dagster included) add their CPU time to RUSAGE_CHILDREN.
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_at, began = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        root, peak, peaks, now, at_peak = psutil.Process(proc.pid), 0, {}, {}, {}
        peak_pss, pss_read, dbt_samples = 0, 0.0, []
        while proc.poll() is None:
            try:
                rss, alive = _tree_rss(root, peaks, now)
                sampled_at = time.time()
                dbt_samples += [
                    [round(sampled_at, 2), pid, round(size / MIB, 1)]
                    for pid, (label, size) in now.items()
                    if label.startswith("dbt")
                ]
                if rss > peak:
                    peak, at_peak = rss, dict(now)
                # PSS <= RSS: only a sum of RSS above the PSS peak can raise it; read at most once a second.
                if rss > peak_pss and time.perf_counter() - pss_read >= 1.0:
                    peak_pss, pss_read = max(peak_pss, _tree_pss(alive)), time.perf_counter()
            except psutil.NoSuchProcess:
                break
            time.sleep(SAMPLE_SECONDS)
        returncode = proc.wait()
        seconds = time.perf_counter() - began
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime
    by_process = {label: round(rss / MIB, 1) for label, rss in sorted(peaks.items(), key=lambda kv: -kv[1])}
    breakdown: dict[str, float] = {}
    for label, size in at_peak.values():
        breakdown[label] = round(breakdown.get(label, 0) + size / MIB, 1)
    load = round(os.getloadavg()[0], 2)
    return Measured(
        round(seconds, 2),
        round(cpu, 2),
        round(peak / MIB, 1),
        returncode,
        started_at,
        time.time(),
        by_process,
        load,
        round(peak_pss / MIB, 1),
        breakdown,
        dbt_samples,
    )


def node_memory(samples: list[list[float]], since: float, logs: Path = DBT_DIR / "target") -> dict[str, dict]:
    """dbt node -> peak RSS MiB of its dbt process while it ran, the rise over the RSS at its start, and its seconds.

    A node runs from its first to its last event in the dbt.log of each invocation's target directory written since
    `since` (its start and result lines at dbt's info level; matched to the sampled processes by pid); a node without
    a result (its process was killed) runs to the process's last sample. Nodes shorter than a sample interval get the
    sample just after them."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for at, pid, mib in samples:
        by_pid.setdefault(int(pid), []).append((at, mib))
    spans: dict[str, list[float]] = {}
    for log in logs.glob("*/dbt.log"):
        if log.stat().st_mtime < since:
            continue
        with open(log, encoding="utf-8") as lines:
            for line in lines:
                if '"unique_id"' not in line:
                    continue
                event = json.loads(line)
                node, info = event["data"].get("node_info", {}).get("unique_id"), event["info"]
                if not node or info["pid"] not in by_pid:
                    continue
                at = datetime.fromisoformat(info["ts"]).timestamp()
                span = spans.setdefault(node, [info["pid"], at, None])
                if event["data"]["node_info"].get("node_finished_at"):
                    span[2] = at
    result = {}
    for node, (pid, start, end) in spans.items():
        series = by_pid[pid]
        end = end or series[-1][0]
        during = [mib for at, mib in series if start <= at <= end]
        before = [mib for at, mib in series if at < start]
        after = [mib for at, mib in series if at > end]
        if not during and not after:
            continue
        peak = max(during or after[:1])
        result[node.split(".", 2)[-1]] = {
            "peak_mib": peak,
            "rise_mib": round(peak - (before[-1] if before else 0.0), 1),
            "seconds": round(end - start, 2),
        }
    return dict(sorted(result.items(), key=lambda kv: -kv[1]["peak_mib"]))


def demo_sources(cfg: DemoConfig, out: Path, cache: Path | None) -> tuple[dict[str, int], bool]:
    """(record counts, whether they came from the cache): the demo sources of cfg written to `out`, replacing what is
    there. With a cache directory, they are generated once per generator source and config (at 1M, a minute or two
    and ~2.6 GiB of RSS, chunked) and copied from there afterwards, as hard links: the pipeline opens its sources
    read-only, and a real copy would cost the disk twice (8 GB at 3M)."""
    if cache is None:
        return generate(cfg, out), False
    key = hashlib.sha256(Path(demo_data.__file__).read_bytes() + repr(cfg).encode()).hexdigest()[:16]
    entry = cache / f"{cfg.customers}-{key}"
    hit = (entry / "sources.json").exists()
    if hit:
        (entry / "sources.json").touch()  # in use: see prune_cache
    prune_cache(cache)
    if not hit:
        # Generated beside the entry and renamed into place whole: benches started together (helpers on one
        # machine) each generate their own, and none deletes or reads another's half-written entry.
        shutil.rmtree(entry, ignore_errors=True)  # an entry without sources.json is a killed bench's leftover
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=cache))
        counts = generate(cfg, scratch / "demo")
        (scratch / "sources.json").write_text(json.dumps(counts), encoding="utf-8")
        try:
            scratch.rename(entry)
        except OSError:  # another bench's entry landed first: the same config and generator, so the same data
            shutil.rmtree(scratch)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(entry / "demo", out, copy_function=os.link)
    return json.loads((entry / "sources.json").read_text(encoding="utf-8")), hit


def prune_cache(cache: Path, unused_days: int = CACHE_UNUSED_DAYS) -> list[Path]:
    """Delete the cache entries no bench used for `unused_days`: each day's bench makes new ones (its sources end on
    the day before), and at 3M an entry takes 8 GB. Returns what was deleted."""
    if not cache.is_dir():
        return []
    stale = time.time() - unused_days * 86400
    gone = [
        entry
        for entry in cache.iterdir()
        if (entry / "sources.json").is_file() and (entry / "sources.json").stat().st_mtime < stale
    ]
    for entry in gone:
        shutil.rmtree(entry, ignore_errors=True)
    return gone


def _commit() -> str:
    """The checkout's commit (with `+changes` when the work tree differs from it), or '' outside a git checkout."""
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def newest_complete_day() -> date:
    """The newest complete day in the shop's time zone: the partition the nightly schedule runs."""
    return datetime.now(ZoneInfo(shop_calendar().timezone)).date() - timedelta(days=1)


def parse_scale(text: str) -> int:
    return SCALES.get(text) or int(text)


def machine() -> dict:
    memory = psutil.virtual_memory()
    import dagster
    import dbt.version
    import duckdb

    return {
        "cpu_logical": psutil.cpu_count(),
        "cpu_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(memory.total / 1024**3, 1),
        "memory_available_gib": round(memory.available / 1024**3, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
        "dbt": str(dbt.version.installed).lstrip("="),
        "platform": platform.platform(),
    }


def run_profile(dagster_home: Path, spawned: Measured) -> dict:
    """Start-up, step and dbt-node timings of the latest run in the instance at `dagster_home`."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    run = instance.get_runs(limit=1)[0]
    stats = instance.get_run_stats(run.run_id)
    steps = {
        s.step_key: round((s.end_time or 0) - (s.start_time or 0), 2) for s in instance.get_run_step_stats(run.run_id)
    }
    nodes: dict[str, float] = {}
    checks: dict[str, float] = {}
    for entry in instance.all_logs(
        run.run_id, of_type={dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    ):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            data = event.event_specific_data.materialization
            target, name = nodes, data.asset_key.to_user_string()
        else:
            data = event.event_specific_data
            target, name = checks, f"{data.asset_key.to_user_string()}:{data.check_name}"
        duration = data.metadata.get("Execution Duration")
        if duration is not None:
            target[name] = round(float(duration.value), 3)
    # Creating a partitioned run writes an ASSET_MATERIALIZATION_PLANNED event per asset and partition before RUN_START.
    first_event = instance.all_logs(run.run_id)[0].timestamp
    planned = len(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED))
    run_start = stats.start_time or spawned.ended_at
    teardown = spawned.ended_at - (stats.end_time or spawned.ended_at)
    return {
        "run_id": run.run_id,
        "status": str(run.status.value),
        "startup_seconds": round(first_event - spawned.started_at, 2),
        "planning_seconds": round(run_start - first_event, 2),
        "planned_events": planned,
        "teardown_seconds": round(teardown, 2),
        "run_seconds": round((stats.end_time or 0) - (stats.start_time or 0), 2),
        "steps": steps,
        "dbt_model_seconds": nodes,
        "dbt_test_seconds": checks,
    }


def _run_record(run: Measured, dagster_home: Path) -> dict:
    """A pipeline run's measures, its Dagster run profile and its dbt nodes' memory (the raw samples are left out)."""
    measured = asdict(run)
    samples = measured.pop("dbt_rss_samples")
    return {**measured, "profile": run_profile(dagster_home, run), "node_memory": node_memory(samples, run.started_at)}


def overheads(env: dict[str, str], work: Path, log: Path) -> dict[str, dict]:
    """Fixed costs that every run pays, each timed in a fresh process."""
    dbt_args = ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    parse = [
        DBT,
        "parse",
        "--quiet",
        *dbt_args,
        "--target-path",
        str(work / "dbt-target"),
        "--log-path",
        str(work / "dbt-logs"),
    ]
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "import duckdb": [PYTHON, "-c", "import duckdb"],
        "import dagster": [PYTHON, "-c", "import dagster"],
        "import great_expectations": [PYTHON, "-c", "import great_expectations"],
        "import pipeline.definitions": [PYTHON, "-c", "import pipeline.definitions"],
        "dbt --version": [DBT, "--version"],
        "dbt parse (cold, full)": parse,
        "dbt parse (warm, partial)": parse,
    }
    return {name: asdict(measure(cmd, env, log)) for name, cmd in commands.items()}


def _step_rows(full: dict, nightly: dict) -> list[str]:
    names = sorted(
        set(full["steps"]) | set(nightly["steps"]),
        key=lambda s: -max(full["steps"].get(s, 0), nightly["steps"].get(s, 0)),
    )
    rows = ["| step | full build s | nightly s |", "|---|---:|---:|"]
    rows += [f"| {n} | {full['steps'].get(n, '')} | {nightly['steps'].get(n, '')} |" for n in names]
    for label, key in (
        ("process start -> first run event (imports, definitions, dbt manifest)", "startup_seconds"),
        ("run creation: ASSET_MATERIALIZATION_PLANNED events", "planned_events"),
        ("run creation -> RUN_START (writing those events)", "planning_seconds"),
        ("run end -> process exit (summary, teardown)", "teardown_seconds"),
    ):
        rows.append(f"| {label} | {full[key]} | {nightly[key]} |")
    return rows


def _process_rows(full: dict, nightly: dict) -> list[str]:
    """Peak RSS of each kind of process (the tree's peak is the sum of those alive at one moment)."""
    names = list(dict.fromkeys([*full["process_peak_rss_mib"], *nightly["process_peak_rss_mib"]]))
    rows = ["| peak RSS per process | full build MiB | nightly MiB |", "|---|---:|---:|"]
    rows += [
        f"| {n} | {full['process_peak_rss_mib'].get(n, '')} | {nightly['process_peak_rss_mib'].get(n, '')} |"
        for n in names
    ]
    within = max(full["peak_rss_mib"], nightly["peak_rss_mib"]) <= MEMORY_BOUND_MIB
    rows.append(
        f"| whole tree, sum of RSS (bound 8 GB = {MEMORY_BOUND_MIB:.0f} MiB: {'within' if within else 'EXCEEDED'}) | "
        f"{full['peak_rss_mib']} | {nightly['peak_rss_mib']} |"
    )
    rows.append(
        "| whole tree, sum of PSS (forked workers' shared pages once) | "
        f"{full.get('peak_pss_mib', '')} | {nightly.get('peak_pss_mib', '')} |"
    )
    return rows


def _memory_rows(full: dict, nightly: dict, top: int = 12) -> list[str]:
    """The tree's peak by process, and the dbt nodes that raised their dbt process's RSS most (node_memory)."""
    rows = ["| at the tree's peak | full build MiB | nightly MiB |", "|---|---:|---:|"]
    names = list(dict.fromkeys([*full.get("peak_breakdown_mib", {}), *nightly.get("peak_breakdown_mib", {})]))
    rows += [
        f"| {n} | {full['peak_breakdown_mib'].get(n, '')} | {nightly['peak_breakdown_mib'].get(n, '')} |" for n in names
    ]
    full_nodes, nightly_nodes = full.get("node_memory", {}), nightly.get("node_memory", {})
    if not full_nodes and not nightly_nodes:
        return rows
    rows += [
        "",
        "| dbt node: peak RSS of its dbt process while it ran (rise over its start) | full build MiB | nightly MiB |",
        "|---|---:|---:|",
    ]
    biggest = sorted(
        set(full_nodes) | set(nightly_nodes),
        key=lambda n: -max(full_nodes.get(n, {}).get("rise_mib", 0), nightly_nodes.get(n, {}).get("rise_mib", 0)),
    )[:top]

    def cell(nodes: dict, name: str) -> str:
        node = nodes.get(name)
        return f"{node['peak_mib']} ({node['rise_mib']:+})" if node else ""

    rows += [f"| {n} | {cell(full_nodes, n)} | {cell(nightly_nodes, n)} |" for n in biggest]
    return rows


def _dbt_rows(full: dict, nightly: dict) -> list[str]:
    rows = ["| dbt | full build s | nightly s |", "|---|---:|---:|"]
    for label, key in (
        ("models (sum of node times)", "dbt_model_seconds"),
        ("tests (sum of node times)", "dbt_test_seconds"),
    ):
        rows.append(f"| {label} | {sum(full[key].values()):.2f} | {sum(nightly[key].values()):.2f} |")
    for run in (full, nightly):
        step_total = sum(seconds for step, seconds in run["steps"].items() if step.startswith("dbt"))
        node_total = sum(run["dbt_model_seconds"].values()) + sum(run["dbt_test_seconds"].values())
        run["dbt_overhead_seconds"] = round(step_total - node_total, 2)
    rows.append(
        f"| dbt steps minus node times (dbt start-up/parse/compile, Dagster event writes) | "
        f"{full['dbt_overhead_seconds']} | {nightly['dbt_overhead_seconds']} |"
    )
    slowest = sorted(full["dbt_model_seconds"].items(), key=lambda kv: -kv[1])[:5]
    rows += [
        f"| slowest model: {name} | {seconds} | {nightly['dbt_model_seconds'].get(name, '')} |"
        for name, seconds in slowest
    ]
    return rows


def _generated(record: dict, stage: str) -> str:
    cached = record.get("sources_from_cache", {}).get(stage)
    return "demo data copied from the cache" if cached else "generate demo data"


def _backfill_warning(record: dict) -> str:
    if record.get("nightly_at_newest_day", True):
        return ""
    return "; the day turned during the bench: a backfill of one past day, not the nightly"


def markdown(record: dict) -> str:
    m, full, nightly, bound = record["machine"], record["full_build"], record["nightly"], record["lower_bound"]
    lines = [
        f"## Benchmark {record['scale']} ({record['customers']:,} persons) — {record['timestamp']}",
        "",
        *([f"Extra environment: {' '.join(record['env'])}", ""] if record["env"] else []),
        f"Commit: {record.get('commit') or 'not recorded'}. "
        f"Machine: {m['cpu_logical']} cores ({m['cpu_physical']} physical), {m['memory_gib']} GiB RAM "
        f"({m['memory_available_gib']} GiB free), load avg {m['load_average_1m']} at start; "
        f"python {m['python']}, duckdb {m['duckdb']}, dagster {m['dagster']}, dbt {m['dbt']}.",
        "Sources (full data): " + ", ".join(f"{k}={v:,}" for k, v in record["sources"].items()),
        "",
        "| measure | wall s | CPU s (tree) | peak RSS MiB (tree) |",
        "|---|---:|---:|---:|",
        f"| {_generated(record, 'cutoff')} (cutoff {record['cutoff']}) | {record['generate_seconds']['cutoff']} | | |",
        f"| **full build** `run --end {record['cutoff']}` ({full['profile']['status']}) | **{full['seconds']}** | "
        f"{full['cpu_seconds']} | {full['peak_rss_mib']} |",
        f"| lower bound: DuckDB reads every record once, one aggregate query (process) | {bound['seconds']} | "
        f"{bound['cpu_seconds']} | {bound['peak_rss_mib']} |",
        f"| lower bound: query only | {bound['query_seconds']} | | |",
        f"| **full build ÷ lower bound (process; wall / CPU)** | **{record['full_over_bound']}×** | "
        f"{record['full_over_bound_cpu']}× | |",
        f"| {_generated(record, 'full')} (+1 day) | {record['generate_seconds']['full']} | | |",
        f"| **nightly incremental** `run --start {record['new_day']} --end {record['new_day']}` "
        f"({nightly['profile']['status']}{_backfill_warning(record)}) | "
        f"**{nightly['seconds']}** | {nightly['cpu_seconds']} | {nightly['peak_rss_mib']} |",
        f"| **nightly ÷ lower bound (process; wall / CPU)** | **{record['nightly_over_bound']}×** | "
        f"{record['nightly_over_bound_cpu']}× | |",
        "",
        *_process_rows(full, nightly),
        "",
        *_memory_rows(full, nightly),
        "",
        *_step_rows(full["profile"], nightly["profile"]),
        "",
        *_dbt_rows(full["profile"], nightly["profile"]),
        "",
        "| fixed overhead (fresh process) | wall s | CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {o['seconds']} | {o['cpu_seconds']} | {o['peak_rss_mib']} |"
            for name, o in record["overheads"].items()
        ],
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10k", help="10k | 100k | 1M | 3M or a number of persons")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (data, warehouse, logs)")
    parser.add_argument("--no-cache", action="store_true", help=f"generate the sources again, not from {CACHE_DIR}")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the pipeline runs, to measure a setting (repeatable)",
    )
    args = parser.parse_args()
    customers = parse_scale(args.scale)
    new_day = newest_complete_day()
    history = {"end_date": new_day, "start_date": new_day - (DEFAULT_END - HISTORY_START)}
    cutoff = new_day - timedelta(days=1)
    work = Path(tempfile.mkdtemp(prefix=f"cdp-bench-{args.scale}-"))
    log = work / "bench.log"
    # The Dagster instance as `make setup` makes it: the shipped settings (pool limits, the batched event log) in the
    # work directory, on disk like a user's `.dagster/`.
    dagster_home = work / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(SHIPPED_INSTANCE, dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("CDP_WAREHOUSE", "DAGSTER_HOME")}
    env.update(CDP_DATA_DIR=str(work), DAGSTER_HOME=str(dagster_home))
    env.update(item.split("=", 1) for item in args.env)
    record: dict = {
        "env": args.env,
        "scale": args.scale,
        "customers": customers,
        "timestamp": datetime.now().strftime("%Y%m%dT%H%M%S"),
        "commit": _commit(),
        "cutoff": cutoff.isoformat(),
        "new_day": new_day.isoformat(),
        "machine": machine(),
        "work_dir": str(work),
        "dagster_home": str(dagster_home),
        "generate_seconds": {},
        "sources_from_cache": {},
    }
    cache = None if args.no_cache else CACHE_DIR
    print(f"bench {args.scale}: work dir {work}, log {log}", flush=True)
    try:
        began = time.perf_counter()
        _, record["sources_from_cache"]["cutoff"] = demo_sources(
            DemoConfig(customers=customers, cutoff=cutoff, **history), work / "demo", cache
        )
        record["generate_seconds"]["cutoff"] = round(time.perf_counter() - began, 2)

        print("full build ...", flush=True)
        # A failed run is still timed (its status is in the table): one broken asset should not void the numbers.
        full = measure([PYTHON, "-m", "pipeline.cli", "run", "--end", cutoff.isoformat()], env, log)
        record["full_build"] = _run_record(full, dagster_home)

        print("lower bound ...", flush=True)
        bound_out = work / "lower_bound.json"
        bound = measure([PYTHON, "-m", "bench.lower_bound", str(work / "demo"), "--out", str(bound_out)], env, log)
        if bound.returncode:
            raise SystemExit(f"lower bound failed (exit {bound.returncode}); see {log}")
        record["lower_bound"] = {**asdict(bound), **json.loads(bound_out.read_text())}
        record["full_over_bound"] = round(full.seconds / bound.seconds, 1)
        record["full_over_bound_cpu"] = round(full.cpu_seconds / max(bound.cpu_seconds, 0.01), 1)

        began = time.perf_counter()
        record["sources"], record["sources_from_cache"]["full"] = demo_sources(
            DemoConfig(customers=customers, **history), work / "demo", cache
        )
        record["generate_seconds"]["full"] = round(time.perf_counter() - began, 2)

        print("nightly incremental ...", flush=True)
        # The day turned during the full build (e.g. a 3M bench near midnight, shop time): a backfill, not the nightly.
        record["nightly_at_newest_day"] = new_day == newest_complete_day()
        nightly = measure(
            [PYTHON, "-m", "pipeline.cli", "run", "--start", new_day.isoformat(), "--end", new_day.isoformat()],
            env,
            log,
        )
        record["nightly"] = _run_record(nightly, dagster_home)
        record["nightly_over_bound"] = round(nightly.seconds / bound.seconds, 1)
        record["nightly_over_bound_cpu"] = round(nightly.cpu_seconds / max(bound.cpu_seconds, 0.01), 1)

        print("fixed overheads ...", flush=True)
        record["overheads"] = overheads(env, work, log)
    finally:
        # The JSON record is written even when a stage failed or was interrupted: the stages done so far are in it.
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = RESULTS_DIR / f"{args.scale}-{record['timestamp']}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    table = markdown(record)
    stem.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    print(f"results: {stem}.md / .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
