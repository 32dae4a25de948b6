"""Phone numbers to E.164 with `phonenumbers`: the one place that parses them.

phonenumbers is per-value Python (~90 µs a value on these machines), the only non-set-wise step of identity
resolution. So values are compacted and deduplicated first, big batches are parsed on every core, and the warehouse
keeps the results (dbt model int_phone_numbers) so that a nightly run parses only spellings it has never seen.
"""

from __future__ import annotations

import multiprocessing
import os

import phonenumbers
import polars as pl

from pipeline.lib.warehouse import table_exists

# phonenumbers ignores these; dropping them first makes '0812-3456-7890' and '0812 3456 7890' one distinct value.
# Every Unicode space counts (NBSP, tab), and so does '(0)', the trunk prefix some write after the country code.
FORMATTING = r"\(0\)|[\s\x{200B}-\x{200D}\x{FEFF}\-().]"
PARALLEL_FROM = 20_000  # below this many values a worker pool costs more than it saves
# Cached results are only reused with the same parser: the library's version and this module's rules (RULES: bump it
# when _to_e164 reads a spelling differently).
RULES = 2
PARSER = f"phonenumbers {phonenumbers.__version__}, rules {RULES}"
LOOKUP_SCHEMA = {"raw_phone": pl.Utf8, "phone_e164": pl.Utf8}


def compact(values: pl.Series) -> pl.Series:
    """The value without formatting characters, full-width digits made ASCII: the key parses are stored under."""
    return values.cast(pl.Utf8).str.normalize("NFKC").str.replace_all(FORMATTING, "")


def _e164(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    valid = phonenumbers.is_valid_number(number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if valid else None


def _to_e164(values: list[str], region: str) -> list[str | None]:
    parsed = []
    for value in values:
        e164 = _e164(value, region)
        # 00 and the country code (0062 812…), as people write it where 00 is the international prefix: phonenumbers
        # reads it so only in those regions (Indonesia's prefixes are 001, 007, …), and no national number starts 00.
        if e164 is None and value.startswith("00"):
            e164 = _e164("+" + value[2:], region)
        parsed.append(e164)
    return parsed


def parse_phones(values: pl.Series, region: str, workers: int = 0) -> pl.DataFrame:
    """`raw_phone` (each distinct compacted value), `phone_e164` (null when not a valid number in `region`).

    `workers` processes share the parsing when there are many values (0 = one per core).
    """
    distinct = compact(values).drop_nulls().unique().sort().to_list()
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(distinct) < PARALLEL_FROM:
        e164 = _to_e164(distinct, region)
    else:
        size = -(-len(distinct) // workers)
        # forkserver, not fork: a worker forked from the caller (dbt's process, holding its DuckDB: 4 GB at 1M)
        # shares every page of it, so each worker's RSS counts the caller's memory again (a memory bound summing a
        # process tree's RSS sees three times the caller). The server imports the caller's main module once (the
        # dbt or Dagster CLI), and the workers fork from that small process.
        with multiprocessing.get_context("forkserver").Pool(workers) as pool:
            parts = pool.starmap(_to_e164, [(distinct[i : i + size], region) for i in range(0, len(distinct), size)])
        e164 = [number for part in parts for number in part]
    return pl.DataFrame({"raw_phone": distinct, "phone_e164": e164}, schema=LOOKUP_SCHEMA)


def normalise_phones(values: pl.Series, region: str, known: pl.DataFrame | None = None, workers: int = 0) -> pl.Series:
    """E.164 per value (national numbers read in `region`); null where not a valid number.

    `known` (raw_phone, phone_e164 from earlier parses in the same region) spares parsing the values it holds.
    """
    keys = compact(values)
    known = known.select(*LOOKUP_SCHEMA) if known is not None else pl.DataFrame(schema=LOOKUP_SCHEMA)
    distinct = keys.drop_nulls().unique()
    missing = distinct.filter(~distinct.is_in(known.get_column("raw_phone").implode()))
    lookup = pl.concat([known, parse_phones(missing, region, workers)])
    return (
        pl.DataFrame({"raw_phone": keys})
        .join(lookup, on="raw_phone", how="left", maintain_order="left")
        .get_column("phone_e164")
        .rename(values.name)
    )


def known_phones(con, qualified_name: str, region: str) -> pl.DataFrame | None:
    """The parsed phones stored in `qualified_name` (int_phone_numbers) for `region` and this parser; None if absent.

    `con` is a DuckDB connection (dbt's python-model session is one).
    """
    if not table_exists(con, qualified_name):
        return None
    return con.execute(
        f"select raw_phone, phone_e164 from {qualified_name} where region = ? and parser = ?", [region, PARSER]
    ).pl()
