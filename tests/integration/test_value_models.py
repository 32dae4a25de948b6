"""The value models (dbt_project/models/marts/value: CLV fit and scores as dbt Python models, customer value and
equity as SQL) materialized by Dagster against a real DuckDB file holding synthetic marts.

Purchase histories are drawn from the BG/NBD process itself (clv.sample_bgnbd), so a correct fit must converge and
its predictions can be compared with the purchases the same process makes in the following 90 days.
"""

import shutil
from datetime import date, datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from pipeline.defs.dbt.assets import dbt_customer_marts, dbt_models
from pipeline.defs.dbt.resources import dbt_resource
from pipeline.defs.quality.clv import CLV_CHECKS, clv_backtest_ran
from pipeline.defs.resources import resources_for
from pipeline.lib import clv, equity
from pipeline.settings import load_settings
from tests.support.dbt_cli import plant_tables

AS_OF = date(2026, 6, 30)
TRUE_BGNBD = {"r": 0.6, "alpha": 40.0, "a": 0.7, "b": 2.5}  # alpha in days
# Gamma-Gamma: orders ~ Gamma(p, rate v) with v ~ Gamma(q, rate gamma) per customer; mean order 60,000 IDR.
TRUE_GAMMA_GAMMA = {"p": 4.0, "q": 3.0, "gamma": 30_000.0}
N_BUYERS = 1500
PROSPECTS = ["P0001", "P0002", "P0003"]
# Two customers with the same purchases; NEEDY also opened many helpdesk tickets.
QUIET, NEEDY, NEEDY_TICKETS = "TWIN_QUIET", "TWIN_NEEDY", 30
SEGMENT_NAMES = np.array(["loyal", "new", "occasional", "lapsed"])
CHANNELS = np.array(["web", "app", "marketplace", "store"])
COST_PER_TICKET = load_settings().section("clv")["cost_per_ticket"]
EQUITY_DIMENSIONS = ("overall", "segment", "acquisition_cohort", "channel", "customer_type")
VALUE_MODELS = [
    ["intermediate", "int_purchases"],
    ["intermediate", "int_customer_margins"],
    ["intermediate", "int_clv_inputs"],
    *(
        ["marts", name]
        for name in (
            "clv_model_params",
            "customer_clv",
            "clv_backtest",
            "customer_value",
            "customer_equity",
            "customer_equity_history",
        )
    ),
]


def _purchase_days(frequency, recency, T, rng) -> pl.DataFrame:
    """customer index and purchase day offset before AS_OF for a first purchase at T, the last repeat at recency
    and the other repeats uniformly in between (same-day draws merge, as real same-day orders do)."""
    first = np.round(T).astype(np.int64)
    last = first - np.maximum(np.round(recency).astype(np.int64), np.where(frequency > 0, 1, 0))
    customer = np.arange(len(T))
    middle = np.repeat(customer, np.maximum(frequency - 1, 0))
    middle_days = first[middle] - rng.integers(1, np.maximum(first[middle] - last[middle], 2))
    repeat = frequency > 0
    return pl.DataFrame(
        {
            "customer": np.concatenate([customer, customer[repeat], middle]),
            "days_before": np.concatenate([first, last[repeat], np.maximum(middle_days, last[middle])]),
        }
    )


