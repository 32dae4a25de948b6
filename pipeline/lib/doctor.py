"""First contact with a shop's sources: what they hold, measured against the contract and the shop's calendar.

`python -m pipeline.cli doctor` reads every configured source into an in-memory DuckDB (never the warehouse) through
the same connectors as ingest and checks it against the source registry, reporting per table: rows, the range of
dates that decide partitions (and of order dates), contract columns present or missing, values outside the accepted
sets (currency, status, …) and the phone regions seen. `history_advice` then says whether
`calendar.partitions_start` covers the history. Only counts, code-like category values and the shapes of other
values are printed, never a person's data.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import phonenumbers

from pipeline.lib.expectations import mask
from pipeline.lib.phones import parse_phones
from pipeline.lib.sources import registry, sql_orders
from pipeline.lib.sources.incremental import local_timestamp_sql
from pipeline.lib.warehouse import table_exists

MAX_SHOWN_VALUES = 5  # unexpected values quoted per column
# Unexpected values are shown as they are only when they look like codes ('CAD', 'lost_in_transit'); anything else
# (a misplaced email or phone column) is shown as its shape.
CODE_LIKE = re.compile(r"[A-Za-z][A-Za-z_\- ]{0,23}")
PHONE_SAMPLE = 20_000  # distinct phone spellings parsed per column to tell regions


@dataclass
class TableFindings:
    """What one source table holds."""

    source: str
    table: str
    rows: int = 0
    date_column: str = ""  # the column whose date places a row in a daily partition
    first_date: date | None = None
    last_date: date | None = None
    order_dates: tuple[date | None, date | None] | None = None  # orders only: range of ordered_at
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    missing_required: list[str] = field(default_factory=list)
    unexpected: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> {value: rows}
    phone_regions: dict[str, int] = field(default_factory=dict)  # region code (or "invalid") -> distinct numbers
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing_required


def accepted_values(table: registry.RawTable, currency: str) -> dict[str, tuple[str, ...]]:
    """Column -> the values landing accepts (others are quarantined): the registry's sets, and the shop's currency."""
    return {
        c.name: (currency,) if c.kind == "currency" else c.accepted
        for c in table.columns
        if c.accepted or c.kind == "currency"
    }


def _normalised(column: registry.Column) -> str:
    """SQL for a delivered value as landing compares it (codes lower-cased, currencies upper-cased)."""
    text = f"nullif(trim(cast({_quote(column.name)} as varchar)), '')"
    return f"upper({text})" if column.kind == "currency" else f"lower({text})" if column.kind == "code" else text


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [row[0] for row in con.execute(f"describe select * from {relation}").fetchall()]


def inspect(
    con: duckdb.DuckDBPyConnection,
    table: registry.RawTable,
    relation: str,
    *,
    currency: str,
    phone_region: str,
    declared: list[str] | None = None,
) -> TableFindings:
    """Findings for one staged relation (delivered columns as text or source types; session time zone already set).

    declared: the contract columns the source declares (a SQL table's columns after mapping); None = a column counts
    as present when any row has a value (JSON lines, where absent keys and nulls look alike).
    """
    found = TableFindings(source=table.source, table=table.name, date_column=table.event_column or "")
    delivered = set(_columns(con, relation))
    contract = list(table.column_names)
    with_values = set()
    if declared is None and contract:
        counts = con.execute(
            "select "
            + ", ".join(f"count({_quote(c)})" if c in delivered else "0" for c in contract)
            + f" from {relation}"
        ).fetchone()
        with_values = {c for c, n in zip(contract, counts, strict=True) if n}
    present = set(declared) if declared is not None else with_values
    found.present = [c for c in contract if c in present]
    found.missing = [c for c in contract if c not in present]
    found.missing_required = [c for c in table.required if c not in present]
    found.rows = con.execute(f"select count(*) from {relation}").fetchone()[0]

    def date_range(column: str) -> tuple[date | None, date | None]:
        if column not in present:
            return None, None
        day = f"cast({local_timestamp_sql(_quote(column))} as date)"
        return con.execute(f"select min({day}), max({day}) from {relation}").fetchone()

    if table.event_column:
        found.first_date, found.last_date = date_range(table.event_column)
    elif "_partition_date" in delivered:  # survey files: the date in the file name
        found.date_column = "file date"
        found.first_date, found.last_date = con.execute(
            f"select min(_partition_date), max(_partition_date) from {relation}"
        ).fetchone()
    if table.name == "webshop_orders":
        found.order_dates = date_range("ordered_at")

    for column, accepted in accepted_values(table, currency).items():
        if column not in present:
            continue
        typed = _normalised(table.column(column))
        rows = con.execute(
            f"select {typed} as v, count(*) from {relation} where {typed} is not null "
            f"and {typed} not in (select unnest(?)) group by 1 order by 2 desc, 1",
            [list(accepted)],
        ).fetchall()
        if rows:
            found.unexpected[column] = {
                str(value) if CODE_LIKE.fullmatch(str(value)) else mask(str(value)): n
                for value, n in rows[:MAX_SHOWN_VALUES]
            }
            if len(rows) > MAX_SHOWN_VALUES:
                found.unexpected[column]["…"] = sum(n for _, n in rows[MAX_SHOWN_VALUES:])
    for column in (c.name for c in table.columns if c.identifier == "phone"):
        if column in present:
            spellings = (
                con.execute(
                    f"select distinct cast({_quote(column)} as varchar) from {relation} "
                    f"where {_quote(column)} is not null limit {PHONE_SAMPLE}"
                )
                .pl()
                .to_series()
            )
            found.phone_regions = dict(Counter(found.phone_regions) + Counter(phone_regions(spellings, phone_region)))
    return found


def phone_regions(spellings, default_region: str) -> dict[str, int]:
    """Distinct numbers per region ("invalid" for spellings that are no valid number when read in default_region)."""
    parsed = parse_phones(spellings, default_region, workers=1).get_column("phone_e164").to_list()
    regions = Counter(
        phonenumbers.region_code_for_number(phonenumbers.parse(e164)) if e164 else "invalid" for e164 in parsed
    )
    return dict(regions)


def history_advice(findings: list[TableFindings], partitions_start: date, config_file: str) -> tuple[bool, str]:
    """(covered, message): does `calendar.partitions_start` reach back to the first day any source holds?"""
    firsts = [f.first_date for f in findings if f.first_date is not None]
    if not firsts:
        return True, "history: the sources hold no dated rows yet"
    first = min(firsts)
    if partitions_start <= first:
        return True, (
            f"history: the sources start on {first}; calendar.partitions_start = {partitions_start} "
            f"covers it. First backfill: python -m pipeline.cli run --start {partitions_start}"
        )
    return False, (
        f"history: the sources start on {first}, before calendar.partitions_start = {partitions_start}: "
        f'rows before {partitions_start} would never load. Set calendar.partitions_start: "{first}" '
        f"in {config_file}, then run: python -m pipeline.cli run --start {first}"
    )


def format_findings(findings: TableFindings) -> list[str]:
    """A few lines per table for a person at a terminal."""
    head = f"  {findings.table:<22}"
    if findings.error:
        return [f"{head} ERROR {findings.error}"]
    lines = [f"{head} {findings.rows:>10,} rows"]
    if findings.first_date:
        lines[0] += f"   {findings.date_column} {findings.first_date}..{findings.last_date}"
    if findings.order_dates and findings.order_dates[0]:
        lines[0] += f"   ordered_at {findings.order_dates[0]}..{findings.order_dates[1]}"
    indent = " " * 4
    if findings.missing_required:
        lines.append(
            f"{indent}MISSING REQUIRED columns: {', '.join(findings.missing_required)} "
            "(map them with sources.<name>.columns in the config)"
        )
    optional_missing = [c for c in findings.missing if c not in findings.missing_required]
    lines.append(
        f"{indent}contract columns: {len(findings.present)} present"
        + (f"; missing (left empty): {', '.join(optional_missing)}" if optional_missing else "")
    )
    for column, values in findings.unexpected.items():
        shown = ", ".join(f"{value!r} ({n:,})" for value, n in values.items())
        lines.append(f"{indent}{column} outside the accepted values (quarantined): {shown}")
    if findings.phone_regions:
        shown = ", ".join(
            f"{region} {n:,}"
            for region, n in sorted(findings.phone_regions.items(), key=lambda item: (-item[1], item[0]))
        )
        lines.append(f"{indent}phone regions (distinct numbers): {shown}")
    return lines


def inspect_webshop(
    con: duckdb.DuckDBPyConnection, source: sql_orders.SqlSource, *, currency: str, phone_region: str
) -> list[TableFindings]:
    """Every contract table of the webshop database, read whole (the connection's session time zone is the shop's)."""
    tables = registry.tables_of("webshop")
    try:
        with sql_orders.attached(con, source) as alias:
            declared = {
                t.source_table: [
                    contract for _, contract, _ in sql_orders.source_columns(con, alias, source, t.source_table)
                ]
                for t in tables
            }
        pulled = sql_orders.extract(con, source, full_refresh=True)
    except sql_orders.SourceUnavailable as exc:
        return [TableFindings(source=source.name, table=t.name, error=str(exc)) for t in tables]
    return [
        inspect(
            con,
            t,
            pulled[t.source_table].relation,
            currency=currency,
            phone_region=phone_region,
            declared=declared[t.source_table],
        )
        for t in tables
    ]


def earliest_webshop_date(
    con: duckdb.DuckDBPyConnection, source: sql_orders.SqlSource, before: date | None = None
) -> date | None:
    """The first day (shop time) of any order's updated_at in the webshop database: where its history starts.

    With `before`, that day only when it is earlier (else None), for the nightly run's look at unloaded history:
    an ISO text dated a week or more after `before` cannot fall before it whatever its offset (DuckDB reads offsets
    up to 99 hours), so only the other values are parsed, not the whole history of orders every night."""
    with sql_orders.attached(con, source) as alias:
        column = next(
            (
                col
                for col, contract, _ in sql_orders.source_columns(con, alias, source, "orders")
                if contract == "updated_at"
            ),
            None,
        )
        if column is None:
            return None
        table = f"{alias}.{_quote(source.schema)}.{_quote(source.tables['orders'])}"
        where, params = "", []
        if before is not None:
            text = f"cast({_quote(column)} as varchar)"
            where = f" where not ({text} glob '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*') or {text} < ?"
            params = [(before + timedelta(days=7)).isoformat()]
        first = con.execute(
            f"select min(cast({local_timestamp_sql(_quote(column))} as date)) from {table}{where}", params
        ).fetchone()[0]
    return first if before is None or (first is not None and first < before) else None


def unloaded_history(con: duckdb.DuckDBPyConnection, source: sql_orders.SqlSource, start: date) -> date | None:
    """The webshop's first day when it holds orders from before `start` that `raw.webshop_orders` (read through `con`,
    if it has one) does not: the history a run from `start` leaves out. None when nothing is left out."""
    before = start
    if table_exists(con, "raw.webshop_orders"):
        loaded = con.execute("select min(_partition_date) from raw.webshop_orders").fetchone()[0]
        before = min(before, loaded) if loaded is not None else before
    return earliest_webshop_date(con, source, before)


def unloaded_history_warning(first: date, start: date) -> str:
    return (
        f"the webshop holds orders from {first}, but this run loads from {start}: older history is not loaded. "
        f"To load it: python -m pipeline.cli run --start {first} (calendar.partitions_start must not be later; "
        "`python -m pipeline.cli doctor` shows the sources' history)"
    )
