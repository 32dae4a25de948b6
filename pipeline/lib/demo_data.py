"""Deterministic, Indonesian-flavoured demo data for the three raw sources, with planted real-world mess.

    python -m pipeline.lib.demo_data --customers 2000 --out data/demo [--seed 42] [--end-date 2026-11-22]

Writes, in the shapes of `shared/contracts/sources.md`:
  webshop.sqlite                  customers, orders, order_items (the webshop database)
  helpdesk/tickets-YYYY-MM-DD.jsonl one helpdesk export per day (by ticket updated_at)
  survey/responses-YYYY-MM-DD.{csv,jsonl,parquet}  one survey export per day (by submitted_at), formats mixed
  truth.csv                       source, record_id, person_id: the true person behind every source record

Planted mess: the same person under different email case/spacing and phone formats across sources, guest checkouts,
second webshop accounts, work emails used only at the helpdesk, households sharing one phone, junk identifiers
(test@test.com, 0000000000), duplicated records, and bad rows (negative amounts, unknown status, missing keys,
unparseable dates, out-of-range scores, malformed JSON lines).
Everything is drawn set-wise with numpy/polars from one seed, so the same arguments give byte-identical files.
Persons are made and written in chunks of at most DemoConfig.chunk_persons (memory stays flat at any scale: 3M persons
would take ~28 GiB at once); the first chunk draws from the seed's own stream, so up to chunk_persons persons the files
are the ones an unchunked generator writes.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.lib.duckdb_extensions import load_extension

HISTORY_START = date(2024, 1, 1)
DEFAULT_END = date(2026, 11, 22)

FIRST_NAMES = (
    "Budi Siti Agus Dewi Andi Rina Joko Sri Wahyu Putri Eko Fitri Hendra Yuni Rudi Lestari Bambang Ayu Dedi Ratna "
    "Arif Indah Teguh Wulan Fajar Nur Rizky Maya Dimas Intan Yoga Sari Bayu Anisa Gilang Kartika Hadi Melati Irfan "
    "Dian Reza Novi Taufik Citra Yusuf Larasati Adi Permata Ilham Safitri"
).split()
LAST_NAMES = (
    "Santoso Wijaya Saputra Pratama Hidayat Kusuma Setiawan Nugroho Lestari Siregar Nasution Hutapea Simanjuntak "
    "Wibowo Gunawan Halim Tanjung Lubis Purba Sihombing Harahap Rahmawati Susanto Utomo Permana Firmansyah Syahputra "
    "Kurniawan Hakim Sembiring"
).split()
CITIES = [
    ("Jakarta Selatan", "DKI Jakarta"),
    ("Jakarta Barat", "DKI Jakarta"),
    ("Bandung", "Jawa Barat"),
    ("Bekasi", "Jawa Barat"),
    ("Surabaya", "Jawa Timur"),
    ("Malang", "Jawa Timur"),
    ("Semarang", "Jawa Tengah"),
    ("Yogyakarta", "DI Yogyakarta"),
    ("Medan", "Sumatera Utara"),
    ("Palembang", "Sumatera Selatan"),
    ("Makassar", "Sulawesi Selatan"),
    ("Denpasar", "Bali"),
    ("Balikpapan", "Kalimantan Timur"),
    ("Tangerang", "Banten"),
]
EMAIL_DOMAINS = ["gmail.com", "yahoo.co.id", "gmail.com", "outlook.com", "ymail.com", "gmail.com"]
WORK_DOMAINS = ["kantor.co.id", "bumn.id", "startup.id"]
CATEGORIES = ["fashion", "elektronik", "kecantikan", "rumah_tangga", "makanan", "olahraga"]
PHONE_PREFIXES = ["0811", "0812", "0813", "0821", "0822", "0852", "0853", "0857", "0878", "0896"]
JUNK_EMAIL, JUNK_PHONE = "test@test.com", "0000000000"

ORDER_STATUSES = np.array(["completed", "shipped", "paid", "pending", "cancelled", "refunded"])
ORDER_STATUS_P = [0.80, 0.05, 0.03, 0.02, 0.06, 0.04]
ORDER_CHANNELS = np.array(["web", "app", "marketplace", "store"])
TICKET_CHANNELS = np.array(["email", "whatsapp", "instagram", "facebook", "phone", "chat"])
TICKET_STATUSES = np.array(["solved", "closed", "open", "pending", "new"])
TICKET_SUBJECTS = np.array(
    [
        "Pesanan belum sampai",
        "Refund",
        "Barang rusak",
        "Ganti alamat",
        "Pertanyaan produk",
        "Promo tidak berlaku",
        "Pembayaran gagal",
    ]
)


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 2000
    seed: int = 42
    end_date: date = DEFAULT_END
    start_date: date = HISTORY_START
    orders_per_buyer: float = 10.0
    # The sources as they stood at the end of this day: later deliveries are held back
    # (None: everything up to end_date).
    # Generating again without it then adds exactly the held-back days - an incremental "next night" of data.
    cutoff: date | None = None
    tickets_per_customer: float = 2.0
    surveys_per_customer: float = 1.0
    # Persons made and written at a time: ~2.5 GiB of frames at the peak, and the demo and the 10k/100k benches stay
    # one chunk.
    chunk_persons: int = 250_000


@dataclass
class _Numbering:
    """Where the next chunk's record numbers start: ids run on across chunks (P, W, O, T, S and H numbers)."""

    persons: int = 0
    accounts: int = 0
    orders: int = 0
    tickets: int = 0
    responses: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _chunk_sizes(persons: int, chunk_persons: int) -> list[int]:
    """Persons per chunk, as even as possible (no one-person tail chunk)."""
    chunks = max(1, -(-persons // chunk_persons))
    return [persons // chunks + (i < persons % chunks) for i in range(chunks)]


def _chunk_rng(seed: int, index: int) -> np.random.Generator:
    """The first chunk uses the seed's own stream (the files of small scales do not depend on chunking); later ones
    an independent stream per chunk."""
    return np.random.default_rng(seed if index == 0 else [seed, index])


def _numbered(prefix: str, numbers: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str([pl.lit(prefix), numbers.cast(pl.Utf8).str.zfill(width)])


def _pick(rng: np.random.Generator, values, n: int) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.integers(0, len(values), n)]


def _phone_variants(digits: pl.Expr, style: pl.Expr) -> pl.Expr:
    """Render a local number '08xxxxxxxxx' in one of five real-world formats (style 0..4)."""
    national = digits.str.slice(1)
    return (
        pl.when(style == 0)
        .then(digits)
        .when(style == 1)
        .then(
            pl.concat_str(
                [
                    pl.lit("+62 "),
                    national.str.slice(0, 3),
                    pl.lit(" "),
                    national.str.slice(3, 4),
                    pl.lit(" "),
                    national.str.slice(7),
                ]
            )
        )
        .when(style == 2)
        .then(pl.concat_str([pl.lit("62-"), national.str.slice(0, 3), pl.lit("-"), national.str.slice(3)]))
        .when(style == 3)
        .then(
            pl.concat_str(
                [digits.str.slice(0, 4), pl.lit("-"), digits.str.slice(4, 4), pl.lit("-"), digits.str.slice(8)]
            )
        )
        .otherwise(pl.concat_str([pl.lit("+62"), national]))
    )


def _email_variants(email: pl.Expr, style: pl.Expr) -> pl.Expr:
    """The same address as people type it: as is, upper-cased, capitalised, or with stray spaces (style 0..3)."""
    return (
        pl.when(style == 1)
        .then(email.str.to_uppercase())
        .when(style == 2)
        .then(pl.concat_str([email.str.slice(0, 1).str.to_uppercase(), email.str.slice(1)]))
        .when(style == 3)
        .then(pl.concat_str([pl.lit("  "), email, pl.lit(" ")]))
        .otherwise(email)
    )


def _timestamps(day_offsets: np.ndarray, seconds: np.ndarray, start: date) -> pl.Series:
    base = np.datetime64(start.isoformat(), "s")
    stamps = base + day_offsets.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    return pl.Series(stamps.astype("datetime64[us]"))


def _iso(ts: pl.Expr, with_offset: pl.Expr) -> pl.Expr:
    """ISO 8601 as the sources send it: with a +07:00 offset or naive (naive = Asia/Jakarta)."""
    text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return pl.when(with_offset).then(pl.concat_str([text, pl.lit("+07:00")])).otherwise(text)


def build_people(cfg: DemoConfig, rng: np.random.Generator, n: int | None = None, first: int = 0) -> pl.DataFrame:
    """n persons (all of cfg's by default), numbered from first + 1."""
    n = cfg.customers if n is None else n
    first_names = _pick(rng, FIRST_NAMES, n)
    last_names = _pick(rng, LAST_NAMES, n)
    city_idx = rng.integers(0, len(CITIES), n)
    kind = rng.choice(np.array(["account", "guest", "prospect"]), n, p=[0.72, 0.18, 0.10])
    ctype = rng.choice(np.array(["end_customer", "reseller", "agent"]), n, p=[0.90, 0.06, 0.04])
    span = (cfg.end_date - cfg.start_date).days
    people = pl.DataFrame(
        {
            "first_name": first_names.astype(str),
            "last_name": last_names.astype(str),
            "city": np.array([city for city, _ in CITIES])[city_idx],
            "province": np.array([province for _, province in CITIES])[city_idx],
            "kind": kind,
            "customer_type": ctype,
            "phone_prefix": _pick(rng, PHONE_PREFIXES, n).astype(str),
            "phone_number": rng.integers(0, 10**8, n),
            "domain": _pick(rng, EMAIL_DOMAINS, n).astype(str),
            "work_domain": _pick(rng, WORK_DOMAINS, n).astype(str),
            # first seen on a day of start_date..end_date, the last day too (a nightly run brings new customers)
            "acquired_day": rng.integers(0, span + 1, n),
            "opt_in": rng.random(n) < 0.6,
            "promo_lover": rng.random(n) < 0.12,
            "second_account": (rng.random(n) < 0.04) & (kind == "account"),
            "uses_work_email": rng.random(n) < 0.10,
            # buy-till-you-die: a purchase rate and a lifetime per person (days)
            "rate": rng.gamma(0.9, cfg.orders_per_buyer / 0.9 / 420.0, n),
            "lifetime": rng.exponential(600.0, n),
        }
    ).with_row_index("n", offset=first)
    people = people.with_columns(
        person_id=_numbered("P", pl.col("n") + 1, 7),
        phone_digits=pl.concat_str([pl.col("phone_prefix"), pl.col("phone_number").cast(pl.Utf8).str.zfill(8)]),
        email=pl.concat_str(
            [
                pl.col("first_name").str.to_lowercase(),
                pl.lit("."),
                pl.col("last_name").str.to_lowercase(),
                pl.col("n").cast(pl.Utf8),
                pl.lit("@"),
                pl.col("domain"),
            ]
        ),
        work_email=pl.concat_str(
            [pl.col("first_name").str.to_lowercase(), pl.col("n").cast(pl.Utf8), pl.lit("@"), pl.col("work_domain")]
        ),
        full_name=pl.concat_str([pl.col("first_name"), pl.lit(" "), pl.col("last_name")]),
    )
    # Households: ~3% of people share one phone with the next person (two real persons, one number).
    share = pl.Series(rng.random(n) < 0.03)
    shared_digits = people["phone_digits"].shift(1)
    return people.drop("phone_prefix", "phone_number").with_columns(
        phone_digits=pl.when(share & shared_digits.is_not_null()).then(shared_digits).otherwise(pl.col("phone_digits"))
    )


def build_webshop_customers(
    people: pl.DataFrame, cfg: DemoConfig, rng: np.random.Generator, first: int = 0
) -> pl.DataFrame:
    """The webshop accounts of people, numbered from first + 1."""
    holders = people.filter(pl.col("kind") == "account")
    second = holders.filter(pl.col("second_account"))
    accounts = pl.concat([holders.with_columns(is_second=pl.lit(False)), second.with_columns(is_second=pl.lit(True))])
    m = accounts.height
    created_day = accounts["acquired_day"].to_numpy() + np.where(
        accounts["is_second"].to_numpy(), rng.integers(30, 300, m), 0
    )
    created_day = np.minimum(created_day, (cfg.end_date - cfg.start_date).days)
    created = _timestamps(created_day, rng.integers(0, 86400, m), cfg.start_date)
    updated_day = np.minimum(created_day + rng.integers(0, 60, m), (cfg.end_date - cfg.start_date).days)
    updated = _timestamps(updated_day, rng.integers(0, 86400, m), cfg.start_date)
    frame = accounts.with_columns(
        customer_id=_numbered("W", pl.int_range(first + 1, first + m + 1, dtype=pl.Int64), 7),
        email_style=pl.Series(rng.integers(0, 4, m)),
        phone_style=pl.Series(rng.integers(0, 5, m)),
        created=created,
        updated=pl.Series(np.maximum(updated.to_numpy(), created.to_numpy())),
        offset=pl.Series(rng.random(m) < 0.5),
    )
    # Second accounts: same address typed in another case, a different phone format.
    frame = frame.with_columns(
        email_style=pl.when(pl.col("is_second")).then(1).otherwise(pl.col("email_style")),
        phone_style=pl.when(pl.col("is_second")).then((pl.col("phone_style") + 1) % 5).otherwise(pl.col("phone_style")),
    )
    return frame.select(
        "customer_id",
        "person_id",
        email=_email_variants(pl.col("email"), pl.col("email_style")),
        phone=_phone_variants(pl.col("phone_digits"), pl.col("phone_style")),
        first_name="first_name",
        last_name="last_name",
        city="city",
        province="province",
        customer_type="customer_type",
        marketing_opt_in="opt_in",
        created_at=_iso(pl.col("created"), pl.col("offset")),
        updated_at=_iso(pl.col("updated"), pl.col("offset")),
        updated="updated",
    )


def build_orders(
    people: pl.DataFrame, customers: pl.DataFrame, cfg: DemoConfig, rng: np.random.Generator, numbering: _Numbering
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Orders and their lines for people's buyers; order ids and referrals run on from numbering."""
    span = (cfg.end_date - cfg.start_date).days
    buyers = people.filter(pl.col("kind") != "prospect")
    acq = buyers["acquired_day"].to_numpy()
    # days a buyer orders on: acquired_day up to the end of their lifetime or end_date, whichever is first
    active = np.clip(np.minimum(acq + buyers["lifetime"].to_numpy(), span + 1) - acq, 1, None)
    counts = 1 + rng.poisson(buyers["rate"].to_numpy() * active)
    idx = np.repeat(np.arange(buyers.height), counts)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    is_first = np.zeros(idx.size, dtype=bool)
    is_first[first] = True
    day = np.where(is_first, acq[idx], acq[idx] + (rng.random(idx.size) * active[idx]).astype(int))
    day = np.minimum(day, span)
    k = idx.size
    ordered = _timestamps(day, rng.integers(6 * 3600, 23 * 3600, k), cfg.start_date)
    accounts = customers.group_by("person_id").agg(
        pl.col("customer_id").min().alias("account_id"), pl.col("customer_id").max().alias("second_account_id")
    )
    orders = (
        buyers[idx]
        .select("person_id", "kind", "email", "phone_digits", "promo_lover", "customer_type")
        .with_columns(
            ordered=ordered,
            day=pl.Series(day),
            guest_roll=pl.Series(rng.random(k)),
            contact_roll=pl.Series(rng.random(k)),
            email_style=pl.Series(rng.integers(0, 4, k)),
            phone_style=pl.Series(rng.integers(0, 5, k)),
            use_second=pl.Series(rng.random(k) < 0.3),
            offset=pl.Series(rng.random(k) < 0.5),
            status=pl.Series(rng.choice(ORDER_STATUSES, k, p=ORDER_STATUS_P)),
            channel=pl.Series(rng.choice(ORDER_CHANNELS, k, p=[0.45, 0.30, 0.20, 0.05])),
            shipping=pl.Series(rng.choice(np.array([0.0, 9000.0, 15000.0, 25000.0]), k)),
            promo_roll=pl.Series(rng.random(k)),
            referral_roll=pl.Series(rng.random(k)),
            referrer=pl.Series(rng.integers(0, max(customers.height, 1), k)) + numbering.accounts,
            update_lag=pl.Series(rng.integers(0, 5 * 86400, k)),
        )
        .join(accounts, on="person_id", how="left")
    )
    orders = orders.with_row_index("seq", offset=numbering.orders + 1).with_columns(
        order_id=_numbered("O", pl.col("seq"), 8)
    )
    is_guest = (pl.col("kind") == "guest") | (pl.col("guest_roll") < 0.12)
    junk = pl.col("guest_roll") > 0.9985
    orders = orders.with_columns(
        customer_id=pl.when(is_guest)
        .then(None)
        .when(pl.col("use_second") & (pl.col("second_account_id") != pl.col("account_id")))
        .then(pl.col("second_account_id"))
        .otherwise(pl.col("account_id")),
        guest_email=pl.when(~is_guest)
        .then(None)
        .when(junk)
        .then(pl.lit(JUNK_EMAIL))
        .when(pl.col("contact_roll") < 0.85)
        .then(_email_variants(pl.col("email"), pl.col("email_style"))),
        guest_phone=pl.when(~is_guest)
        .then(None)
        .when(junk)
        .then(pl.lit(JUNK_PHONE))
        .when(pl.col("contact_roll") > 0.25)
        .then(_phone_variants(pl.col("phone_digits"), pl.col("phone_style"))),
        promo_code=pl.when(pl.col("promo_roll") < pl.when(pl.col("promo_lover")).then(0.8).otherwise(0.08)).then(
            pl.lit("HARBOLNAS")
        ),
        referral_code=pl.when(pl.col("referral_roll") < 0.03).then(
            pl.format("REF-W{}", (pl.col("referrer") + 1).cast(pl.Utf8).str.zfill(7))
        ),
        updated=pl.col("ordered") + pl.duration(seconds=pl.col("update_lag")),
    )
    orders = orders.with_columns(
        updated=pl.when(pl.col("updated").dt.date() > cfg.end_date)
        .then(pl.lit(datetime.combine(cfg.end_date, datetime.min.time()) + timedelta(hours=23)))
        .otherwise(pl.col("updated"))
    )
    # Order lines: 1-3 per order; the order's gross amount is the sum of its lines.
    lines_per = rng.integers(1, 4, k)
    li = np.repeat(np.arange(k), lines_per)
    n_lines = li.size
    line_no = np.arange(n_lines) - np.repeat(np.r_[0, np.cumsum(lines_per)[:-1]], lines_per) + 1
    # Each buyer has a spend level of their own (customers differ in what they usually spend: the heterogeneity the
    # Gamma-Gamma model estimates), from a stream of its own so that the other draws stay as they were.
    spend_level = np.random.default_rng([cfg.seed, numbering.persons, 1]).lognormal(0.0, 0.5, buyers.height)
    unit_price = rng.lognormal(11.3, 0.8, n_lines) * spend_level[idx][li] // 500 * 500 + 500
    items = pl.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy()[li],
            "line_no": line_no,
            "sku": pl.Series(rng.integers(1, 5000, n_lines)).cast(pl.Utf8).str.zfill(5).str.replace(r"^", "SKU-"),
            "category": _pick(rng, CATEGORIES, n_lines).astype(str),
            "quantity": rng.integers(1, 4, n_lines),
            "unit_price": unit_price,
            "unit_cost": np.where(
                rng.random(n_lines) < 0.9, np.round(unit_price * rng.uniform(0.45, 0.75, n_lines), -2), np.nan
            ),
        }
    ).with_columns(pl.col("unit_cost").fill_nan(None))
    gross = items.group_by("order_id").agg((pl.col("quantity") * pl.col("unit_price")).sum().alias("gross_amount"))
    orders = (
        orders.join(gross, on="order_id", how="left")
        .with_columns(
            discount_amount=pl.when(pl.col("promo_code").is_not_null())
            .then((pl.col("gross_amount") * 0.15 / 100).round() * 100)
            .otherwise(0.0),
        )
        .with_columns(net_amount=pl.col("gross_amount") - pl.col("discount_amount") + pl.col("shipping"))
    )
    return orders, items


def build_tickets(
    people: pl.DataFrame, orders: pl.DataFrame, cfg: DemoConfig, rng: np.random.Generator, first: int = 0
) -> pl.DataFrame:
    """Helpdesk tickets of people, numbered from first + 1."""
    span = (cfg.end_date - cfg.start_date).days
    n = people.height
    counts = rng.poisson(cfg.tickets_per_customer * np.where(people["kind"].to_numpy() == "prospect", 0.6, 1.0), n)
    idx = np.repeat(np.arange(n), counts)
    created_day = people["acquired_day"].to_numpy()[idx] + rng.integers(0, 400, idx.size)
    idx, created_day = idx[created_day <= span], created_day[created_day <= span]  # no tickets from the future
    k = idx.size
    t = people[idx].select(
        "person_id", "n", "email", "work_email", "uses_work_email", "phone_digits", "full_name", "acquired_day"
    )
    channel = rng.choice(TICKET_CHANNELS, k, p=[0.3, 0.35, 0.1, 0.05, 0.1, 0.1])
    created = _timestamps(created_day, rng.integers(0, 86400, k), cfg.start_date)
    resolve_s = rng.gamma(1.5, 18 * 3600, k).astype(int)
    status = rng.choice(TICKET_STATUSES, k, p=[0.55, 0.3, 0.07, 0.05, 0.03])
    # An order reference from the same person, for about a third of the tickets.
    person_orders = orders.group_by("person_id").agg(pl.col("order_id").first().alias("some_order"))
    t = t.with_columns(
        channel=pl.Series(channel),
        created=created,
        resolve_s=pl.Series(resolve_s),
        status=pl.Series(status),
        email_style=pl.Series(rng.integers(0, 4, k)),
        phone_style=pl.Series(rng.integers(0, 5, k)),
        ref_roll=pl.Series(rng.random(k)),
        sat_roll=pl.Series(rng.random(k)),
        offset=pl.Series(rng.random(k) < 0.5),
        priority=pl.Series(rng.choice(np.array(["low", "normal", "high", "urgent"]), k, p=[0.2, 0.6, 0.15, 0.05])),
        subject=pl.Series(rng.choice(TICKET_SUBJECTS, k)),
    ).join(person_orders, on="person_id", how="left")
    by_phone = pl.col("channel").is_in(["whatsapp", "phone"])
    solved = pl.col("status").is_in(["solved", "closed"])
    t = (
        t.with_row_index("seq", offset=first + 1)
        .with_columns(
            id=_numbered("T", pl.col("seq"), 8),
            # One requester id per person and contact route (phone-based vs email-based), as helpdesks do.
            requester_id=pl.concat_str(
                [_numbered("H", pl.col("n"), 7), pl.when(by_phone).then(pl.lit("p")).otherwise(pl.lit("e"))]
            ),
            requester_email=pl.when(by_phone)
            .then(None)
            .otherwise(
                _email_variants(
                    pl.when(pl.col("uses_work_email")).then(pl.col("work_email")).otherwise(pl.col("email")),
                    pl.col("email_style"),
                )
            ),
            requester_phone=pl.when(by_phone | pl.col("uses_work_email")).then(
                _phone_variants(pl.col("phone_digits"), pl.col("phone_style"))
            ),
            solved_at=pl.when(solved).then(pl.col("created") + pl.duration(seconds=pl.col("resolve_s"))),
            order_ref=pl.when(pl.col("ref_roll") < 0.35).then(pl.col("some_order")),
            satisfaction=pl.when(solved & (pl.col("sat_roll") < 0.4))
            .then(pl.lit("good"))
            .when(solved & (pl.col("sat_roll") < 0.5))
            .then(pl.lit("bad")),
        )
        .with_columns(
            updated=pl.coalesce(pl.col("solved_at"), pl.col("created") + pl.duration(seconds=pl.col("resolve_s") // 3)),
        )
    )
    return within_the_data(t, cfg.end_date)


def within_the_data(tickets: pl.DataFrame, end_date: date) -> pl.DataFrame:
    """Tickets whose update and solution fall after the data's last day moved back to its last minute, but never
    before the ticket was opened (one opened in that minute is solved when it was opened)."""
    end_ts = datetime.combine(end_date, datetime.min.time()) + timedelta(hours=23, minutes=59)
    latest = pl.max_horizontal(pl.lit(end_ts), pl.col("created"))
    return tickets.with_columns(
        pl.col("updated").clip(upper_bound=latest), pl.col("solved_at").clip(upper_bound=latest)
    )


def build_surveys(
    people: pl.DataFrame, orders: pl.DataFrame, cfg: DemoConfig, rng: np.random.Generator, first: int = 0
) -> pl.DataFrame:
    """Survey responses of people, numbered from first + 1."""
    span = (cfg.end_date - cfg.start_date).days
    n = people.height
    counts = rng.poisson(cfg.surveys_per_customer, n)
    idx = np.repeat(np.arange(n), counts)
    day = people["acquired_day"].to_numpy()[idx] + rng.integers(1, 500, idx.size)
    idx, day = idx[day <= span], day[day <= span]  # no responses from the future
    k = idx.size
    s = people[idx].select("person_id", "email", "phone_digits", "acquired_day", "promo_lover")
    person_orders = orders.group_by("person_id").agg(pl.col("order_id").last().alias("some_order"))
    survey = rng.choice(np.array(["nps", "csat"]), k, p=[0.6, 0.4])
    happy = rng.random(k)
    nps = np.clip(np.round(np.where(happy < 0.55, rng.normal(9.2, 0.8, k), rng.normal(5.5, 2.2, k))), 0, 10)
    csat = np.clip(np.round(rng.normal(4.0, 0.9, k)), 1, 5)
    s = s.with_columns(
        submitted=_timestamps(day, rng.integers(0, 86400, k), cfg.start_date),
        survey=pl.Series(survey),
        score=pl.Series(np.where(survey == "nps", nps, csat).astype(int)),
        route=pl.Series(rng.random(k)),
        email_style=pl.Series(rng.integers(0, 4, k)),
        phone_style=pl.Series(rng.integers(0, 5, k)),
        consent=pl.Series(rng.random(k) < 0.7),
        comment=pl.Series(rng.choice(np.array(["Mantap", "Pengiriman lambat", "Harga oke", "", "Pelayanan ramah"]), k)),
    ).join(person_orders, on="person_id", how="left")
    junk = pl.col("route") > 0.997
    return s.with_row_index("seq", offset=first + 1).with_columns(
        response_id=_numbered("S", pl.col("seq"), 8),
        # Routes: email (45%), phone (20%), order reference (20%, falls back to email), all three (13%), anonymous (2%).
        email=pl.when(junk)
        .then(pl.lit(JUNK_EMAIL))
        .when(
            (pl.col("route") < 0.45)
            | (pl.col("route").is_between(0.85, 0.98))
            | ((pl.col("route").is_between(0.65, 0.85)) & pl.col("some_order").is_null())
        )
        .then(_email_variants(pl.col("email"), pl.col("email_style"))),
        phone=pl.when(pl.col("route").is_between(0.45, 0.65) | pl.col("route").is_between(0.85, 0.98)).then(
            _phone_variants(pl.col("phone_digits"), pl.col("phone_style"))
        ),
        order_ref=pl.when(pl.col("route").is_between(0.65, 0.98)).then(pl.col("some_order")),
    )


def write_sqlite(path: Path, tables: dict[str, pl.DataFrame], append: bool = False) -> None:
    """Write the webshop database set-wise through DuckDB's SQLite scanner (no per-row inserts); with append, add
    the rows to the tables an earlier call created (a later chunk of persons)."""
    import duckdb

    if not append:
        path.unlink(missing_ok=True)
        sqlite3.connect(path).close()
    con = duckdb.connect()
    load_extension(con, "sqlite_scanner")
    con.execute(f"attach '{path}' as shop (type sqlite)")
    for name, frame in tables.items():
        con.register("_frame", frame.to_arrow())
        table = f"shop.{name}"
        con.execute(
            f"insert into {table} select * from _frame" if append else f"create table {table} as select * from _frame"
        )
        con.unregister("_frame")
    con.close()


def write_daily(frame: pl.DataFrame, day_col: str, folder: Path, stem: str, fmt_for_day, append: bool = False) -> int:
    """One file per day of day_col; with append, a day's rows go after those an earlier call wrote for that day (a
    later chunk of persons: jsonl and csv are appended to, a day's parquet file is rewritten with both)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = 0
    for (day,), part in frame.sort(day_col, "_order").group_by(day_col, maintain_order=True):
        fmt = fmt_for_day(day)
        target = folder / f"{stem}-{day.isoformat()}.{fmt}"
        body = part.drop(day_col, "_order")
        earlier = append and target.exists()
        if fmt == "parquet":
            (pl.concat([pl.read_parquet(target), body]) if earlier else body).write_parquet(target)
        else:
            with open(target, "ab" if earlier else "wb") as fh:
                if fmt == "csv":
                    body.write_csv(fh, include_header=not earlier)
                else:
                    body.write_ndjson(fh)
        files += 1
    return files


def _survey_format(day: date) -> str:
    return "parquet" if day.toordinal() % 11 == 0 else "jsonl" if day.toordinal() % 7 == 0 else "csv"


def generate(cfg: DemoConfig, out: Path) -> dict[str, int]:
    """Write the three sources and the ground truth into `out`, chunk by chunk of persons; returns record counts."""
    for stale in ("helpdesk", "survey"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    numbering = _Numbering()
    for index, persons in enumerate(_chunk_sizes(cfg.customers, cfg.chunk_persons)):
        _generate_chunk(cfg, _chunk_rng(cfg.seed, index), persons, numbering, out)
    # A truncated JSON line in one export, as an interrupted download leaves it.
    last_file = sorted((out / "helpdesk").glob("tickets-*.jsonl"))[-1]
    with open(last_file, "a", encoding="utf-8") as fh:
        fh.write('{"id": "T-BROKEN", "requester": {"id": "H9", "email": "x@y.id"\n')
    return {
        **numbering.counts,
        "ticket_files": sum(1 for _ in (out / "helpdesk").iterdir()),
        "survey_files": sum(1 for _ in (out / "survey").iterdir()),
    }


def _generate_chunk(cfg: DemoConfig, rng: np.random.Generator, persons: int, numbering: _Numbering, out: Path) -> None:
    """Make `persons` persons and their records, numbered on from `numbering`, and add them to the files in out."""
    append = numbering.persons > 0
    people = build_people(cfg, rng, persons, numbering.persons)
    customers = build_webshop_customers(people, cfg, rng, numbering.accounts)
    orders, items = build_orders(people, customers, cfg, rng, numbering)
    tickets = build_tickets(people, orders, cfg, rng, numbering.tickets)
    surveys = build_surveys(people, orders, cfg, rng, numbering.responses)
    numbering.persons += people.height
    numbering.accounts += customers.height
    numbering.orders += orders.height
    numbering.tickets += tickets.height
    numbering.responses += surveys.height
    if cfg.cutoff is not None:
        # The sources as they stood that night: a record made by then and changed later is there as first made
        # (the next night brings the change as an update of a known record, as a real source does), a later one is
        # not there.
        later = pl.col("updated").dt.date() > cfg.cutoff
        customers = customers.filter(pl.col("created_at").str.slice(0, 10) <= cfg.cutoff.isoformat())
        customers = customers.with_columns(
            updated_at=pl.when(later).then(pl.col("created_at")).otherwise(pl.col("updated_at"))
        )
        orders = orders.filter(pl.col("ordered").dt.date() <= cfg.cutoff).with_columns(
            status=pl.when(later).then(pl.lit("pending")).otherwise(pl.col("status")),
            updated=pl.when(later).then(pl.col("ordered")).otherwise(pl.col("updated")),
        )
        items = items.filter(pl.col("order_id").is_in(orders["order_id"].implode()))
        tickets = tickets.filter(pl.col("created").dt.date() <= cfg.cutoff).with_columns(
            status=pl.when(later).then(pl.lit("new")).otherwise(pl.col("status")),
            solved_at=pl.when(later).then(None).otherwise(pl.col("solved_at")),
            satisfaction=pl.when(later).then(None).otherwise(pl.col("satisfaction")),
            updated=pl.when(later).then(pl.col("created")).otherwise(pl.col("updated")),
        )
        surveys = surveys.filter(pl.col("submitted").dt.date() <= cfg.cutoff)

    # Bad rows, one small batch of each kind (they must land in quarantine with a reason, not vanish).
    bad = rng.random(orders.height)
    orders = orders.with_columns(
        net_amount=pl.when(pl.Series(bad < 0.002)).then(-pl.col("net_amount")).otherwise(pl.col("net_amount")),
        status=pl.when(pl.Series((bad >= 0.002) & (bad < 0.003)))
        .then(pl.lit("lost_in_transit"))
        .otherwise(pl.col("status")),
    )
    shop_orders = orders.select(
        "order_id",
        "customer_id",
        "guest_email",
        "guest_phone",
        ordered_at=_iso(pl.col("ordered"), pl.col("offset")),
        status="status",
        channel="channel",
        currency=pl.lit("IDR"),
        gross_amount="gross_amount",
        discount_amount="discount_amount",
        shipping_amount="shipping",
        net_amount="net_amount",
        promo_code="promo_code",
        referral_code="referral_code",
        updated_at=_iso(pl.col("updated"), pl.col("offset")),
    )
    missing_key = shop_orders.head(max(1, orders.height // 1000)).with_columns(order_id=pl.lit(None, pl.Utf8))
    write_sqlite(
        out / "webshop.sqlite",
        {
            "customers": customers.drop("person_id", "updated"),
            "orders": pl.concat([shop_orders, missing_key]),
            "order_items": items,
        },
        append,
    )

    ticket_rows = tickets.select(
        "id",
        requester=pl.struct(id="requester_id", email="requester_email", phone="requester_phone", name="full_name"),
        channel="channel",
        subject="subject",
        status="status",
        priority="priority",
        order_ref="order_ref",
        created_at=_iso(pl.col("created"), pl.col("offset")),
        updated_at=_iso(pl.col("updated"), pl.col("offset")),
        solved_at=_iso(pl.col("solved_at"), pl.col("offset")),
        satisfaction="satisfaction",
        tags=pl.concat_list([pl.col("channel"), pl.col("priority")]),
        _day=pl.col("updated").dt.date(),
        _order=pl.col("seq"),
    )
    dup_tickets = ticket_rows.filter(pl.col("_order") % 97 == 0)
    bad_dates = ticket_rows.filter(pl.col("_order") % 499 == 0).with_columns(
        id=pl.format("{}-X", pl.col("id")), created_at=pl.lit("kemarin sore")
    )
    write_daily(
        pl.concat([ticket_rows, dup_tickets, bad_dates]),
        "_day",
        out / "helpdesk",
        "tickets",
        lambda _day: "jsonl",
        append,
    )

    survey_rows = surveys.select(
        "response_id",
        submitted_at=_iso(pl.col("submitted"), pl.col("route") < 0.5),
        survey="survey",
        score=pl.col("score").cast(pl.Utf8),
        comment="comment",
        email="email",
        phone="phone",
        order_ref="order_ref",
        consent="consent",
        _day=pl.col("submitted").dt.date(),
        _order=pl.col("seq"),
    )
    out_of_range = survey_rows.filter(pl.col("_order") % 401 == 0).with_columns(
        response_id=pl.format("{}-X", pl.col("response_id")),
        score=pl.when(pl.col("survey") == "nps").then(pl.lit("11")).otherwise(pl.lit("sangat puas")),
    )
    dup_surveys = survey_rows.filter(pl.col("_order") % 89 == 0)
    write_daily(
        pl.concat([survey_rows, out_of_range, dup_surveys]), "_day", out / "survey", "responses", _survey_format, append
    )

    truth = pl.concat(
        [
            customers.select(source=pl.lit("webshop_customer"), record_id="customer_id", person_id="person_id"),
            orders.select(source=pl.lit("webshop_order"), record_id="order_id", person_id="person_id"),
            tickets.select(source=pl.lit("helpdesk_ticket"), record_id="id", person_id="person_id"),
            surveys.select(source=pl.lit("survey_response"), record_id="response_id", person_id="person_id"),
        ]
    )
    with open(out / "truth.csv", "ab" if append else "wb") as fh:
        truth.write_csv(fh, include_header=not append)
    for name, frame in (
        ("persons", people),
        ("webshop_customers", customers),
        ("orders", orders),
        ("order_items", items),
        ("tickets", tickets),
        ("survey_responses", surveys),
    ):
        numbering.counts[name] = numbering.counts.get(name, 0) + frame.height


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=DemoConfig.customers, help="number of real persons")
    parser.add_argument("--seed", type=int, default=DemoConfig.seed)
    parser.add_argument("--end-date", type=date.fromisoformat, default=DEFAULT_END)
    parser.add_argument(
        "--cutoff",
        type=date.fromisoformat,
        default=None,
        help="hold back deliveries after this day (the sources as of an earlier night)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    counts = generate(
        DemoConfig(customers=args.customers, seed=args.seed, end_date=args.end_date, cutoff=args.cutoff), args.out
    )
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