def make_marts(n_buyers: int, rng: np.random.Generator, *, one_purchase_each: bool = False):
    """(fct_orders, customer_profile, customer_segments, fct_tickets, simulated purchases in the next 90 days)."""
    T = rng.uniform(60, 720, n_buyers)
    sample = clv.sample_bgnbd(n_buyers, T=T, rng=rng, holdout=90.0, **TRUE_BGNBD)
    frequency = np.zeros(n_buyers, dtype=np.int64) if one_purchase_each else sample["frequency"]
    days = _purchase_days(frequency, sample["recency"], T, rng)
    ids = np.array([f"C{i:05d}" for i in range(n_buyers)])
    n = days.height
    spend_rate = rng.gamma(TRUE_GAMMA_GAMMA["q"], 1.0 / TRUE_GAMMA_GAMMA["gamma"], n_buyers)
    goods = np.round(rng.gamma(TRUE_GAMMA_GAMMA["p"], 1.0 / spend_rate[days["customer"].to_numpy()]), -2)
    shipping = rng.choice([0.0, 10_000.0], n)
    orders = pl.DataFrame(
        {
            "order_id": [f"O{i:06d}" for i in range(n)],
            "customer_id": ids[days["customer"].to_numpy()],
            "order_date": [AS_OF - timedelta(days=int(d)) for d in days["days_before"]],
            "channel": rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.15, 0.05]),
            "net_amount": goods + shipping,
            "shipping_amount": shipping,
            # 80% of orders have item costs at 60% of the goods value
            "cost_amount": np.where(rng.random(n) < 0.8, goods * 0.6, np.nan),
            "status": "completed",
            "is_purchase": True,
        }
    ).with_columns(
        pl.col("cost_amount").fill_nan(None),
        ordered_at=pl.col("order_date").cast(pl.Datetime("us")) + pl.duration(hours=10),
    )
    # The twins: copies of the first repeat buyer's purchases.
    template = orders.filter(pl.col("customer_id") == ids[np.argmax(frequency > 1)])
    orders = pl.concat(
        [
            orders,
            *(template.with_columns(customer_id=pl.lit(t), order_id=pl.col("order_id") + t) for t in (QUIET, NEEDY)),
        ]
    )
    # A cancelled order is no purchase and must not count anywhere.
    orders = pl.concat(
        [
            orders,
            orders.head(1).with_columns(
                order_id=pl.lit("CANCELLED"), is_purchase=False, status=pl.lit("cancelled"), net_amount=9e9
            ),
        ]
    )
    purchases = orders.filter("is_purchase")
    per_customer = purchases.group_by("customer_id").agg(
        first_order_at=pl.col("ordered_at").min(), order_count=pl.len(), revenue=pl.col("net_amount").sum()
    )
    all_ids = pl.DataFrame({"customer_id": [*ids, QUIET, NEEDY, *PROSPECTS]})
    tickets = pl.DataFrame(
        {
            "ticket_id": [f"T{i}" for i in range(NEEDY_TICKETS + 2)],
            "customer_id": [NEEDY] * NEEDY_TICKETS + [PROSPECTS[0], ids[0]],
            "created_at": [datetime(2026, 6, 1, 9)] * NEEDY_TICKETS
            + [datetime(2026, 5, 1, 9), datetime(2024, 1, 1, 9)],
        }
    )
    ticket_count = tickets.group_by("customer_id").agg(ticket_count=pl.len())
    profile = (
        all_ids.join(per_customer, on="customer_id", how="left")
        .join(ticket_count, on="customer_id", how="left")
        .with_columns(
            pl.col("order_count", "ticket_count").fill_null(0),
            pl.col("revenue").fill_null(0.0),
            customer_type=pl.when(pl.col("customer_id").str.ends_with("7"))
            .then(pl.lit("reseller"))
            .otherwise(pl.lit("end_customer")),
            as_of_date=pl.lit(AS_OF),
        )
    )
    segments = all_ids.with_columns(primary_segment=pl.Series(rng.choice(SEGMENT_NAMES, all_ids.height)))
    holdout = int(sample["frequency_holdout"].sum())
    return orders, profile, segments, tickets, holdout


def write_marts(path, orders, profile, segments, tickets, run_date: date = AS_OF) -> None:
    """The tables the value models read, and the run date they measure against."""
    tables = {
        "marts.fct_orders": orders.with_columns(_invocation_id=pl.lit("planted")),  # the dbt build that wrote a row
        "marts.customer_profile": profile,
        "marts.customer_segments": segments,
        "marts.fct_tickets": tickets,
        "intermediate.int_run_date": pl.DataFrame({"run_date": [run_date]}),
        # The customers of the profile, all touched by the same load (int_customer_margins recomputes those).
        "intermediate.int_customer_traits": profile.select("customer_id").with_columns(
            _loaded_through=pl.lit(datetime(2026, 1, 1))
        ),
    }
    plant_tables(path, tables)


