"""One table over scales: the newest bench/results/<scale>-*.json of each scale, against the targets of issue 18.

    uv run python -m bench.summary            prints the table, writes bench/results/SUMMARY.md and puts the same
                                              text in README.md between the bench-summary markers

The machines are noisy (2 shared cores), so the bar is ratios measured within one bench run: full build and nightly
over the single-scan lower bound of the same run; across scales, the nightly time ratio next to the data ratio (a
nightly run that costs what the day brings stays near 1 while the history grows 10x). Absolute targets at 1M on a
quiet machine: full build <= 300 s, nightly <= 60 s, peak RSS <= 8 GB; 3M must complete within the memory bound.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.run import MEMORY_BOUND_MIB, RESULTS_DIR, SCALES
from pipeline.lib.environment import REPO_ROOT

README = REPO_ROOT / "README.md"
# The README's copy of the summary sits between these lines; bench.summary rewrites what is between them.
README_MARKERS = ("<!-- bench-summary:start (written by python -m bench.summary) -->", "<!-- bench-summary:end -->")
TARGETS = {
    "full_seconds": 300,
    "nightly_seconds": 60,
    "full_over_bound": {"100k": 20, "1M": 10},
    "nightly_ratio": 1.5,
}


def latest_results(results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """scale -> the newest complete result (both runs measured) of that scale."""
    found: dict[str, dict] = {}
    for path in sorted(results_dir.glob("*.json")):  # timestamps sort, so later files win
        record = json.loads(path.read_text(encoding="utf-8"))
        if "nightly" in record and record.get("scale") in SCALES:
            found[record["scale"]] = record | {"file": path.name}
    return {scale: found[scale] for scale in SCALES if scale in found}


def incomplete_rows(results: dict[str, dict], results_dir: Path = RESULTS_DIR) -> list[str]:
    """A line for each result newer than its scale's newest complete one that has no nightly run (failed, stopped):
    the table above would otherwise show only the older success."""
    rows = []
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        scale, newest = record.get("scale"), results.get(record.get("scale"), {})
        if "nightly" not in record and scale in SCALES and record.get("timestamp", "") > newest.get("timestamp", ""):
            outcome = record.get("outcome") or "stopped before the nightly run"
            rows.append(f"- {scale}: a newer attempt did not complete ({path.name}): {outcome}")
    return rows


def _largest_process(run: dict) -> str:
    """`label size GiB` of the process with the largest peak RSS (older results did not record them)."""
    peaks = run.get("process_peak_rss_mib") or {}
    if not peaks:
        return ""
    label, mib = max(peaks.items(), key=lambda kv: kv[1])
    return f"{label} {mib / 1024:.2f}"


def _ratios(run: dict, bound: dict) -> str:
    """Wall and CPU time over the lower bound's; CPU ratios move less with the load of a shared machine."""
    wall = f"{run['seconds'] / bound['seconds']:.0f}×"
    if "cpu_seconds" not in run or not bound.get("cpu_seconds"):
        return wall
    return f"{wall} / {run['cpu_seconds'] / bound['cpu_seconds']:.0f}×"


def _seconds(run: dict) -> str:
    """A run's wall seconds, marked when the run failed (its time and ratios then stop at the failure)."""
    return f"{run['seconds']}" if run.get("returncode", 0) == 0 else f"{run['seconds']} (failed)"


