"""Helpdesk API client against a real HTTP server on loopback (tests/support/helpdesk_server.py), landing in real
DuckDB."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pytest

from pipeline.lib import ingest
from pipeline.lib.sources import helpdesk_api
from tests.support.demo_shop import DEMO_RULES
from tests.support.helpdesk_server import HelpdeskServer

pytestmark = pytest.mark.http

TOKEN_VAR = "CDP_TEST_HELPDESK_TOKEN"
TOKEN = "tok-3f9a1c55e0"
START = datetime(2025, 3, 1, 8, 0)


def _tickets(ids: range, updated: list[datetime]) -> pl.DataFrame:
    frame = pl.DataFrame({"seq": list(ids), "updated": updated})
    return frame.select(
        id=pl.format("T{}", "seq"),
        requester=pl.struct(
            id=pl.format("H{}", "seq"),
            email=pl.format("p{}@mail.id", "seq"),
            phone=pl.lit("0812-3456-789"),
            name=pl.lit("Siti Rahma"),
        ),
        channel=pl.lit("whatsapp"),
        subject=pl.lit("Pesanan belum sampai"),
        status=pl.lit("open"),
        priority=pl.lit("normal"),
        order_ref=pl.lit(None, pl.Utf8),
        created_at=pl.col("updated").dt.strftime("%Y-%m-%dT%H:%M:%S"),
        # Half with an explicit offset, half naive (= Asia/Jakarta): both are the same instants.
        updated_at=pl.when(pl.col("seq") % 2 == 0)
        .then(pl.col("updated").dt.strftime("%Y-%m-%dT%H:%M:%S+07:00"))
        .otherwise(pl.col("updated").dt.strftime("%Y-%m-%dT%H:%M:%S")),
        solved_at=pl.lit(None, pl.Utf8),
        satisfaction=pl.lit(None, pl.Utf8),
        tags=pl.concat_list([pl.lit("whatsapp"), pl.lit("normal")]),
    )


@pytest.fixture()
def helpdesk(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    data = tmp_path / "tickets.jsonl"
    _tickets(range(1, 251), [START + timedelta(minutes=37 * i) for i in range(1, 251)]).write_ndjson(data)
    with HelpdeskServer(data, token=TOKEN) as server:
        config = {
            "location": server.url,
            "credentials": {"token": f"env:{TOKEN_VAR}"},
            "page_size": 40,
            "timeout_seconds": 0.5,
            "retry": {"max_attempts": 4, "backoff_seconds": 0.05, "max_wait_seconds": 2},
            "incremental": {"lookback_minutes": 120},
        }
        yield server, data, helpdesk_api.HelpdeskSource.from_config("helpdesk", config)


def _pull(con, source):
    ingest.prepare_session(con, "Asia/Jakarta")  # the demo shop's time zone
    item = helpdesk_api.extract(con, source)
    if item.window:
        ingest.land(con, ingest.HELPDESK_TICKETS, item.relation, item.window, source.name, DEMO_RULES)
    helpdesk_api.save_marks(con, source, item)
    return item


def test_pagination_then_incremental_pull(helpdesk, tmp_path, caplog):
    server, data, source = helpdesk
    caplog.set_level(logging.DEBUG)
    assert TOKEN not in repr(source)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    first = _pull(con, source)
    assert (first.rows, first.pages, first.incremental) == (250, 7, False)
    assert all(r["authorised"] for r in server.requests) and len(server.requests) == 7
    assert [r["query"].get("cursor", ["-"])[0] for r in server.requests] == [
        "-",
        "40",
        "80",
        "120",
        "160",
        "200",
        "240",
    ]
    assert con.execute("select count(*), count(distinct id) from raw.helpdesk_tickets").fetchone() == (250, 250)
    assert con.execute("select requester_email, tags from raw.helpdesk_tickets where id = 'T7'").fetchone() == (
        "p7@mail.id",
        ["whatsapp", "normal"],
    )
    newest = START + timedelta(minutes=37 * 250)  # 2025-03-07 18:10
    assert first.high_water_mark == newest

    # The helpdesk changes: T3 and T4 are edited now, T251/T252 are new, T200 is back-dated inside the lookback.
    changes = _tickets(range(3, 5), [newest + timedelta(hours=5)] * 2)
    new = _tickets(range(251, 253), [newest + timedelta(hours=6), newest + timedelta(hours=7)])
    late = _tickets(range(200, 201), [newest - timedelta(minutes=90)])
    current = pl.read_ndjson(data).filter(~pl.col("id").is_in(["T3", "T4", "T200"]))
    pl.concat([current, changes, new, late], how="vertical_relaxed").write_ndjson(data)
    server.requests.clear()

    second = _pull(con, source)
    since = server.requests[0]["query"]["updated_since"][0]
    assert since == "2025-03-07T00:00:00+07:00"  # start of the day of mark - lookback
    # Tickets of 2025-03-07 (T234..T250 plus the back-dated T200) and the edited/new ones of 2025-03-08.
    same_day = {f"T{i}" for i in range(1, 251) if (START + timedelta(minutes=37 * i)).date() == date(2025, 3, 7)}
    expected = same_day | {"T3", "T4", "T200", "T251", "T252"}
    got = {r[0] for r in con.execute("select _line->>'$.id' from _ticket_lines").fetchall()}
    assert got == expected and second.incremental and second.window == (date(2025, 3, 7), date(2025, 3, 9))
    # T3, T4 and T200 keep their old version in their old partition next to the new one; no row doubled.
    assert con.execute("select count(*), count(distinct id) from raw.helpdesk_tickets").fetchone() == (255, 252)
    assert second.high_water_mark == newest + timedelta(hours=7)
    assert TOKEN not in caplog.text


def test_fails_with_429_then_500_then_succeeds(helpdesk, tmp_path):
    server, _, source = helpdesk
    server.fail(429, times=1, retry_after=1)
    server.fail(500, times=1)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    started = time.monotonic()
    item = _pull(con, source)
    assert item.rows == 250
    first_page = [r for r in server.requests if "cursor" not in r["query"]]
    assert len(first_page) == 3  # 429, 500, 200
    assert first_page[1]["at"] - first_page[0]["at"] >= 0.95  # Retry-After: 1 honoured
    assert time.monotonic() - started < 10
    assert con.execute("select count(*) from raw.helpdesk_tickets").fetchone()[0] == 250


def test_timeout_is_retried(helpdesk, tmp_path):
    server, _, source = helpdesk
    server.slow(1.5, times=1)  # longer than the client's 0.5 s timeout
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    item = _pull(con, source)
    assert item.rows == 250 and len(server.requests) == 7 + 1


def test_persistent_failure_is_bounded_and_writes_nothing(helpdesk, tmp_path):
    server, _, source = helpdesk
    server.fail(503, times=10)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with pytest.raises(helpdesk_api.HelpdeskUnavailable) as failure:
        _pull(con, source)
    assert len(server.requests) == source.max_attempts == 4
    assert "HTTP 503" in str(failure.value) and server.url in str(failure.value) and TOKEN not in str(failure.value)
    assert con.execute("select count(*) from duckdb_tables() where schema_name = 'raw'").fetchone()[0] == 0


def test_wrong_token_is_refused_without_retrying(helpdesk, tmp_path, monkeypatch):
    server, _, source = helpdesk
    wrong = helpdesk_api.HelpdeskSource(name="helpdesk", base_url=server.url, token="nope", max_attempts=4)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    with pytest.raises(helpdesk_api.HelpdeskUnavailable, match="refused the token"):
        helpdesk_api.extract(con, wrong)
    assert len(server.requests) == 1


def test_malformed_page_is_retried_then_fails_naming_page_and_cursor(helpdesk, tmp_path):
    server, _, source = helpdesk
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ingest.prepare_session(con, "Asia/Jakarta")
    server.garble(times=2)  # page 1 arrives cut off twice, then whole: retried, nothing lost
    assert helpdesk_api.extract(con, source).rows == 250
    first_page = [r for r in server.requests if "cursor" not in r["query"]]
    assert len(first_page) == 3

    server.requests.clear()
    server.faults.clear()
    # Page 2 never parses: after the configured attempts, an error naming source, page and cursor.
    server.faults.extend([("none", 0, None)] + [("garble", 0, None)] * source.max_attempts)
    with pytest.raises(helpdesk_api.HelpdeskUnavailable) as error:
        helpdesk_api.extract(con, source)
    message = str(error.value)
    assert "helpdesk API 'helpdesk'" in message and "page 2 (cursor '40')" in message and "not valid JSON" in message
    assert len(server.requests) == 1 + source.max_attempts


def test_repeated_cursor_stops_with_an_error(helpdesk, tmp_path):
    server, _, source = helpdesk
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ingest.prepare_session(con, "Asia/Jakarta")
    server.repeat_cursor("40")
    with pytest.raises(helpdesk_api.HelpdeskUnavailable, match=r"page 2 \(cursor '40'\).*next_cursor '40' again"):
        helpdesk_api.extract(con, source)
    assert len(server.requests) == 2  # stopped at the first repeat, no endless loop


def test_wrong_payload_shape_fails_clearly_and_temp_folder_is_removed(helpdesk, tmp_path, monkeypatch):
    import tempfile

    server, _, source = helpdesk
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ingest.prepare_session(con, "Asia/Jakarta")
    server.reshape({"tickets": {"T1": {"id": "T1"}}, "next_cursor": None})
    with pytest.raises(helpdesk_api.HelpdeskUnavailable, match=r"page 1 \(cursor None\).*got tickets as dict"):
        helpdesk_api.extract(con, source)
    server.reshape(["not", "an", "object"])
    with pytest.raises(helpdesk_api.HelpdeskUnavailable, match="got a JSON list"):
        helpdesk_api.extract(con, source)
    assert list(scratch.iterdir()) == []  # the page files went with their temporary folder


def test_renamed_field_fails_naming_it_and_extra_fields_are_kept(helpdesk, tmp_path):
    _, data, source = helpdesk
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    tickets = pl.read_ndjson(data).with_columns(
        loyalty_tier=pl.lit("gold"), custom=pl.struct(a=pl.lit(1), b=pl.lit("x"))
    )
    tickets.write_ndjson(data)
    item = _pull(con, source)
    assert item.rows == 250
    assert (
        con.execute(
            "select count(*) from raw.helpdesk_tickets where loyalty_tier = 'gold' "
            "and json_extract_string(custom, '$.b') = 'x'"
        ).fetchone()[0]
        == 250
    )

    tickets.rename({"status": "state"}).write_ndjson(data)
    with pytest.raises(ingest.SourceSchemaError, match=r"helpdesk API 'helpdesk'.*no field 'status'"):
        helpdesk_api.extract(con, source, full_refresh=True)
