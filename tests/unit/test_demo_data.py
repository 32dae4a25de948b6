"""The demo-data generator: deterministic, scalable, in the source contracts' shapes, with the planted mess."""

import filecmp
from datetime import date

import duckdb
import polars as pl
import pytest

from pipeline.lib.demo_data import DemoConfig, generate
from pipeline.lib.duckdb_extensions import load_extension


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    counts = generate(DemoConfig(customers=400), out)
    return out, counts


@pytest.fixture(scope="module")
def small_cutoff(tmp_path_factory):
    """`small`'s config as of a cutoff two days before its end (read-only for the tests)."""
    out = tmp_path_factory.mktemp("small_cutoff")
    generate(DemoConfig(customers=400, cutoff=date(2026, 11, 20)), out)
    return out


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """400 persons made in chunks of 150, and the generator's counts (read-only for the tests)."""
    out = tmp_path_factory.mktemp("chunked")
    return out, generate(DemoConfig(customers=400, chunk_persons=150), out)


def _tree(path):
    return sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())


def test_same_seed_gives_identical_files(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    generate(DemoConfig(customers=400), again)
    assert _tree(out) == _tree(again)
    mismatched = [p for p in _tree(out) if not filecmp.cmp(out / p, again / p, shallow=False)]
    assert mismatched == []


def test_other_seed_differs(small, tmp_path):
    out, _ = small
    generate(DemoConfig(customers=400, seed=7), tmp_path)
    assert not filecmp.cmp(out / "truth.csv", tmp_path / "truth.csv", shallow=False)


def test_scale_flag_sets_number_of_persons(small):
    out, counts = small
    truth = pl.read_csv(out / "truth.csv")
    assert counts["persons"] == 400
    assert truth["person_id"].n_unique() <= 400
    assert counts["orders"] > 400 * 0.9 * 3  # buyers make several orders each


def _shop(out):
    con = duckdb.connect()
    load_extension(con, "sqlite_scanner")
    con.execute(f"attach '{out / 'webshop.sqlite'}' as shop (type sqlite, read_only)")
    return con


def test_contract_columns(small):
    out, _ = small
    con = _shop(out)
    cols = {
        t: [r[0] for r in con.execute(f"describe shop.{t}").fetchall()] for t in ("customers", "orders", "order_items")
    }
    assert cols["customers"] == [
        "customer_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "city",
        "province",
        "customer_type",
        "marketing_opt_in",
        "created_at",
        "updated_at",
    ]
    assert cols["orders"][:4] == ["order_id", "customer_id", "guest_email", "guest_phone"]
    assert cols["order_items"] == ["order_id", "line_no", "sku", "category", "quantity", "unit_price", "unit_cost"]
    ticket = con.execute(f"select * from read_json('{out}/helpdesk/*.jsonl', ignore_errors=true) limit 1").description
    assert {"id", "requester", "channel", "order_ref", "satisfaction", "tags"} <= {d[0] for d in ticket}
    formats = {p.suffix for p in (out / "survey").iterdir()}
    assert formats == {".csv", ".jsonl", ".parquet"}


def test_planted_mess(small):
    out, _ = small
    con = _shop(out)
    # Phones in several real-world formats, emails in several cases, guest checkouts, junk identifiers.
    phones = [r[0] for r in con.execute("select phone from shop.customers").fetchall()]
    assert any(p.startswith("+62 ") for p in phones) and any(p.startswith("08") for p in phones)
    assert any(p.startswith("62-") for p in phones)
    emails = [r[0] for r in con.execute("select email from shop.customers").fetchall()]
    assert any(e != e.lower() for e in emails) and any(e != e.strip() for e in emails)
    guests = con.execute("select count(*) from shop.orders where customer_id is null").fetchone()[0]
    assert guests > 0
    households = con.execute("""
        select count(*) from (select regexp_replace(phone, '[^0-9]', '', 'g')[-9:] as p
                              from shop.customers group by 1 having count(*) > 1)""").fetchone()[0]
    assert households > 0
    bad = con.execute("select count(*) from shop.orders where net_amount < 0 or order_id is null").fetchone()[0]
    assert bad > 0
    truth = pl.read_csv(out / "truth.csv")
    # Some persons appear in every source: the identity problem the CDP must solve.
    per_person = truth.group_by("person_id").agg(pl.col("source").n_unique().alias("sources"))
    assert per_person["sources"].max() == 4


def test_cutoff_holds_back_later_deliveries(small, small_cutoff):
    out, counts = small
    earlier = pl.read_csv(small_cutoff / "truth.csv")
    full = pl.read_csv(out / "truth.csv")
    assert 0 < full.height - earlier.height < full.height * 0.05
    assert earlier.join(full, on=["source", "record_id", "person_id"], how="anti").height == 0
    assert not list((small_cutoff / "helpdesk").glob("tickets-2026-11-2[12].jsonl"))


def test_cutoff_keeps_records_changed_later_in_their_first_version(small, small_cutoff):
    """A record made by the cutoff and changed after it is in the cutoff's sources as first made, so the next night
    brings it as an update of a known record (as a real source does), not as a new one."""
    out, _ = small
    cutoff = date(2026, 11, 20)  # small_cutoff's
    night, earlier = _shop(out), _shop(small_cutoff)
    for table, made in (("customers", "created_at"), ("orders", "ordered_at")):
        key = "customer_id" if table == "customers" else "order_id"
        made_by_cutoff = f"select {key} from shop.{table} where {key} is not null and left({made}, 10) <= ?"
        present = set(earlier.execute(f"select {key} from shop.{table}").fetchall())
        assert set(night.execute(made_by_cutoff, [cutoff.isoformat()]).fetchall()) <= present
        changed_later = night.execute(
            made_by_cutoff + " and left(updated_at, 10) > ?", [cutoff.isoformat(), cutoff.isoformat()]
        ).fetchall()
        assert changed_later
        first_versions = earlier.execute(
            f"select {key}, updated_at = {made} from shop.{table} where {key} in (select unnest(?))",
            [[k for (k,) in changed_later]],
        ).fetchall()
        assert len(first_versions) == len(changed_later) and all(first for _, first in first_versions)
    later_tickets = earlier.execute(
        f"select count(*) from read_json('{small_cutoff}/helpdesk/*.jsonl', ignore_errors=true) "
        "where left(updated_at, 10) > ? or left(solved_at, 10) > ?",
        [cutoff.isoformat(), cutoff.isoformat()],
    ).fetchone()[0]
    assert later_tickets == 0


def test_the_last_day_brings_new_accounts_and_orders(tmp_path):
    """The bench's nightly run lands the generator's last day: it has to hold new customers and their orders, not
    only changes to older ones (a day that only updated orders measured no new records)."""
    end = date(2026, 11, 22)
    generate(DemoConfig(customers=600, start_date=date(2026, 9, 1), end_date=end), tmp_path)
    con = _shop(tmp_path)
    for table, made in (("customers", "created_at"), ("orders", "ordered_at")):
        by_day = dict(con.execute(f"select left({made}, 10), count(*) from shop.{table} group by 1").fetchall())
        days = sorted(by_day)
        assert days[-1] == end.isoformat(), table
        # the last day is an ordinary day: about as many new records as the days before it
        typical = sorted(by_day[day] for day in days[-15:-1])[7]
        assert by_day[end.isoformat()] >= typical / 3, (table, by_day[end.isoformat()], typical)


def test_chunks_number_on_and_add_to_the_same_files(chunked, tmp_path):
    """Persons made in chunks (as at 3M) give one set of sources: ids unique across chunks, every record written once
    to the database, the daily files (appended csv/jsonl, rewritten parquet) and the truth; the first chunk is the
    unchunked generator's output, so small scales do not change."""
    chunked, chunked_counts = chunked
    assert chunked_counts["persons"] == 400
    truth = pl.read_csv(chunked / "truth.csv")
    records = ("webshop_customers", "orders", "tickets", "survey_responses")
    assert truth.height == sum(chunked_counts[k] for k in records)
    assert truth.select("source", "record_id").is_unique().all()
    assert truth["person_id"].str.slice(1).cast(pl.Int64).max() <= 400
    con = _shop(chunked)
    customers, orders = con.execute(
        "select (select count(distinct customer_id) from shop.customers), "
        "(select count(distinct order_id) from shop.orders)"
    ).fetchone()
    assert (customers, orders) == (chunked_counts["webshop_customers"], chunked_counts["orders"])
    assert con.execute("select count(*) from shop.order_items").fetchone()[0] == chunked_counts["order_items"]
    survey = con.execute(
        "select count(distinct response_id) filter (where not ends_with(response_id, '-X')) from ("
        f"select response_id from read_csv('{chunked}/survey/*.csv', all_varchar=true) union all "
        f"select response_id from read_json('{chunked}/survey/*.jsonl') union all "
        f"select response_id from read_parquet('{chunked}/survey/*.parquet'))"
    ).fetchone()[0]
    assert survey == chunked_counts["survey_responses"]
    tickets = con.execute(
        f"select count(distinct id) filter (where id like 'T%' and not ends_with(id, '-X')) "
        f"from read_json('{chunked}/helpdesk/*.jsonl', ignore_errors=true)"
    ).fetchone()[0]
    assert tickets == chunked_counts["tickets"]
    # The first chunk (134 of 400 persons) is what the unchunked generator makes of 134 persons, record for record.
    generate(DemoConfig(customers=134), tmp_path / "unchunked")
    first_chunk = truth.filter(pl.col("person_id") <= "P0000134")
    assert first_chunk.equals(pl.read_csv(tmp_path / "unchunked" / "truth.csv"))


def test_chunked_cutoff_is_a_subset_of_the_next_night(chunked, tmp_path):
    """At chunked scales too, the sources as of a cutoff are the next night's minus the held-back days (the 1M/3M
    benches' nightly run lands exactly one new day): the ids a chunk draws do not depend on the cutoff."""
    generate(DemoConfig(customers=400, chunk_persons=150, cutoff=date(2026, 11, 20)), tmp_path / "earlier")
    earlier = pl.read_csv(tmp_path / "earlier" / "truth.csv")
    full = pl.read_csv(chunked[0] / "truth.csv")  # DemoConfig(customers=400, chunk_persons=150): the next night
    assert 0 < full.height - earlier.height < full.height * 0.05
    assert earlier.join(full, on=["source", "record_id", "person_id"], how="anti").height == 0


def test_a_ticket_opened_in_the_last_minute_is_not_solved_before_it_was_opened():
    """The data's last day (the bench's nightly) opens tickets up to its last second; moving their updates back to the
    day's last minute must not put them before the ticket (the raw suite warned of one at 1M)."""
    from datetime import datetime

    from pipeline.lib.demo_data import within_the_data

    tickets = pl.DataFrame(
        {
            "created": [datetime(2026, 11, 22, 23, 59, 40), datetime(2026, 11, 22, 9, 0), datetime(2026, 11, 20, 9, 0)],
            "updated": [datetime(2026, 11, 23, 2, 0), datetime(2026, 11, 24, 9, 0), datetime(2026, 11, 21, 9, 0)],
            "solved_at": [datetime(2026, 11, 23, 2, 0), None, datetime(2026, 11, 21, 9, 0)],
        }
    )
    kept = within_the_data(tickets, date(2026, 11, 22))
    assert kept["updated"].to_list() == [
        datetime(2026, 11, 22, 23, 59, 40),
        datetime(2026, 11, 22, 23, 59),
        datetime(2026, 11, 21, 9, 0),
    ]
    assert kept["solved_at"].to_list() == [datetime(2026, 11, 22, 23, 59, 40), None, datetime(2026, 11, 21, 9, 0)]
