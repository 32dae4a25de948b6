"""Scale run of identity resolution on the messy generator's data (not a test: it prints timings).

    uv run python bench/identity_scale.py [--persons 100000] [--seed 1] [--mix balanced] [--cache DIR]

Builds the messy data set (pipeline/lib/messy_data.py: every mess category, ground truth per record) in memory,
then times each step of the in-memory path the dbt models take: normalisation (with the phone cache, as a nightly
run has it), the identity rules, the matcher (training as on a full run, scoring), components and stable ids; then
a nightly run over the same data plus 0.1 % new records, which resolves again only the neighbourhoods the new
records touch and scores with the stored model. Reports pairwise precision and recall against the truth, the
records the nightly resolved again and the nightly/full ratio. Generation time is not part of any figure;
`--cache DIR` keeps the generated data as Parquet there (1M persons take about 13 minutes to generate) and reads it
back on later runs with the same persons, seed and mix.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import polars as pl

from pipeline.lib import messy_data
from pipeline.lib.identity import IdentityRules, assign_stable_ids, extract_identifiers, normalise_identifiers
from pipeline.lib.identity_matching import resolve_persons
from pipeline.lib.phones import compact, parse_phones


def timed(label: str, timings: dict[str, float], fn, *args):
    """Wall and CPU time (all threads of this process: on a shared machine the steadier figure) of one step."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    timings[label] = time.perf_counter() - started
    timings[f"{label} cpu"] = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"  {label}: {timings[label]:.1f}s (cpu {timings[f'{label} cpu']:.1f}s; peak RSS {peak:.2f} GiB)", flush=True)
    return result


def resolve(staged: dict[str, pl.DataFrame], rules: IdentityRules, known_phones, persons, previous, duckdb_config):
    """One identity run (nightly when `persons`, the previous run's, is given); returns (timings, assignments,
    persons)."""
    timings: dict[str, float] = {}
    raw, records = timed("extract", timings, extract_identifiers, staged)
    identifiers = timed("normalise", timings, normalise_identifiers, raw, rules, known_phones)
    del raw  # as in the dbt models, the raw rows are gone once normalised
    resolved = timed(
        "rules + matcher + components",
        timings,
        resolve_persons,
        identifiers,
        records,
        rules,
        None,
        persons,
        duckdb_config,
    )
    del identifiers, records
    clusters = resolved.clusters.filter("is_person").select("source", "record_id", "cluster_key")
    assigned = timed("stable ids", timings, assign_stable_ids, clusters, previous, None, duckdb_config)
    timings["total cpu"] = sum(v for k, v in timings.items() if k.endswith(" cpu"))
    timings["total"] = sum(v for k, v in timings.items() if not k.endswith(" cpu"))
    again = resolved.links.filter(pl.col("resolution") == pl.col("resolution").max()).select("source", "record_id")
    print(
        f"  total: {timings['total']:.1f}s (cpu {timings['total cpu']:.1f}s; {again.unique().height} records resolved)",
        flush=True,
    )
    return timings, assigned, resolved


def messy_frames(cfg: messy_data.MessyConfig, cache: Path | None) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """(staged frames, truth) of the messy generator, from `cache` when it holds this configuration's."""
    folder = cache / f"messy-{cfg.persons}-{cfg.seed}-{cfg.mix}" if cache is not None else None
    if folder is not None and (folder / "truth.parquet").exists():
        staged = {path.stem: pl.read_parquet(path) for path in sorted(folder.glob("stg_*.parquet"))}
        return staged, pl.read_parquet(folder / "truth.parquet")
    frames = messy_data.build(cfg)
    staged = messy_data.staged(frames)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in staged.items():
            frame.write_parquet(folder / f"{name}.parquet")
        frames["truth"].write_parquet(folder / "truth.parquet")  # last: its presence marks a complete cache
    return staged, frames["truth"]


def data_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with the messy data set's options (persons, seed, mix, cache), which both identity benches take."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", choices=sorted(messy_data.MIXES), default="balanced")
    parser.add_argument("--cache", type=Path, help="folder keeping the generated data as Parquet between runs")
    return parser


def main() -> None:
    parser = data_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--memory-limit", default="4GB", help="memory_limit of identity's in-memory DuckDB")
    args = parser.parse_args()
    duckdb_config = {"memory_limit": args.memory_limit}
    rules = IdentityRules(default_region="ID")  # the messy data is an Indonesian shop's
    started = time.perf_counter()
    config = messy_data.MessyConfig(persons=args.persons, seed=args.seed, mix=args.mix)
    staged, truth = messy_frames(config, args.cache)
    records = sum(frame.height for frame in staged.values())
    print(f"messy data: {args.persons} persons, {records} records, built in {time.perf_counter() - started:.0f}s")
    phones = pl.concat(
        [frame.get_column(c).cast(pl.Utf8) for frame in staged.values() for c in frame.columns if "phone" in c]
    )
    known = parse_phones(compact(phones), rules.default_region, rules.phone_parse_workers)
    del phones

    print("full run (matcher trained):")
    full, assigned, persons = resolve(staged, rules, known, None, None, duckdb_config)
    scores = messy_data.pairwise_scores(assigned, truth)
    overall = scores.row(0, named=True)
    print(f"  pairwise precision {overall['precision']:.4f}, recall {overall['recall']:.4f}")

    # A nightly run: 0.1 % new records (orders of existing guests, under new ids), stored model and previous ids.
    extra = (
        staged["stg_webshop__orders"]
        .sample(fraction=0.001, seed=args.seed)
        .with_columns(order_id=pl.format("N{}", pl.col("order_id")))
    )
    nightly = {**staged, "stg_webshop__orders": pl.concat([staged["stg_webshop__orders"], extra])}
    print(f"nightly run (+{extra.height} records, stored model, previous ids):")
    night, _, _ = resolve(
        nightly, rules, known, persons, assigned.select("source", "record_id", "customer_id"), duckdb_config
    )
    print(f"nightly / full: {night['total'] / full['total']:.3f} (cpu {night['total cpu'] / full['total cpu']:.3f})")


if __name__ == "__main__":
    main()
