"""Pull helpdesk tickets from its REST API into DuckDB, incrementally.

`GET {base_url}/api/tickets?updated_since=…&cursor=…&limit=…` -> {"tickets": [...], "next_cursor": "…" | null}.
httpx does the HTTP, tenacity the retries: 429 waits as long as the server's Retry-After says (capped), 5xx,
timeouts and connection errors back off exponentially; attempts per page are bounded, then HelpdeskUnavailable.
The bearer token comes from an environment variable (config `credentials.token: env:NAME`); it is only ever put in
the Authorization header, never in URLs, messages or logs.

Pages are written as NDJSON (one ticket per line) to a temporary file and read by DuckDB through
`pipeline.lib.ingest.stage_tickets_jsonl`, exactly like the demo's JSONL exports, so API and file deliveries are
typed, validated and quarantined by the same code. Incremental: `updated_since` is the start of the day of
`high-water mark - lookback` (whole days, because `ingest.land` replaces whole partition days; see
`pipeline.lib.sources.incremental`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pipeline.lib import ingest
from pipeline.lib.environment import resolve_secret
from pipeline.lib.sources.incremental import local_timestamp_sql, read_mark, save_mark, session_timezone

log = logging.getLogger(__name__)
TABLE = "tickets"


class HelpdeskUnavailable(RuntimeError):
    """The API kept failing (or refused the token); nothing was written."""


class RetryableResponse(Exception):
    def __init__(self, status: int, retry_after: float | None, problem: str = ""):
        super().__init__(f"HTTP {status}" + (f", {problem}" if problem else ""))
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class HelpdeskSource:
    name: str
    base_url: str
    token: str | None = field(default=None, repr=False)
    page_size: int = 100
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0  # first exponential wait; doubles per attempt
    max_wait_seconds: float = 60.0  # cap for backoff and for a server's Retry-After
    lookback: timedelta = timedelta(days=7)  # rows written up to a week late (back-dated) still arrive

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> HelpdeskSource:
        retry = cfg.get("retry") or {}
        return cls(
            name=name,
            base_url=str(cfg["location"]).rstrip("/"),  # http kind: the API root, e.g. https://helpdesk.example.id
            token=resolve_secret((cfg.get("credentials") or {}).get("token")),
            page_size=int(cfg.get("page_size", 100)),
            timeout_seconds=float(cfg.get("timeout_seconds", 30)),
            max_attempts=int(retry.get("max_attempts", 5)),
            backoff_seconds=float(retry.get("backoff_seconds", 1)),
            max_wait_seconds=float(retry.get("max_wait_seconds", 60)),
            lookback=timedelta(minutes=float((cfg.get("incremental") or {}).get("lookback_minutes", 7 * 24 * 60))),
        )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait per the Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def _wait_strategy(source: HelpdeskSource):
    backoff = wait_exponential(multiplier=source.backoff_seconds, max=source.max_wait_seconds)

    def wait(retry_state) -> float:
        error = retry_state.outcome.exception()
        if isinstance(error, RetryableResponse) and error.retry_after is not None:
            return min(error.retry_after, source.max_wait_seconds)
        return backoff(retry_state)

    return wait


def _log_retry(retry_state) -> None:
    error = retry_state.outcome.exception()
    reason = str(error) if isinstance(error, RetryableResponse) else type(error).__name__
    log.warning("helpdesk API: %s, retry %d in %.1fs", reason, retry_state.attempt_number, retry_state.upcoming_sleep)


def fetch_pages(source: HelpdeskSource, updated_since: datetime | None) -> Iterator[list[dict]]:
    """Yield the ticket lists of all pages changed since `updated_since` (time zone aware: sent with its offset)."""
    headers = {"Accept": "application/json"}
    if source.token:
        headers["Authorization"] = f"Bearer {source.token}"
    params: dict[str, Any] = {"limit": source.page_size}
    if updated_since is not None:
        if updated_since.tzinfo is None:
            raise ValueError("updated_since needs a time zone (the API is asked with an offset)")
        params["updated_since"] = updated_since.isoformat()
    retrying = Retrying(
        stop=stop_after_attempt(source.max_attempts),
        wait=_wait_strategy(source),
        retry=retry_if_exception_type((RetryableResponse, httpx.TimeoutException, httpx.TransportError)),
        before_sleep=_log_retry,
        reraise=True,
    )
    with httpx.Client(base_url=source.base_url, headers=headers, timeout=source.timeout_seconds) as client:
        cursor, seen, page = None, set(), 0
        while True:
            page += 1
            where = f"helpdesk API '{source.name}' at {source.base_url}, page {page} (cursor {cursor!r})"
            query = {**params, **({"cursor": cursor} if cursor else {})}
            try:
                body = retrying(_get_page, client, query)
            except (RetryableResponse, httpx.HTTPError, ValueError) as exc:
                raise HelpdeskUnavailable(f"{where} failed after {source.max_attempts} attempts: {exc}") from None
            tickets = body.get("tickets") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(tickets, (list, type(None))):
                shape = type(tickets).__name__ if isinstance(body, dict) else f"a JSON {type(body).__name__}"
                raise HelpdeskUnavailable(
                    f'{where}: expected {{"tickets": [...], "next_cursor": ...}}, got '
                    f"{'tickets as ' + shape if isinstance(body, dict) else shape}"
                )
            yield tickets or []
            cursor = body.get("next_cursor")
            if cursor is None or cursor == "":
                return
            if not isinstance(cursor, (str, int)) or str(cursor) in seen:
                raise HelpdeskUnavailable(
                    f"{where}: the API sent next_cursor {cursor!r} again (or not a cursor); stopped instead of looping"
                )
            seen.add(str(cursor))


def _get_page(client: httpx.Client, query: dict) -> Any:
    response = client.get("/api/tickets", params=query)
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableResponse(response.status_code, _retry_after(response))
    if response.status_code in (401, 403):
        raise HelpdeskUnavailable(
            f"helpdesk API refused the token (HTTP {response.status_code}); check the "
            "environment variable named in sources.helpdesk.credentials.token"
        )
    response.raise_for_status()
    try:
        return response.json()
    except ValueError:  # a truncated or garbled body: asked again like a 5xx
        raise RetryableResponse(response.status_code, None, "the body is not valid JSON") from None


@dataclass
class Extract:
    relation: str  # staged view for ingest.land(HELPDESK_TICKETS, …)
    rows: int
    pages: int
    high_water_mark: datetime | None
    incremental: bool
    window: tuple[date, date] | None


def extract(
    con: duckdb.DuckDBPyConnection,
    source: HelpdeskSource,
    window: tuple[date, date] | None = None,
    full_refresh: bool = False,
    frontier: bool = False,
) -> Extract:
    """Fetch changed tickets and stage them in `con` (table `_staged_tickets`) for `ingest.land`.

    window=None: incremental from the saved mark (everything without one, or with full_refresh).
    window=(start, end): tickets updated since `start` (`ingest.land` keeps only the window's days); with
    `frontier` (the nightly run) since the start of the day of `mark - lookback` if that is earlier, so late
    writes are caught. The new mark never passes the window's end (later tickets are the next run's).
    """
    mark = None if full_refresh or (window and not frontier) else read_mark(con, source.name, TABLE)
    starts = [datetime.combine(window[0], time())] if window else []
    if mark is not None:
        starts.append(datetime.combine((mark - source.lookback).date(), time()))
    since = min(starts) if starts else None
    if since is not None:  # midnight in the shop's time zone
        since = since.replace(tzinfo=ZoneInfo(session_timezone(con)))
    with tempfile.TemporaryDirectory(prefix="cdp-helpdesk-") as folder:
        path = Path(folder) / "tickets.jsonl"
        pages = 0
        with open(path, "w", encoding="utf-8") as fh:
            for tickets in fetch_pages(source, since):
                pages += 1
                if tickets:
                    fh.write("\n".join(map(json.dumps, tickets)) + "\n")
        label = f"helpdesk API '{source.name}' at {source.base_url}"
        relation = ingest.stage_tickets_jsonl(con, [ingest.ExportFile(label, str(path))], label)  # a temp table
        updated = local_timestamp_sql("_line->>'$.updated_at'")
        until = datetime.combine(window[1], time()) if window else datetime.max
        rows, first, newest = con.execute(
            f"select count(*), min({updated}), max({updated}) filter (where {updated} < ?) "
            "from _ticket_lines where _problem is null",
            [until],
        ).fetchone()
    start = since.date() if since else (first.date() if first else None)
    end = window[1] if window else (newest.date() + timedelta(days=1) if newest else None)
    span = (start, end) if rows and start and end else None
    return Extract(relation, rows, pages, newest, since is not None, span)


def save_marks(con: duckdb.DuckDBPyConnection, source: HelpdeskSource, item: Extract) -> None:
    """Advance the high-water mark after the tickets were landed."""
    save_mark(con, source.name, TABLE, item.high_water_mark)
