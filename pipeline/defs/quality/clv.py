"""Asset checks on the CLV models: the stored parameters (marts.clv_model_params) must come from a converged,
non-degenerate fit, or the scores in marts.customer_clv are not to be trusted; a backtest skipped for lack of history,
or not the one of the run's schedule date, is reported as a warning."""

import dagster as dg

from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.lib import equity
from pipeline.lib.warehouse import read_frame


@dg.asset_check(
    asset=dg.AssetKey(["marts", "customer_clv"]),
    name="clv_fit_healthy",
    # Not blocking: a doubtful fit is reported (and visible in the UI) without holding back segments and equity,
    # which still show the history part of customer value.
    blocking=False,
    pool="warehouse",
    description="BG/NBD and Gamma-Gamma converged, with no parameter on a bound or outside the usable range.",
)
def clv_fit_healthy(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        table = read_frame(con, "select * from marts.clv_model_params")
    fit = equity.fit_from_params_table(table)
    problems = fit.problems()
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            "problem_count": len(problems),
            **{f"bgnbd_{name}": getattr(fit.bgnbd, name) for name in ("r", "alpha", "a", "b")},
            **{f"gamma_gamma_{name}": getattr(fit.gamma_gamma, name) for name in ("p", "q", "gamma")},
            "bgnbd_converged": fit.bgnbd.converged,
            "gamma_gamma_converged": fit.gamma_gamma.converged,
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["marts", "clv_backtest"]),
    name="clv_backtest_ran",
    blocking=False,
    description="The backtest is the one of the run's schedule date (clv.backtest.every_days) and had history to "
    "calibrate on (it is skipped when the history is shorter than clv.backtest.holdout_days).",
)
def clv_backtest_ran(settings: SettingsResource, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    every_days = settings.get().clv["backtest"]["every_days"]
    with warehouse.connect(read_only=True) as con:
        # A skipped backtest still writes its total row, with 0 customers calibrated.
        as_of, rows = con.execute(
            "select max(as_of_date), coalesce(sum(customers), 0) from marts.clv_backtest where grouping = 'total'"
        ).fetchone()
        run_date = con.execute("select run_date from intermediate.int_run_date").fetchone()[0]
    due = equity.backtest_as_of(run_date, every_days)
    if as_of != due:
        reason = f"stale: measured as of {as_of}, the schedule date of run date {run_date} is {due}"
    else:
        reason = "ran" if rows else "skipped: the history is shorter than the backtest holdout"
    return dg.AssetCheckResult(
        passed=as_of == due and rows > 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"reason": reason, "as_of_date": str(as_of), "run_date": str(run_date)},
    )


CLV_CHECKS = [clv_fit_healthy, clv_backtest_ran]
