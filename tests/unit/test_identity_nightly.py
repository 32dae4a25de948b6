"""A nightly identity run resolves again only the neighbourhoods the day's new, changed or gone records touch, and
ends with exactly what resolving everything gives: the same links, decisions and persons."""

import duckdb
import numpy as np
import polars as pl
import pytest

from pipeline.lib import messy_data
from pipeline.lib.identity import KEYS, extract_identifiers, link_records, normalise_identifiers, relink
from pipeline.lib.identity_matching import resolve_persons
from tests.support.demo_shop import DEMO_RULES


def partition(clusters: pl.DataFrame) -> set[frozenset[str]]:
    return set(
        clusters.filter("is_person")
        .group_by("cluster_key")
        .agg(pl.concat_str(KEYS, separator=":"))
        .get_column("source")
        .map_elements(frozenset, return_dtype=pl.Object)
        .to_list()
    )


@pytest.fixture(scope="module")
def messy_rows():
    """identifiers and records of a messy data set (read-only for the tests)."""
    frames = messy_data.build(messy_data.MessyConfig(persons=1500, seed=21, mix="balanced"))
    raw, records = extract_identifiers(messy_data.staged(frames))
    return normalise_identifiers(raw, DEMO_RULES), records


def test_nightly_equals_a_full_resolution_of_all_days(messy_rows):
    identifiers, records = messy_rows
    # Day N brings the records seen after the cutoff; until day N-1 a few accounts had another phone and a few
    # records existed that are gone on day N (erased, or re-keyed by the source).
    cutoff = records.get_column("seen_on").drop_nulls().quantile(0.99, "lower")
    earlier = records.filter(pl.col("seen_on").is_null() | (pl.col("seen_on") <= cutoff))
    accounts = identifiers.filter((pl.col("source") == "webshop_customer") & (pl.col("id_type") == "phone"))
    moved = accounts.sample(n=15, seed=1).select(KEYS)
    gone = earlier.filter(pl.col("source") == "webshop_order").sample(n=15, seed=2)
    gone_ids = identifiers.join(gone, on=KEYS, how="semi").with_columns(record_id=pl.lit("gone-") + pl.col("record_id"))
    before_ids = pl.concat(
        [
            identifiers.join(earlier, on=KEYS, how="semi").with_columns(
                value=pl.when(pl.struct(KEYS).is_in(moved.to_struct().implode()) & (pl.col("id_type") == "phone"))
                .then(pl.lit("+6281100000") + pl.col("record_id").str.slice(-3))
                .otherwise("value")
            ),
            gone_ids,
        ]
    )
    before_records = pl.concat([earlier, gone.with_columns(record_id=pl.lit("gone-") + pl.col("record_id"))])

    full = resolve_persons(identifiers, records, DEMO_RULES)
    day_before = resolve_persons(before_ids, before_records, DEMO_RULES, full.model)
    nightly = resolve_persons(identifiers, records, DEMO_RULES, previous=day_before)

    assert partition(nightly.clusters) == partition(full.clusters)
    order = [*KEYS, "id_type", "value"]
    assert nightly.links.drop("resolution").sort(order).equals(full.links.drop("resolution").sort(order))
    assert nightly.decisions.drop("resolution").equals(full.decisions.drop("resolution"))
    # ... having resolved again only what the day touched: each new or changed record, and nothing outside the
    # neighbourhoods that hold one today or held a changed or gone one the day before.
    newest = nightly.links.get_column("resolution").max()
    again = nightly.links.filter(pl.col("resolution") == newest).select(KEYS).unique()
    changed = pl.concat([records.join(earlier, on=KEYS, how="anti").select(KEYS), moved])
    touched = pl.concat(
        [
            result.links.join(result.links.join(keys, on=KEYS, how="semi"), on="neighbourhood", how="semi")
            for result, keys in ((full, changed), (day_before, pl.concat([moved, gone_ids.select(KEYS)])))
        ]
    ).select(KEYS)
    assert changed.join(again, on=KEYS, how="anti").is_empty()
    assert again.join(touched, on=KEYS, how="anti").is_empty()
    assert again.height < records.height / 2, again.height


@pytest.fixture(scope="module")
def messy_links(messy_rows):
    """identifiers, records and their links, resolved whole, of a messy data set."""
    identifiers, records = messy_rows
    return identifiers, records, link_records(identifiers, records, DEMO_RULES)


@pytest.mark.parametrize(("low", "high", "every"), [(-300, 500, 3), (250, 290, 1)])
def test_a_night_of_moved_days_equals_resolving_everything(messy_links, low, high, every):
    """Days moved at random, forward and back, many records of one neighbourhood at once, around the recycled-number
    rule's year: whatever the night keeps as only redated, the table is what resolving everything gives."""
    identifiers, records, previous = messy_links
    moved = records.filter((pl.int_range(pl.len()) % every == 0) & pl.col("seen_on").is_not_null())
    shift = np.random.default_rng(every).integers(low, high + 1, moved.height)
    moved = moved.with_columns(seen_on=pl.col("seen_on") + pl.duration(days=pl.Series(shift)))
    today = pl.concat([records.join(moved, on=KEYS, how="anti"), moved])
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", today.to_arrow())
        con.register("previous", previous.to_arrow())
        con.register("candidates", moved.select(KEYS).to_arrow())
        fresh, replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous", candidates="candidates")
        fresh = fresh.pl()
    order = [*KEYS, "id_type", "value"]
    nightly = pl.concat([previous.join(replaced, on=KEYS, how="anti"), fresh]).drop("resolution").sort(order)
    assert nightly.equals(link_records(identifiers, today, DEMO_RULES).drop("resolution").sort(order))
    newest = fresh.get_column("resolution").max()
    assert 0 < fresh.filter(pl.col("resolution") < newest).select(KEYS).n_unique() < moved.height
