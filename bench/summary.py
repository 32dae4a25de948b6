"""One table over scales: the newest bench/results/<scale>-*.json of each scale, against the targets of the issue.

    uv run python -m bench.summary            prints the table and writes bench/results/SUMMARY.md

Targets (2 cores, 1M customers): full build <= 300 s and <= 8 GB peak memory; nightly <= 60 s end to end, and its
time nearly flat from 100k to 1M (reported as the nightly time ratio 1M / 100k next to the data ratio, 10x).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.run import RESULTS_DIR, SCALES

TARGETS = {"full_seconds": 300, "full_peak_gib": 8, "nightly_seconds": 60}


def latest_results(results_dir: Path = RESULTS_DIR) -> dict[str, dict]:
    """scale -> the newest complete result (both runs measured) of that scale."""
    found: dict[str, dict] = {}
    for path in sorted(results_dir.glob("*.json")):  # timestamps sort, so later files win
        record = json.loads(path.read_text(encoding="utf-8"))
        if "nightly" in record and record.get("scale") in SCALES:
            found[record["scale"]] = record | {"file": path.name}
    return {scale: found[scale] for scale in SCALES if scale in found}


def summary_rows(results: dict[str, dict]) -> list[str]:
    rows = [
        "| scale | orders | full build s | nightly s | full peak RSS GiB | nightly peak RSS GiB | lower bound s | "
        "full ÷ bound | nightly ÷ bound | result file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scale, r in results.items():
        full, nightly, bound = r["full_build"], r["nightly"], r["lower_bound"]
        rows.append(
            f"| {scale} | {r['sources'].get('orders', 0):,} | {full['seconds']} | {nightly['seconds']} | "
            f"{full['peak_rss_mib'] / 1024:.2f} | {nightly['peak_rss_mib'] / 1024:.2f} | {bound['seconds']} | "
            f"{full['seconds'] / bound['seconds']:.0f}× | {nightly['seconds'] / bound['seconds']:.0f}× | {r['file']} |"
        )
    return rows


def target_rows(results: dict[str, dict]) -> list[str]:
    rows = []
    top = results.get("1M")
    if top:
        full, nightly = top["full_build"], top["nightly"]
        rows += [
            f"- full build at 1M: {full['seconds']} s (target ≤ {TARGETS['full_seconds']} s): "
            f"{'met' if full['seconds'] <= TARGETS['full_seconds'] else 'missed'}",
            f"- peak memory at 1M: {full['peak_rss_mib'] / 1024:.2f} GiB (target ≤ {TARGETS['full_peak_gib']} GB): "
            f"{'met' if full['peak_rss_mib'] / 1024 <= TARGETS['full_peak_gib'] else 'missed'}",
            f"- nightly at 1M: {nightly['seconds']} s (target ≤ {TARGETS['nightly_seconds']} s): "
            f"{'met' if nightly['seconds'] <= TARGETS['nightly_seconds'] else 'missed'}",
        ]
    if top and "100k" in results:
        ratio = top["nightly"]["seconds"] / results["100k"]["nightly"]["seconds"]
        rows.append(f"- nightly 1M ÷ nightly 100k: {ratio:.2f} for 10× the data (flat would be ≈ 1)")
    return rows


def main() -> None:
    results = latest_results()
    text = "\n".join(["## Benchmark summary", "", *summary_rows(results), "", *target_rows(results), ""])
    (RESULTS_DIR / "SUMMARY.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
