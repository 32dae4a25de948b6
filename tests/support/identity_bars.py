"""Issue 14's bars for identity resolution on data with ground truth, and the in-memory resolution they judge.

Overall pairwise precision >= 0.995 and recall >= 0.97; every keep-apart category's precision >= 0.99; every merge
category's recall >= 0.95.
"""

from __future__ import annotations

import polars as pl

from pipeline.lib import messy_data
from pipeline.lib.identity import extract_identifiers, normalise_identifiers
from pipeline.lib.identity_matching import resolve_persons
from tests.support.demo_shop import DEMO_RULES

MIN_PRECISION, MIN_RECALL = 0.995, 0.97
MIN_APART_PRECISION, MIN_MERGE_RECALL = 0.99, 0.95


def check_bars(scores: pl.DataFrame) -> list[str]:
    """The bars a score table (messy_data.pairwise_scores) misses, in words; empty when all hold."""
    by = {row["category"]: row for row in scores.iter_rows(named=True)}
    missed = []
    if by["all"]["precision"] < MIN_PRECISION or by["all"]["recall"] < MIN_RECALL:
        missed.append(f"overall {by['all']['precision']:.4f} / {by['all']['recall']:.4f}")
    missed += [
        f"{c} precision {by[c]['precision']:.4f}"
        for c in messy_data.APART_CATEGORIES
        if c in by and by[c]["precision"] is not None and by[c]["precision"] < MIN_APART_PRECISION
    ]
    missed += [
        f"{c} recall {by[c]['recall']:.4f}"
        for c in messy_data.MERGE_CATEGORIES
        if c in by and by[c]["recall"] is not None and by[c]["recall"] < MIN_MERGE_RECALL
    ]
    return missed


def resolve_in_memory(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    raw, records = extract_identifiers(messy_data.staged(frames))
    clusters = resolve_persons(normalise_identifiers(raw, DEMO_RULES), records, DEMO_RULES).clusters
    return clusters.select("source", "record_id", customer_id=pl.when("is_person").then("cluster_key"))