def materialize(keys, instance, warehouse) -> dg.ExecuteInProcessResult:
    """Build the given dbt models (and their dbt tests and the CLV check) through Dagster."""
    return dg.materialize(
        [dbt_models, dbt_customer_marts, *CLV_CHECKS],
        instance=instance,
        resources={**resources_for(warehouse_file=warehouse), "dbt": dbt_resource},
        selection=dg.AssetSelection.keys(*keys),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def marts():
    return make_marts(N_BUYERS, np.random.default_rng(11))


@pytest.fixture(scope="module")
def materialized(marts, tmp_path_factory):
    """One materialization of every CLV asset and check on the synthetic warehouse."""
    warehouse = tmp_path_factory.mktemp("clv") / "warehouse.duckdb"
    write_marts(warehouse, *marts[:4])
    instance = dg.DagsterInstance.ephemeral()
    return warehouse, instance, materialize(VALUE_MODELS, instance, warehouse)


def _table(warehouse, sql) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).pl()


def _clv_check(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "clv_fit_healthy"]
    return evaluation


def test_fit_converges_and_the_check_passes(materialized):
    warehouse, _, result = materialized
    assert result.success
    evaluation = _clv_check(result)
    assert evaluation.passed, evaluation.metadata["problems"].value
    params = _table(warehouse, "select * from marts.clv_model_params")
    assert set(params["model"]) == {"bgnbd", "gamma_gamma"}
    assert params["converged"].all()
    fit = equity.fit_from_params_table(params)
    # The simulated population's parameters are recovered roughly (1500 customers, day-rounded histories).
    assert fit.bgnbd.r == pytest.approx(TRUE_BGNBD["r"], rel=0.35)
    assert fit.bgnbd.alpha == pytest.approx(TRUE_BGNBD["alpha"], rel=0.4)
    assert fit.gamma_gamma_usable
    scored = _table(warehouse, "select count(*) as n from marts.customer_clv where has_purchase")
    assert scored["n"].item() == N_BUYERS + 2


def test_predictions_are_sensible(materialized, marts):
    warehouse, _, _ = materialized
    scores = _table(warehouse, "select * from marts.customer_clv")
    assert scores.height == marts[1].height  # every profile customer
    buyers = scores.filter("has_purchase")
    assert buyers["p_alive"].is_between(0, 1).all()
    assert (buyers["expected_purchases_30d"] <= buyers["expected_purchases_90d"]).all()
    assert (buyers["expected_purchases_90d"] <= buyers["expected_purchases_365d"]).all()
    assert (buyers["clv"] > 0).all() and (buyers["expected_order_value"] > 0).all()
    # The next 90 days of the same simulated process: the total is predicted within 20%.
    assert buyers["expected_purchases_90d"].sum() == pytest.approx(marts[4], rel=0.2)
    # Among frequent buyers, those who stopped long ago are less likely alive than those who bought lately.
    frequent = buyers.filter(pl.col("frequency") >= 3).with_columns(gap=pl.col("T") - pl.col("recency"))
    recent = frequent.filter(pl.col("gap") < 30)["p_alive"].mean()
    gone = frequent.filter(pl.col("gap") > 300)["p_alive"].mean()
    assert recent > 0.8 and gone < 0.4
    prospects = scores.filter(pl.col("customer_id").is_in(PROSPECTS))
    assert prospects["clv"].to_list() == [0.0] * 3 and prospects["net_clv"].to_list() == [0.0] * 3
    assert prospects["p_alive"].is_null().all()


