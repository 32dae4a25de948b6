"""Data-quality validation of warehouse tables: Great Expectations suites plus freshness / volume / row-count helpers.

Suites live in `expectations/<suite_name>.json` (GX 1.x `ExpectationSuite.to_json_dict()` format). Every expectation
carries `meta.severity`: `critical` failures make a table unusable (blocking checks stop downstream assets),
`warning` failures are reported but let the pipeline continue.

How a table is validated (`validate_table`):
- The expectation types the suites use (table columns, not null, between, in set, regex, column pair) are evaluated
  set-wise in DuckDB, with GX's semantics: nulls are not unexpected except for not-null, `mostly` is the share of
  non-null values that must pass, `row_condition` (GX's comparison object) restricts the rows, and the result
  carries GX's counts and unexpected examples. On a 156k-row table that is a second instead of GX's pandas engine's
  77 s, and a run imports no GX at all (the import alone took 5-23 s per process on the bench machine).
- Any other expectation, or one whose arguments the set-wise form does not know, goes to GX's pandas engine in an
  ephemeral context (GX's SQL datasource does not evaluate expectations correctly on DuckDB), on the same rows.
- Tables above `sample_rows` rows (default 200k) are validated on a deterministic sample:
  `USING SAMPLE reservoir(n ROWS) REPEATABLE (42)`, read single-threaded so the same table content always gives the
  same sample. Column-value expectations on a sample answer "is the rate of bad values acceptable", which is what
  their `mostly` thresholds express.
- Row-count and uniqueness expectations are always computed in DuckDB SQL over the full table: a sample would
  hide duplicates and misstate the count, and a GROUP BY is cheap.
`great_expectations` is imported lazily, only when an expectation needs its engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from pipeline.lib.environment import REPO_ROOT

SUITES_DIR = REPO_ROOT / "expectations"
DEFAULT_SAMPLE_ROWS = 200_000
SAMPLE_SEED = 42
SEVERITIES = ("critical", "warning")
# Evaluated in SQL over the full table, never on a sample (see module docstring).
FULL_TABLE_TYPES = (
    "expect_table_row_count_to_be_between",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
)
EXAMPLE_VALUES = 5  # unexpected values quoted per failed expectation
# Evaluated set-wise in DuckDB (`_setwise_result`), with the arguments that form knows; anything else goes to GX.
SETWISE_KWARGS = {
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_column_values_to_not_be_null": {"column", "mostly", "row_condition"},
    "expect_column_values_to_be_between": {
        "column",
        "min_value",
        "max_value",
        "strict_min",
        "strict_max",
        "mostly",
        "row_condition",
    },
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly", "row_condition"},
    "expect_column_values_to_match_regex": {"column", "regex", "mostly", "row_condition"},
    "expect_column_pair_values_a_to_be_greater_than_b": {
        "column_A",
        "column_B",
        "or_equal",
        "ignore_row_if",
        "mostly",
        "row_condition",
    },
}
CONDITION_OPERATORS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation: what was expected, whether it held, and what was observed."""

    expectation_type: str
    kwargs: dict[str, Any]
    severity: str
    success: bool
    observed: dict[str, Any]
    reason: str

    @property
    def label(self) -> str:
        target = self.kwargs.get("column") or ",".join(self.kwargs.get("column_list") or [])
        condition = self.kwargs.get("row_condition")
        if isinstance(condition, dict) and condition.get("type") == "comparison":  # GX 1.x condition object
            condition = f"{condition['column']['name']} {condition['operator']} {condition['parameter']!r}"
        where = f" where {condition}" if condition else ""
        return f"{self.expectation_type}({target}){where}" if target else f"{self.expectation_type}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.label,
            "severity": self.severity,
            "success": self.success,
            "reason": self.reason,
            "observed": self.observed,
        }


