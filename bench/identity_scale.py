"""Scale run of identity resolution on synthetic identifiers (not a test: it prints timings).

    uv run python bench/identity_scale.py [--persons 1000000] [--seed 1]

Builds ~5 records per person set-wise with numpy/polars, shaped like the real sources: a webshop account for 70%
of persons, ~3 orders (by account, or as a guest with email/phone in mixed formats), ~0.8 helpdesk tickets (by
phone or email, some with an order reference) and ~0.5 survey responses; 3% of persons share their phone with the
next person (households) and a few records carry the junk values. Then times normalisation, clustering and id
assignment separately and reports pairwise precision/recall against the planted persons.
"""

from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import polars as pl

from pipeline.lib.identity import IdentityRules, assign_stable_ids, normalise_identifiers, resolve_identities


def phone_formats(digits: pl.Expr, style: pl.Expr) -> pl.Expr:
    national = digits.str.slice(1)
    return (
        pl.when(style == 0)
        .then(digits)
        .when(style == 1)
        .then(pl.concat_str([pl.lit("+62 "), national.str.slice(0, 3), pl.lit(" "), national.str.slice(3)]))
        .when(style == 2)
        .then(pl.concat_str([pl.lit("62-"), national]))
        .otherwise(pl.concat_str([digits.str.slice(0, 4), pl.lit("-"), digits.str.slice(4)]))
    )


def email_formats(email: pl.Expr, style: pl.Expr) -> pl.Expr:
    return (
        pl.when(style == 1)
        .then(email.str.to_uppercase())
        .when(style == 2)
        .then(pl.concat_str([pl.lit(" "), email, pl.lit(" ")]))
        .otherwise(email)
    )