def test_heavy_support_user_is_worth_less(materialized):
    warehouse, _, _ = materialized
    scores = _table(warehouse, f"select * from marts.customer_clv where customer_id in ('{QUIET}', '{NEEDY}')")
    quiet, needy = (scores.filter(pl.col("customer_id") == c).row(0, named=True) for c in (QUIET, NEEDY))
    assert needy["clv"] == pytest.approx(quiet["clv"])
    assert needy["expected_cost_to_serve"] > 0 == quiet["expected_cost_to_serve"]
    assert needy["net_clv"] < quiet["net_clv"] == pytest.approx(quiet["clv"])
    values = _table(warehouse, f"select * from marts.customer_value where customer_id in ('{QUIET}', '{NEEDY}')")
    quiet_v, needy_v = (values.filter(pl.col("customer_id") == c).row(0, named=True) for c in (QUIET, NEEDY))
    charged = NEEDY_TICKETS * COST_PER_TICKET
    assert quiet_v["net_value_to_date"] - needy_v["net_value_to_date"] == pytest.approx(charged)
    # The tickets are from June 2026, inside the current year.
    assert quiet_v["current_value"] - needy_v["current_value"] == pytest.approx(charged)


def test_equity_rollups_add_up(materialized, marts):
    warehouse, _, _ = materialized
    orders, profile = marts[0], marts[1]
    values = _table(warehouse, "select * from marts.customer_value")
    assert values.height == profile.height
    assert (values["lifetime_value"] - values["net_value_to_date"] - values["future_value"]).abs().max() < 1e-6
    purchases = orders.filter("is_purchase")
    assert values["revenue_to_date"].sum() == pytest.approx(purchases["net_amount"].sum())
    assert values["current_revenue"].sum() == pytest.approx(
        purchases.filter(pl.col("order_date") > AS_OF - timedelta(days=365))["net_amount"].sum()
    )

    rollup = _table(warehouse, "select * from marts.customer_equity")
    assert set(rollup["dimension"]) == set(EQUITY_DIMENSIONS)
    overall = rollup.filter(pl.col("dimension") == "overall").row(0, named=True)
    assert overall["customers"] == profile.height
    measures = ["customers", "current_value", "future_value", "lifetime_value"]
    for dimension, totals in rollup.group_by("dimension").agg(pl.col(measures).sum()).rows_by_key("dimension").items():
        assert totals[0] == pytest.approx([overall[m] for m in measures]), dimension
    segments = rollup.filter(pl.col("dimension") == "segment")
    assert set(segments["dimension_value"]) == set(SEGMENT_NAMES)
    cohorts = rollup.filter(pl.col("dimension") == "acquisition_cohort")["dimension_value"].to_list()
    assert "no_purchase" in cohorts and "2026-Q2" in cohorts
    channels = rollup.filter(pl.col("dimension") == "channel").sort("customers", descending=True)
    assert channels["dimension_value"][0] == "web"


def test_backtest_compares_predicted_and_actual_holdout_purchases(materialized, marts):
    warehouse, _, _ = materialized
    backtest = _table(warehouse, "select * from marts.clv_backtest")
    total = backtest.filter(pl.col("grouping") == "total").row(0, named=True)
    orders = marts[0].filter("is_purchase")
    settings = load_settings().section("clv")["backtest"]
    as_of = equity.backtest_as_of(AS_OF, settings["every_days"])
    assert total["as_of_date"] == as_of
    holdout_start = as_of - timedelta(days=settings["holdout_days"])
    actual = (
        orders.filter(pl.col("order_date").is_between(holdout_start, as_of, closed="right"))
        .join(orders.filter(pl.col("order_date") <= holdout_start).select("customer_id").unique(), on="customer_id")
        .select("customer_id", "order_date")
        .n_unique()
    )
    assert total["actual_purchases"] == actual
    assert abs(total["relative_error"]) < 0.25
    for grouping in ("frequency", "decile"):
        part = backtest.filter(pl.col("grouping") == grouping)
        assert part["customers"].sum() == total["customers"]
        assert part["actual_purchases"].sum() == pytest.approx(total["actual_purchases"])
    deciles = backtest.filter(pl.col("grouping") == "decile")
    assert deciles["bucket"].to_list() == [str(d) for d in range(1, 11)]
    # Higher predicted deciles do buy more.
    assert deciles["actual_purchases"][-1] > 5 * deciles["actual_purchases"][0]
    buckets = backtest.filter(pl.col("grouping") == "frequency")["bucket"].to_list()
    assert buckets[-1] == f"{equity.BACKTEST_MAX_FREQUENCY}+"