@dataclass(frozen=True)
class ValidationOutcome:
    """The outcome of validating one table against one suite."""

    table: str
    suite_name: str
    row_count: int  # rows in scope: the whole table, or the rows of the validated window
    validated_rows: int
    results: list[ExpectationResult] = field(default_factory=list)
    window: tuple[date, date] | None = None
    changed_rows: int | None = None  # rows the per-row expectations checked, when scoped to a run's changes

    @property
    def sampled(self) -> bool:
        return self.validated_rows < (self.row_count if self.changed_rows is None else self.changed_rows)

    @property
    def critical_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def success(self) -> bool:
        """True when no critical expectation failed (warnings do not make a table unusable)."""
        return not self.critical_failures

    @property
    def summary(self) -> str:
        scope = (
            f"sample of {self.validated_rows:,} of {self.row_count:,} rows"
            if self.sampled
            else f"{self.row_count:,} rows"
        )
        if self.window:
            scope += f" in partitions {self.window[0]}..{self.window[1]}"
        if self.changed_rows is not None:
            scope = f"{self.changed_rows:,} changed of {self.row_count:,} rows" + (
                f", sample of {self.validated_rows:,}" if self.sampled else ""
            )
        head = (
            f"{self.table} vs suite {self.suite_name} ({scope}): {len(self.results)} expectations, "
            f"{len(self.critical_failures)} critical failures, {len(self.warnings)} warnings"
        )
        lines = [head] + [f"  [{r.severity}] {r.label}: {r.reason}" for r in self.critical_failures + self.warnings]
        return "\n".join(lines)


def suite_path(suite_name: str) -> Path:
    return SUITES_DIR / f"{suite_name}.json"


def load_suite_json(suite_name: str) -> dict[str, Any]:
    """The suite's JSON, with every expectation's `meta.severity` checked to be critical or warning."""
    with open(suite_path(suite_name), encoding="utf-8") as fh:
        return checked_suite(json.load(fh))


