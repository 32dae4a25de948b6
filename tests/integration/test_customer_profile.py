"""The golden record on one full demo run: row grain, survivorship, and traits recomputed from staging."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.lib.demo_data import DEFAULT_END
from pipeline.lib.phones import normalise_phones
from pipeline.lib.warehouse import connect, read_frame

PURCHASE_STATUSES = ["paid", "shipped", "completed"]

# Persons whose records all resolved to one customer that holds nobody else: survivorship is only meaningful there.
CLEAN_CUSTOMERS = """
    with resolved as (
        select truth.person_id, identity_map.customer_id
        from truth join intermediate.int_identity_map as identity_map using (source, record_id)
    )
    select any_value(person_id) as person_id, customer_id
    from resolved
    where person_id in (select person_id from resolved group by person_id having count(distinct customer_id) = 1)
    group by customer_id
    having count(distinct person_id) = 1
"""


@pytest.fixture(scope="module")
def warehouse(demo_run):
    with connect(demo_run.warehouse, read_only=True) as con:
        con.register("truth", pl.read_csv(demo_run.truth).to_arrow())
        yield con


@pytest.fixture(scope="module")
def profile(warehouse) -> pl.DataFrame:
    return read_frame(warehouse, "select * from marts.customer_profile")


def test_one_row_per_resolved_customer(warehouse, profile):
    resolved = read_frame(
        warehouse, "select distinct customer_id from intermediate.int_identity_map where customer_id is not null"
    )
    assert profile.height == resolved.height > 1000
    assert profile.get_column("customer_id").is_unique().all()
    assert set(profile.get_column("customer_id")) == set(resolved.get_column("customer_id"))


def test_account_email_and_phone_survive_over_newer_helpdesk_contact(warehouse, profile):
    # Planted: people who write to the helpdesk from a work address. Their ticket is newer than their account,
    # yet the account (the more trusted source) must keep its email.
    cases = read_frame(
        warehouse,
        f"""
        with clean as ({CLEAN_CUSTOMERS})
        select clean.customer_id,
               first(lower(trim(accounts.email)) order by accounts.updated_at desc) as account_email,
               first(accounts.phone order by accounts.updated_at desc) as account_phone
        from clean
        join truth on truth.person_id = clean.person_id and truth.source = 'webshop_customer'
        join staging.stg_webshop__customers as accounts on accounts.customer_id = truth.record_id
        where exists (
            select 1 from truth as ticket_truth
            join staging.stg_helpdesk__tickets as tickets on tickets.ticket_id = ticket_truth.record_id
            where ticket_truth.person_id = clean.person_id and ticket_truth.source = 'helpdesk_ticket'
              and lower(trim(tickets.requester_email)) <> lower(trim(accounts.email))
              and tickets.created_at > accounts.updated_at)
        group by clean.customer_id
    """,
    )
    assert cases.height >= 5, "the demo data should plant work-email helpdesk contacts of account holders"
    got = cases.join(profile.select("customer_id", "email", "phone"), on="customer_id")
    assert got.get_column("email").to_list() == got.get_column("account_email").to_list()
    expected_phones = normalise_phones(got.get_column("account_phone"), "ID")
    assert got.get_column("phone").to_list() == expected_phones.to_list()


def test_guest_checkout_email_survives_over_helpdesk_email(warehouse, profile):
    # Without an account, the address typed at checkout outranks a (newer) helpdesk address.
    cases = read_frame(
        warehouse,
        f"""
        with clean as ({CLEAN_CUSTOMERS}),
        guest_emails as (
            select clean.customer_id, clean.person_id, max(orders.ordered_at) as last_guest_order_at,
                   min(lower(trim(orders.guest_email))) as guest_email
            from clean
            join truth on truth.person_id = clean.person_id and truth.source = 'webshop_order'
            join staging.stg_webshop__orders as orders on orders.order_id = truth.record_id
            where orders.guest_email is not null and lower(trim(orders.guest_email)) <> 'test@test.com'
            group by clean.customer_id, clean.person_id
            having count(distinct lower(trim(orders.guest_email))) = 1
        )
        select guest_emails.customer_id, guest_emails.guest_email
        from guest_emails
        where not exists (select 1 from truth where truth.person_id = guest_emails.person_id
                                               and truth.source = 'webshop_customer')
          and exists (
            select 1 from truth
            join staging.stg_helpdesk__tickets as tickets on tickets.ticket_id = truth.record_id
            where truth.person_id = guest_emails.person_id and truth.source = 'helpdesk_ticket'
              and lower(trim(tickets.requester_email)) <> guest_emails.guest_email
              and tickets.created_at > guest_emails.last_guest_order_at)
    """,
    )
    assert cases.height >= 1, "the demo data should plant a guest with a newer work-email ticket"
    got = cases.join(profile.select("customer_id", "email"), on="customer_id")
    assert got.get_column("email").to_list() == got.get_column("guest_email").to_list()


def _expected_traits(warehouse) -> pl.DataFrame:
    """Traits recomputed in polars straight from the staging tables and the identity map (records of no person, with
    a null customer id, belong to no profile; their purchases still count as referrals)."""
    every_record = read_frame(warehouse, "select source, record_id, customer_id from intermediate.int_identity_map")
    identity_map = every_record.drop_nulls("customer_id")

    def resolved(source: str, table: str, key: str) -> pl.DataFrame:
        """Staged records with their resolved customer in `owner`."""
        owners = identity_map.filter(pl.col("source") == source).select(
            pl.col("record_id").alias(key), owner="customer_id"
        )
        return read_frame(warehouse, f"select * from staging.{table}").join(owners, on=key, how="inner")

    orders = resolved("webshop_order", "stg_webshop__orders", "order_id")
    purchases = orders.filter(pl.col("status").is_in(PURCHASE_STATUSES))
    tickets = resolved("helpdesk_ticket", "stg_helpdesk__tickets", "ticket_id")
    surveys = resolved("survey_response", "stg_survey__responses", "response_id")
    accounts = resolved("webshop_customer", "stg_webshop__customers", "customer_id")
    codes = identity_map.filter(pl.col("source") == "webshop_customer").select(
        referral_code=pl.lit("REF-") + pl.col("record_id"), referrer="customer_id"
    )
    consent = (
        pl.concat(
            [
                accounts.select("owner", at="updated_at", consent="marketing_opt_in", rank=pl.lit(1)),
                surveys.select("owner", at="submitted_at", consent="consent", rank=pl.lit(4)),
            ]
        )
        .drop_nulls("consent")
        .sort("at", "rank", descending=[True, False])
        .group_by("owner")
        .first()
    )

    return (
        identity_map.select(owner="customer_id")
        .unique()
        .join(
            purchases.group_by("owner").agg(
                order_count=pl.len(), revenue=pl.col("net_amount").sum(), first_order_at=pl.col("ordered_at").min()
            ),
            on="owner",
            how="left",
        )
        .join(
            orders.filter(pl.col("status") == "refunded")
            .group_by("owner")
            .agg(refund_total=pl.col("net_amount").sum()),
            on="owner",
            how="left",
        )
        .join(
            tickets.group_by("owner").agg(
                ticket_count=pl.len(), open_ticket_count=pl.col("status").is_in(["new", "open", "pending"]).sum()
            ),
            on="owner",
            how="left",
        )
        .join(
            surveys.filter(pl.col("survey") == "nps")
            .sort("submitted_at", "response_id")
            .group_by("owner")
            .agg(latest_nps=pl.col("score").last()),
            on="owner",
            how="left",
        )
        .join(
            read_frame(warehouse, "select * from staging.stg_webshop__orders")
            .filter(pl.col("status").is_in(PURCHASE_STATUSES))
            .join(
                every_record.filter(pl.col("source") == "webshop_order").select(
                    order_id="record_id", owner="customer_id"
                ),
                on="order_id",
                how="left",
            )
            .join(codes, on="referral_code")
            .filter(pl.col("owner").ne_missing(pl.col("referrer")))
            .group_by("referrer")
            .agg(referral_count=pl.len()),
            left_on="owner",
            right_on="referrer",
            how="left",
        )
        .join(consent.select("owner", marketing_consent="consent"), on="owner", how="left")
        .rename({"owner": "customer_id"})
        .with_columns(
            pl.col("order_count", "ticket_count", "open_ticket_count", "referral_count").fill_null(0).cast(pl.Int64),
            pl.col("revenue", "refund_total").fill_null(0.0).cast(pl.Float64),
            pl.col("marketing_consent").fill_null(False),
        )
        .sort("customer_id")
    )


def test_traits_match_an_independent_recomputation_from_staging(warehouse, profile):
    expected = _expected_traits(warehouse)
    got = (
        profile.select(expected.columns)
        .sort("customer_id")
        .with_columns(
            pl.col("order_count", "ticket_count", "open_ticket_count", "referral_count").cast(pl.Int64),
            pl.col("revenue", "refund_total").cast(pl.Float64),
            pl.col("latest_nps").cast(expected.schema["latest_nps"]),
        )
    )
    assert_frame_equal(got, expected, check_exact=False, abs_tol=0.01)
    # The recomputation must exercise every trait, not just zeros.
    assert expected.get_column("referral_count").sum() > 0
    assert expected.get_column("refund_total").sum() > 0
    assert expected.get_column("latest_nps").drop_nulls().len() > 100


def test_prospects_are_profiled_with_zero_orders(warehouse, profile):
    prospects = read_frame(
        warehouse,
        f"""
        with clean as ({CLEAN_CUSTOMERS})
        select clean.customer_id from clean
        where not exists (select 1 from truth where truth.person_id = clean.person_id
                                               and truth.source = 'webshop_order')
    """,
    )
    assert prospects.height >= 20
    got = prospects.join(profile, on="customer_id")
    assert got.height == prospects.height
    assert got.get_column("order_count").to_list() == [0] * got.height
    assert got.get_column("revenue").to_list() == [0] * got.height
    assert got.get_column("first_order_at").null_count() == got.height
    assert got.get_column("last_activity_at").null_count() == 0


def test_revenue_reconciles_with_fct_orders_and_staging(warehouse, profile):
    fct_revenue, persons_revenue, staged_revenue = warehouse.execute(f"""
        select (select sum(net_amount) from marts.fct_orders where is_purchase),
               (select sum(net_amount) from marts.fct_orders where is_purchase and customer_id is not null),
               (select sum(net_amount) from staging.stg_webshop__orders where status in {tuple(PURCHASE_STATUSES)})
    """).fetchone()
    # Orders of no person (no customer, no contact) stay in fct_orders but belong to no profile.
    assert profile.get_column("revenue").sum() == pytest.approx(persons_revenue, abs=0.5)
    assert fct_revenue == pytest.approx(staged_revenue, abs=0.5)


def test_as_of_date_is_the_latest_event_and_contacts_are_normalised(profile):
    assert profile.get_column("as_of_date").unique().to_list() == [DEFAULT_END]
    assert (profile.get_column("days_since_last_activity") >= 0).all()
    assert profile.get_column("phone").drop_nulls().str.contains(r"^\+62\d{8,12}$").all()
    assert profile.get_column("email").drop_nulls().str.contains(r"^[^A-Z\s]+@[^A-Z\s]+$").all()