def test_backtest_is_computed_once_per_schedule_date(materialized, tmp_path):
    """Runs between two schedule dates keep the stored backtest; the first run on or after the next one computes it,
    and the check warns when the stored backtest is not the one of the run's schedule date."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(materialized[0], warehouse)
    instance = dg.DagsterInstance.ephemeral()
    every_days = load_settings().section("clv")["backtest"]["every_days"]
    as_of = equity.backtest_as_of(AS_OF, every_days)
    backtest_sql = "select as_of_date, mean_absolute_error from marts.clv_backtest where grouping = 'total'"
    # A mark only a recomputation removes.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.clv_backtest set mean_absolute_error = -1")
    runs = {}
    for run_date in (as_of + timedelta(days=every_days - 1), as_of + timedelta(days=every_days)):
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update intermediate.int_run_date set run_date = ?", [run_date])
        result = materialize([["marts", "clv_backtest"]], instance, warehouse)
        assert result.success
        (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "clv_backtest_ran"]
        runs[run_date] = _table(warehouse, backtest_sql).row(0), check.passed
    kept, recomputed = runs.values()
    assert kept == ((as_of, -1.0), True)
    assert recomputed[0][0] == as_of + timedelta(days=every_days) and recomputed[0][1] >= 0 and recomputed[1]

    # A backtest that is not the one of the run's schedule date (here: planted stale) makes the check warn.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.clv_backtest set as_of_date = as_of_date - 1")
    resources = resources_for(warehouse_file=warehouse)
    check = clv_backtest_ran(settings=resources["settings"], warehouse=resources["warehouse"])
    assert not check.passed and check.metadata["reason"].value.startswith("stale")


def test_equity_history_keeps_one_snapshot_per_run_date(materialized):
    warehouse, instance, _ = materialized
    history_sql = (
        "select snapshot_date, count(*) as n, sum(lifetime_value) as v from marts.customer_equity_history "
        "where dimension = 'overall' group by all order by 1"
    )
    first = _table(warehouse, history_sql)
    assert first["snapshot_date"].to_list() == [AS_OF]
    equity_models = [["marts", "customer_equity"], ["marts", "customer_equity_history"]]
    assert materialize(equity_models, instance, warehouse).success
    assert _table(warehouse, history_sql).equals(first)

    # A week later (same orders): a second snapshot; the first one is kept as it was.
    later = AS_OF + timedelta(days=7)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update intermediate.int_run_date set run_date = ?", [later])
    assert materialize(VALUE_MODELS, instance, warehouse).success
    history = _table(warehouse, history_sql)
    assert history["snapshot_date"].to_list() == [AS_OF, later]
    assert history.row(0) == first.row(0)
    rows = _table(warehouse, "select snapshot_date, count(*) from marts.customer_equity_history group by 1 order by 1")
    assert rows["count_star()"].n_unique() == 1


def test_check_fails_when_nobody_buys_twice(tmp_path):
    orders, profile, segments, tickets, _ = make_marts(300, np.random.default_rng(3), one_purchase_each=True)
    warehouse = tmp_path / "warehouse.duckdb"
    write_marts(warehouse, orders, profile, segments, tickets)
    result = materialize(VALUE_MODELS[:5], dg.DagsterInstance.ephemeral(), warehouse)
    assert result.success  # the models are written; the (non-blocking) check reports the problem
    evaluation = _clv_check(result)
    assert not evaluation.passed
    problems = evaluation.metadata["problems"].value
    assert "Gamma-Gamma could not be fitted" in problems and "BG/NBD:" in problems
    assert evaluation.metadata["problem_count"].value >= 2
    scores = _table(warehouse, "select * from marts.customer_clv where has_purchase")
    assert not scores["clv"].is_nan().any()
    # Without a Gamma-Gamma fit the order value is each customer's own mean purchase.
    assert (scores["expected_order_value"] - scores["mean_purchase_value"]).abs().max() < 1e-6