def checked_suite(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite, once every expectation's `meta.severity` is known to be critical or warning."""
    suite_name = suite["name"]
    for expectation in suite["expectations"]:
        severity = (expectation.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise ValueError(
                f"suite {suite_name}: {expectation['type']} {expectation['kwargs']} has meta.severity "
                f"{severity!r}, expected one of {SEVERITIES}"
            )
    return suite


def _jsonable(value: Any) -> Any:
    """Observed values as plain JSON types (numpy scalars, timestamps and the like become numbers/strings)."""
    return json.loads(json.dumps(value, default=str))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _failure_reason(observed: dict[str, Any]) -> str:
    if "exception" in observed:
        return observed["exception"]
    if "unexpected_count" in observed and observed.get("unexpected_count"):
        pct = observed.get("unexpected_percent")
        rate = f" ({pct:.3g}% of non-null)" if isinstance(pct, (int, float)) else ""
        examples = observed.get("unexpected_examples")
        sample = f", e.g. {examples}" if examples else ""
        return f"{observed['unexpected_count']} of {observed.get('element_count')} rows unexpected{rate}{sample}"
    if "missing_columns" in observed:
        return f"missing columns {observed['missing_columns']}"
    return f"observed {observed.get('observed_value')!r}"


def mask(value: Any) -> Any:
    """A failure example's shape without its content: letters become x/X, digits 9, other characters stay.

    Results end up in Dagster metadata, logs and the event log, which erasure cannot reach: an example value may be
    an email or a phone, and its shape ("xxxx.xxxxx@xxxx.xx.xx", "+9999 9999") is what tells the format apart."""
    if isinstance(value, str):
        return "".join("9" if c.isdigit() else ("X" if c.isupper() else "x") if c.isalpha() else c for c in value)
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _result(expectation: dict[str, Any], success: bool, observed: dict[str, Any]) -> ExpectationResult:
    observed = _jsonable(observed)
    if "unexpected_examples" in observed:
        observed["unexpected_examples"] = mask(observed["unexpected_examples"])
    return ExpectationResult(
        expectation_type=expectation["type"],
        kwargs={k: v for k, v in expectation["kwargs"].items() if k != "batch_id"},
        severity=expectation["meta"]["severity"],
        success=success,
        observed=observed,
        reason="ok" if success else _failure_reason(observed),
    )


def _mostly_ok(unexpected: int, nonnull: int, mostly: float | None) -> bool:
    if nonnull == 0 or unexpected == 0:
        return True
    return (1 - unexpected / nonnull) >= (mostly if mostly is not None else 1.0)


def _sql_expectation(
    con: duckdb.DuckDBPyConnection, table: str, row_count: int, expectation: dict[str, Any]
) -> ExpectationResult:
    """Row-count and uniqueness expectations, computed exactly over every row in scope."""
    kwargs = expectation["kwargs"]
    kind = expectation["type"]
    if kind == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        ok = (low is None or row_count >= low) and (high is None or row_count <= high)
        return _result(expectation, ok, {"observed_value": row_count})
    columns = [kwargs["column"]] if kind == "expect_column_values_to_be_unique" else list(kwargs["column_list"])
    cols = ", ".join(_quote(c) for c in columns)
    # GX semantics: rows whose key is entirely null are ignored; every copy of a repeated key is unexpected.
    not_all_null = " or ".join(f"{_quote(c)} is not null" for c in columns)
    try:
        nonnull, unexpected = con.execute(
            f"select coalesce(sum(n), 0), coalesce(sum(n) filter (where n > 1), 0) "
            f"from (select count(*) as n from {table} where {not_all_null} group by {cols})"
        ).fetchone()
        examples = con.execute(
            f"select {cols}, count(*) as n from {table} where {not_all_null} group by {cols} having n > 1 "
            f"order by n desc, {cols} limit {EXAMPLE_VALUES}"
        ).fetchall()
    except duckdb.BinderException as exc:
        return _result(expectation, False, {"exception": str(exc).splitlines()[0]})
    nonnull, unexpected = int(nonnull), int(unexpected)
    observed = {
        "element_count": nonnull,
        "unexpected_count": unexpected,
        "unexpected_percent": 100.0 * unexpected / nonnull if nonnull else 0.0,
        "unexpected_examples": [row[0] if len(columns) == 1 else list(row[:-1]) for row in examples],
    }
    return _result(expectation, _mostly_ok(unexpected, nonnull, kwargs.get("mostly")), observed)


@lru_cache(maxsize=1)
def _pandas_batch_definition():
    """One ephemeral GX context with a pandas dataframe asset, built once per process."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("warehouse").add_dataframe_asset("table")
    return asset.add_batch_definition_whole_dataframe("whole_table")


def _exception_message(exception_info: dict[str, Any] | None) -> str | None:
    """The message of an exception GX caught while evaluating an expectation (e.g. a missing column), if any."""
    if not exception_info:
        return None
    entries = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    for entry in entries:
        if isinstance(entry, dict) and (entry.get("raised_exception") or entry.get("exception_message")):
            return (entry.get("exception_message") or "exception").strip().splitlines()[-1]
    return None


def _gx_results(frame, expectations: list[dict[str, Any]], suite_name: str) -> list[ExpectationResult]:
    """Validate a pandas frame with GX; results come back in the order of `expectations`."""
    import great_expectations as gx

    # GX returns results in its own order: tag each expectation with its position to map them back.
    tagged = [{**e, "meta": {**e["meta"], "position": i}} for i, e in enumerate(expectations)]
    suite = gx.ExpectationSuite(name=suite_name, expectations=tagged)
    batch = _pandas_batch_definition().get_batch(batch_parameters={"dataframe": frame})
    validation = batch.validate(suite, result_format="SUMMARY")
    results: list[ExpectationResult | None] = [None] * len(expectations)
    for item in validation.results:
        position = item.expectation_config.meta["position"]
        expectation = expectations[position]
        message = _exception_message(item.exception_info)
        if message is not None:
            results[position] = _result(expectation, False, {"exception": message})
            continue
        detail = item.result or {}
        observed: dict[str, Any] = {}
        if "observed_value" in detail:
            observed["observed_value"] = detail["observed_value"]
        mismatched = (detail.get("details") or {}).get("mismatched")
        if mismatched and mismatched.get("missing"):
            observed["missing_columns"] = mismatched["missing"]
        if "unexpected_count" in detail:
            observed.update(
                element_count=detail.get("element_count"),
                unexpected_count=detail.get("unexpected_count"),
                unexpected_percent=detail.get("unexpected_percent"),
                unexpected_examples=(detail.get("partial_unexpected_list") or [])[:EXAMPLE_VALUES],
            )
        results[position] = _result(expectation, bool(item.success), observed)
    return results


def read_for_validation(
    con: duckdb.DuckDBPyConnection, table: str, row_count: int, sample_rows: int, *, arrow: bool = False
):
    """The table (or a relation in parentheses) as a pandas frame (an Arrow table with `arrow`): all rows, or a
    deterministic reservoir sample."""
    if row_count <= sample_rows:
        result = con.execute(f"select * from {table}")
        return result.to_arrow_table() if arrow else result.df()
    threads = con.execute("select current_setting('threads')").fetchone()[0]
    con.execute("set threads = 1")  # reservoir sampling is only repeatable single-threaded
    try:
        result = con.execute(
            f"select * from {table} as t using sample reservoir({int(sample_rows)} rows) repeatable ({SAMPLE_SEED})"
        )
        return result.to_arrow_table() if arrow else result.df()
    finally:
        con.execute(f"set threads = {int(threads)}")


def _plain(value: Any) -> Any:
    """An example value as pandas would show it: DuckDB's DECIMAL comes back as Decimal, pandas reads a float."""
    return float(value) if isinstance(value, Decimal) else value


def _row_condition(condition: Any, columns: list[str]) -> tuple[str, list] | None:
    """GX's comparison condition object as SQL and its parameter; None for a form only GX understands."""
    if condition is None:
        return "true", []
    if not (isinstance(condition, dict) and condition.get("type") == "comparison"):
        return None
    name, operator = (condition.get("column") or {}).get("name"), CONDITION_OPERATORS.get(condition.get("operator"))
    if name not in columns or operator is None:
        return None
    return f"{_quote(name)} {operator} ?", [condition.get("parameter")]


def _unexpected(kind: str, kwargs: dict[str, Any]) -> tuple[str, list] | None:
    """SQL that is true for an unexpected non-null value of a column-map expectation, and its parameters."""
    column = _quote(kwargs["column"])
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        parts, params = [], []
        if low is not None:
            parts.append(f"{column} {'<=' if kwargs.get('strict_min') else '<'} ?")
            params.append(low)
        if high is not None:
            parts.append(f"{column} {'>=' if kwargs.get('strict_max') else '>'} ?")
            params.append(high)
        return (" or ".join(parts), params) if parts else None
    if kind == "expect_column_values_to_be_in_set":
        return f"not list_contains(?, {column})", [list(kwargs["value_set"])]
    if kind == "expect_column_values_to_match_regex":  # GX: a match anywhere in the text (re.search)
        return f"not regexp_matches(cast({column} as varchar), ?)", [kwargs["regex"]]
    return None


def _setwise_result(
    con: duckdb.DuckDBPyConnection, rows: str, columns: list[str], expectation: dict[str, Any]
) -> ExpectationResult | None:
    """One expectation evaluated in DuckDB over the relation `rows` (columns `columns`), as GX's pandas engine
    would; None when it takes GX to evaluate it."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    if kind not in SETWISE_KWARGS or not set(kwargs) <= SETWISE_KWARGS[kind] | {"batch_id"}:
        return None
    if kind == "expect_table_columns_to_match_set":
        expected = list(kwargs.get("column_set") or [])
        missing = [c for c in expected if c not in columns]
        extra = [c for c in columns if c not in expected] if kwargs.get("exact_match", True) else []
        observed = {"observed_value": columns, **({"missing_columns": missing} if missing else {})}
        return _result(expectation, not missing and not extra, observed)
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        if kwargs.get("ignore_row_if") != "either_value_is_missing":
            return None
        targets = [kwargs["column_A"], kwargs["column_B"]]
        first, second = (_quote(c) for c in targets)
        considered = f"{first} is not null and {second} is not null"
        bad, params = f"not ({first} {'>=' if kwargs.get('or_equal') else '>'} {second})", []
        selected = f"{first}, {second}"
    else:
        targets = [kwargs["column"]]
        selected = _quote(kwargs["column"])
        considered = f"{selected} is not null"
        if kind == "expect_column_values_to_not_be_null":
            considered, bad, params = "true", f"{selected} is null", []
        else:
            unexpected = _unexpected(kind, kwargs)
            if unexpected is None:
                return None
            bad, params = unexpected
    absent = [c for c in targets if c not in columns]
    if absent:
        return _result(expectation, False, {"exception": f'The column "{absent[0]}" in the table does not exist.'})
    condition = _row_condition(kwargs.get("row_condition"), columns)
    if condition is None:
        return None
    where, where_params = condition
    failing = f"({considered}) and coalesce({bad}, false)"
    try:
        elements, base, unexpected_count = con.execute(
            f"select count(*), count(*) filter (where {considered}), count(*) filter (where {failing}) "
            f"from {rows} as t where {where}",
            [*params, *where_params],
        ).fetchone()
        examples = (
            con.execute(
                f"select {selected} from {rows} as t where ({where}) and {failing} limit {EXAMPLE_VALUES}",
                [*where_params, *params],
            ).fetchall()
            if unexpected_count
            else []
        )
    except duckdb.Error:
        return None  # e.g. a regex only Python's engine reads, or a bound of another type: GX decides
    observed = {
        "element_count": int(elements),
        "unexpected_count": int(unexpected_count),
        "unexpected_percent": 100.0 * unexpected_count / base if base else 0.0,
        "unexpected_examples": [_plain(row[0]) if len(row) == 1 else [_plain(v) for v in row] for row in examples],
    }
    return _result(expectation, _mostly_ok(int(unexpected_count), int(base), kwargs.get("mostly")), observed)


def validate_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    suite: str | dict[str, Any],
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    window: tuple[date, date] | None = None,
    changed_where: str | None = None,
) -> ValidationOutcome:
    """Validate `table` (schema.name) against a suite: its name (`expectations/<name>.json`) or the suite itself
    (raw tables: `pipeline.lib.ingest.raw_suite`, derived from the source registry).

    `window` (first, last day, inclusive) restricts every expectation, row counts and uniqueness included, to the
    rows whose `_partition_date` falls in it: a partitioned run validates what it delivered, so a problem in one
    day's delivery is not diluted by years of good history. `changed_where`, a SQL condition written by the caller
    (never from source values), restricts the per-row expectations to the rows a nightly run changed, while row
    counts and uniqueness, cheap in SQL, still cover the whole table. A missing table is one critical failure.
    Results keep the suite's order."""
    suite = load_suite_json(suite) if isinstance(suite, str) else checked_suite(suite)
    suite_name = suite["name"]
    relation = table
    if window is not None:
        first, last = (date.fromisoformat(str(d)) for d in window)  # dates only: safe to inline
        relation = f"(select * from {table} where _partition_date between date '{first}' and date '{last}')"
    try:
        row_count = con.execute(f"select count(*) from {relation}").fetchone()[0]
    except duckdb.CatalogException as exc:
        missing = {"type": "expect_table_to_exist", "kwargs": {}, "meta": {"severity": "critical"}}
        return ValidationOutcome(
            table, suite_name, 0, 0, [_result(missing, False, {"exception": str(exc).splitlines()[0]})]
        )

    full_table = [e for e in suite["expectations"] if e["type"] in FULL_TABLE_TYPES]
    on_frame = [e for e in suite["expectations"] if e["type"] not in FULL_TABLE_TYPES]
    changed_rows, rows = None, relation
    if changed_where is not None:
        rows = f"(select * from {relation} where {changed_where})"
        changed_rows = con.execute(f"select count(*) from {rows}").fetchone()[0]
    in_scope = row_count if changed_rows is None else changed_rows
    computed = {id(e): _sql_expectation(con, relation, row_count, e) for e in full_table}
    validated_rows, sample = in_scope, None
    if in_scope > sample_rows:  # the per-row expectations see a deterministic sample, registered as a view
        sample = read_for_validation(con, rows, in_scope, sample_rows, arrow=True)
        validated_rows, rows = sample.num_rows, f"validation_sample_{id(sample)}"
        con.register(rows, sample)
    try:
        columns = [column[0] for column in con.execute(f"select * from {rows} as t limit 0").description]
        for expectation in on_frame:
            result = _setwise_result(con, rows, columns, expectation)
            if result is not None:
                computed[id(expectation)] = result
        for_gx = [e for e in on_frame if id(e) not in computed]
        if for_gx:
            frame = con.execute(f"select * from {rows} as t").df()
            computed.update(zip((id(e) for e in for_gx), _gx_results(frame, for_gx, suite_name), strict=True))
    finally:
        if sample is not None:
            con.unregister(rows)
    results = [computed[id(e)] for e in suite["expectations"]]
    return ValidationOutcome(table, suite_name, int(row_count), int(validated_rows), results, window, changed_rows)


# ---------------------------------------------------------------- freshness, volume, row-count drop


@dataclass(frozen=True)
class Freshness:
    table: str
    window_start: date | None
    window_end: date | None
    rows_in_window: int
    latest_partition: date | None
    last_loaded_at: datetime | None
    fresh: bool
    reason: str


def check_freshness(
    con: duckdb.DuckDBPyConnection,
    table: str,
    window_start: date | None = None,
    window_end: date | None = None,
    min_rows: int = 1,
) -> Freshness:
    """Did `table` receive at least `min_rows` rows with `_partition_date` in [window_start, window_end]?

    Without a window the latest partition present is used (then only an empty table is stale)."""
    latest, last_loaded = con.execute(f"select max(_partition_date), max(_loaded_at) from {table}").fetchone()
    start = window_start or latest
    end = window_end or start
    rows = 0
    if start is not None:
        rows = con.execute(
            f"select count(*) from {table} where _partition_date between ? and ?", [start, end]
        ).fetchone()[0]
    span = "no partition" if start is None else (f"partition {start}" if start == end else f"partitions {start}..{end}")
    fresh = rows >= min_rows
    reason = f"{rows} rows in {span} (minimum {min_rows}); latest partition {latest}, last loaded at {last_loaded}"
    return Freshness(table, start, end, int(rows), latest, last_loaded, fresh, reason)


@dataclass(frozen=True)
class VolumeAnomaly:
    table: str
    day: date | None
    row_count: int
    baseline: float | None  # mean daily rows over the trailing days (days without rows count as 0)
    deviation: float | None  # (row_count - baseline) / baseline
    anomalous: bool
    reason: str


def check_volume(
    con: duckdb.DuckDBPyConnection,
    table: str,
    day: date | None = None,
    trailing_days: int = 14,
    max_deviation: float = 0.5,
    min_baseline_rows: float = 10.0,
) -> VolumeAnomaly:
    """Compare the rows of partition `day` (default: latest) with the mean of the `trailing_days` days before it.

    Anomalous when |deviation| > max_deviation. A baseline below `min_baseline_rows` is too small to judge."""
    if day is None:
        day = con.execute(f"select max(_partition_date) from {table}").fetchone()[0]
    if day is None:
        return VolumeAnomaly(table, None, 0, None, None, False, "table has no partitions yet")
    today, baseline, history_days = con.execute(
        f"""
        with days as (
            select cast(d as date) as d from range(cast(? as date) - ?::integer, cast(? as date), interval 1 day) t(d)
        ), daily as (
            select _partition_date as d, count(*) as n from {table}
            where _partition_date between cast(? as date) - ?::integer and cast(? as date) group by 1
        )
        select coalesce((select n from daily where d = cast(? as date)), 0),
               (select avg(coalesce(daily.n, 0)) from days left join daily using (d)),
               (select count(*) from daily where d < cast(? as date))
        """,
        [day, trailing_days, day, day, trailing_days, day, day, day],
    ).fetchone()
    today = int(today)
    if not history_days or baseline is None or baseline < min_baseline_rows:
        return VolumeAnomaly(
            table,
            day,
            today,
            baseline,
            None,
            False,
            f"{today} rows on {day}; baseline {baseline or 0:.1f} rows/day over {trailing_days} days "
            f"is below {min_baseline_rows}, not judged",
        )
    deviation = (today - baseline) / baseline
    anomalous = abs(deviation) > max_deviation
    reason = (
        f"{today} rows on {day} vs {baseline:.1f}/day over the previous {trailing_days} days: "
        f"{deviation:+.0%} (allowed ±{max_deviation:.0%})"
    )
    return VolumeAnomaly(table, day, today, float(baseline), float(deviation), anomalous, reason)


@dataclass(frozen=True)
class RowCountDrop:
    previous: int | None
    current: int
    drop_fraction: float | None
    dropped: bool
    reason: str


def check_row_count_drop(previous: int | None, current: int, max_drop_fraction: float = 0.2) -> RowCountDrop:
    """Flag a table that lost more than `max_drop_fraction` of its rows since the previous count."""
    if not previous:
        return RowCountDrop(previous, current, None, False, f"{current} rows; no previous count to compare")
    drop = (previous - current) / previous
    dropped = drop > max_drop_fraction
    return RowCountDrop(
        previous,
        current,
        drop,
        dropped,
        f"{current} rows vs {previous} before: {-drop:+.1%} (allowed drop {max_drop_fraction:.0%})",
    )