def summary_rows(results: dict[str, dict]) -> list[str]:
    rows = [
        "| scale | orders | full build s | nightly s | full peak RSS GiB | nightly peak RSS GiB | largest process "
        "GiB (full) | lower bound s | full ÷ bound (wall / CPU) | nightly ÷ bound (wall / CPU) | load avg (start) | "
        "result file |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for scale, r in results.items():
        full, nightly, bound = r["full_build"], r["nightly"], r["lower_bound"]
        rows.append(
            f"| {scale} | {r['sources'].get('orders', 0):,} | {_seconds(full)} | {_seconds(nightly)} | "
            f"{full['peak_rss_mib'] / 1024:.2f} | {nightly['peak_rss_mib'] / 1024:.2f} | {_largest_process(full)} | "
            f"{bound['seconds']} | {_ratios(full, bound)} | {_ratios(nightly, bound)} | "
            f"{r.get('machine', {}).get('load_average_1m', '')} | {r['file']} |"
        )
    return rows


def nightly_ratio_rows(results: dict[str, dict]) -> list[str]:
    """The nightly time of each scale over the next smaller scale measured, next to the data ratio."""
    scales = list(results)
    rows = []
    for smaller, larger in zip(scales, scales[1:], strict=False):
        if any(results[scale]["nightly"].get("returncode", 0) != 0 for scale in (smaller, larger)):
            rows.append(f"- nightly {larger} ÷ nightly {smaller}: not comparable (a nightly run failed)")
            continue
        ratio = results[larger]["nightly"]["seconds"] / results[smaller]["nightly"]["seconds"]
        data = SCALES[larger] / SCALES[smaller]
        days = {results[scale]["timestamp"][:8] for scale in (smaller, larger)}
        caveat = "" if len(days) == 1 else f" — measured on different days ({', '.join(sorted(days))}): indicative only"
        loads = [results[scale].get("machine", {}).get("load_average_1m") for scale in (smaller, larger)]
        if len(days) == 1 and all(loads):
            caveat = f" (load average {loads[0]} vs {loads[1]} at their starts)"
        rows.append(
            f"- nightly {larger} ÷ nightly {smaller}: {ratio:.2f} for {data:g}× the data (flat would be ≈ 1){caveat}"
        )
    return rows


def _verdict(met: bool) -> str:
    return "met" if met else "missed"


def target_rows(results: dict[str, dict]) -> list[str]:
    rows = []
    for scale, bar in TARGETS["full_over_bound"].items():
        if scale in results:
            ratio = results[scale]["full_build"]["seconds"] / results[scale]["lower_bound"]["seconds"]
            rows.append(
                f"- full build at {scale}: {ratio:.1f}× the lower bound (target ≤ {bar}×): {_verdict(ratio <= bar)}"
            )
    top = results.get("1M")
    if top:
        full, nightly = top["full_build"], top["nightly"]
        peak = max(full["peak_rss_mib"], nightly["peak_rss_mib"])
        rows += [
            f"- full build at 1M: {full['seconds']} s (target ≤ {TARGETS['full_seconds']} s on a quiet machine): "
            f"{_verdict(full['seconds'] <= TARGETS['full_seconds'])}",
            f"- peak memory at 1M (full build and nightly, sum of RSS): {_gb(peak)} (target ≤ 8 GB): "
            f"{_verdict(peak <= MEMORY_BOUND_MIB)}{_pss_note(full, nightly)}",
            f"- nightly at 1M: {nightly['seconds']} s (target ≤ {TARGETS['nightly_seconds']} s): "
            f"{_verdict(nightly['seconds'] <= TARGETS['nightly_seconds'])}",
        ]
    if top and "100k" in results:
        ratio = top["nightly"]["seconds"] / results["100k"]["nightly"]["seconds"]
        same_day = top["timestamp"][:8] == results["100k"]["timestamp"][:8]
        verdict = _verdict(ratio <= TARGETS["nightly_ratio"]) if same_day else "not judged (different days)"
        rows.append(f"- nightly 1M ÷ nightly 100k: {ratio:.2f} (target ≤ {TARGETS['nightly_ratio']}): {verdict}")
    if "3M" in results:
        r = results["3M"]
        peak = max(r["full_build"]["peak_rss_mib"], r["nightly"]["peak_rss_mib"])
        done = r["full_build"]["returncode"] == 0 and r["nightly"]["returncode"] == 0
        rows.append(
            f"- 3M: {'completed' if done else 'FAILED'}, peak {_gb(peak)} (bound 8 GB): "
            f"{_verdict(done and peak <= MEMORY_BOUND_MIB)}"
        )
    else:
        rows.append("- 3M: not run yet")
    return rows


def _pss_note(*runs: dict) -> str:
    """The same peak as PSS (forked workers' shared pages counted once), where the result measured it."""
    pss = [run["peak_pss_mib"] for run in runs if run.get("peak_pss_mib")]
    return f" (sum of PSS {_gb(max(pss))})" if pss else ""


def _gb(mib: float) -> str:
    return f"{mib * 2**20 / 1e9:.2f} GB ({mib / 1024:.2f} GiB)"


def with_summary(readme: str, summary: str) -> str:
    """The README text with the lines between the bench-summary markers replaced by `summary`."""
    start, end = README_MARKERS
    if start not in readme or end not in readme:
        raise SystemExit(f"README.md has no bench-summary markers ({start} ... {end})")
    head, rest = readme.split(start, 1)
    return f"{head}{start}\n{summary.strip()}\n{end}{rest.split(end, 1)[1]}"


def main() -> None:
    results = latest_results()
    text = "\n".join(
        [
            "## Benchmark summary",
            "",
            *summary_rows(results),
            "",
            *incomplete_rows(results),
            *nightly_ratio_rows(results),
            *target_rows(results),
            "",
        ]
    )
    (RESULTS_DIR / "SUMMARY.md").write_text(text, encoding="utf-8")
    README.write_text(with_summary(README.read_text(encoding="utf-8"), text.split("\n", 2)[2]), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