def synthetic(persons: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(raw identifier rows, truth: source, record_id, person)."""
    rng = np.random.default_rng(seed)
    pid = np.arange(persons)
    number = rng.permutation(persons * 10)[:persons]  # distinct 8-digit subscriber numbers
    number = np.where((rng.random(persons) < 0.03) & (pid > 0), np.roll(number, 1), number)  # households
    people = pl.DataFrame(
        {"person": pid, "digits": pl.Series([f"0812{n:08d}" for n in number]), "has_account": rng.random(persons) < 0.7}
    ).with_columns(email=pl.format("user{}@mail.co.id", pl.col("person")))

    def pick(n_per: np.ndarray) -> pl.DataFrame:
        return people[np.repeat(pid, n_per)]

    accounts = people.filter("has_account").with_columns(record_id=pl.format("W{}", pl.col("person")))
    orders = pick(rng.poisson(3.0, persons)).with_row_index("k").with_columns(record_id=pl.format("O{}", pl.col("k")))
    n = orders.height
    guest = ~orders["has_account"] | pl.Series(rng.random(n) < 0.1)
    junk = pl.Series(rng.random(n) < 0.001)
    orders = orders.with_columns(
        account=pl.when(guest).then(None).otherwise(pl.format("W{}", pl.col("person"))),
        guest_email=pl.when(~guest)
        .then(None)
        .when(junk)
        .then(pl.lit("test@test.com"))
        .otherwise(email_formats(pl.col("email"), pl.Series(rng.integers(0, 3, n)))),
        guest_phone=pl.when(~guest)
        .then(None)
        .when(junk)
        .then(pl.lit("0000000000"))
        .when(pl.Series(rng.random(n) < 0.7))
        .then(phone_formats(pl.col("digits"), pl.Series(rng.integers(0, 4, n)))),
    )
    tickets = pick(rng.poisson(0.8, persons)).with_row_index("k").with_columns(record_id=pl.format("T{}", pl.col("k")))
    m = tickets.height
    by_phone = pl.Series(rng.random(m) < 0.45)
    first_order = orders.group_by("person").agg(order=pl.col("record_id").first())
    tickets = tickets.join(first_order, on="person", how="left", maintain_order="left").with_columns(
        requester=pl.format("H{}{}", pl.col("person"), pl.when(by_phone).then(pl.lit("p")).otherwise(pl.lit("e"))),
        phone=pl.when(by_phone).then(phone_formats(pl.col("digits"), pl.Series(rng.integers(0, 4, m)))),
        contact_email=pl.when(~by_phone).then(email_formats(pl.col("email"), pl.Series(rng.integers(0, 3, m)))),
        order_ref=pl.when(pl.Series(rng.random(m) < 0.35)).then(pl.col("order")),
    )
    surveys = pick(rng.poisson(0.5, persons)).with_row_index("k").with_columns(record_id=pl.format("S{}", pl.col("k")))
    q = surveys.height
    route = pl.Series(rng.random(q))
    surveys = surveys.with_columns(
        contact_email=pl.when(route < 0.6).then(email_formats(pl.col("email"), pl.Series(rng.integers(0, 3, q)))),
        phone=pl.when(route >= 0.5).then(phone_formats(pl.col("digits"), pl.Series(rng.integers(0, 4, q)))),
    )

    def rows(frame: pl.DataFrame, source: str, columns: dict[str, str]) -> pl.DataFrame:
        return pl.concat(
            [
                frame.select(source=pl.lit(source), record_id="record_id", id_type=pl.lit(t), raw_value=pl.col(c))
                for t, c in columns.items()
            ]
        )

    raw = pl.concat(
        [
            rows(
                accounts, "webshop_customer", {"webshop_customer_id": "record_id", "email": "email", "phone": "digits"}
            ),
            rows(
                orders,
                "webshop_order",
                {"order_id": "record_id", "webshop_customer_id": "account", "email": "guest_email"},
            ),
            rows(orders, "webshop_order", {"phone": "guest_phone"}),
            rows(
                tickets,
                "helpdesk_ticket",
                {
                    "helpdesk_requester_id": "requester",
                    "email": "contact_email",
                    "phone": "phone",
                    "order_id": "order_ref",
                },
            ),
            rows(surveys, "survey_response", {"email": "contact_email", "phone": "phone"}),
        ]
    ).filter(pl.col("raw_value").is_not_null())
    truth = pl.concat(
        [
            f.select(source=pl.lit(s), record_id="record_id", person="person")
            for s, f in [
                ("webshop_customer", accounts),
                ("webshop_order", orders),
                ("helpdesk_ticket", tickets),
                ("survey_response", surveys),
            ]
        ]
    )
    return raw, truth


def pairwise_quality(clusters: pl.DataFrame, truth: pl.DataFrame) -> tuple[float, float]:
    with duckdb.connect() as con:
        con.register("m", clusters.join(truth, on=["source", "record_id"]).to_arrow())
        return con.execute("""
            with pred as (select sum(n * (n - 1) / 2) p from (select count(*) n from m group by cluster_key)),
                 real as (select sum(n * (n - 1) / 2) p from (select count(*) n from m group by person)),
                 both_ as (select sum(n * (n - 1) / 2) p from (select count(*) n from m group by cluster_key, person))
            select both_.p / pred.p, both_.p / real.p from both_, pred, real""").fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rules = IdentityRules()
    t0 = time.perf_counter()
    raw, truth = synthetic(args.persons, args.seed)
    t1 = time.perf_counter()
    print(
        f"synthetic: {args.persons} persons, {truth.height} records, {raw.height} identifier rows "
        f"({raw.filter(pl.col('id_type') == 'phone').get_column('raw_value').n_unique()} distinct raw phones) "
        f"in {t1 - t0:.1f}s",
        flush=True,
    )
    identifiers = normalise_identifiers(raw, rules)
    t2 = time.perf_counter()
    print(f"normalise_identifiers: {t2 - t1:.1f}s", flush=True)
    resolution = resolve_identities(identifiers, truth.select("source", "record_id"), rules)
    t3 = time.perf_counter()
    print(
        f"resolve_identities: {t3 - t2:.1f}s -> {resolution.clusters.get_column('cluster_key').n_unique()} clusters, "
        f"{resolution.violations.height} violations",
        flush=True,
    )
    assigned = assign_stable_ids(resolution.clusters)
    t4 = time.perf_counter()
    print(f"assign_stable_ids (full rebuild): {t4 - t3:.1f}s", flush=True)
    # An incremental rerun: the previous mapping is this run's output.
    assign_stable_ids(resolution.clusters, assigned.select("source", "record_id", "customer_id"))
    t5 = time.perf_counter()
    print(f"assign_stable_ids (with previous mapping): {t5 - t4:.1f}s", flush=True)
    precision, recall = pairwise_quality(resolution.clusters, truth)
    print(f"total (normalise + resolve + ids): {t4 - t1:.1f}s; pairwise precision {precision:.4f} recall {recall:.4f}")


if __name__ == "__main__":
    main()
