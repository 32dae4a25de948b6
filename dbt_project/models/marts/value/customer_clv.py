"""Per profile customer: P(alive), expected purchases, expected order value, discounted margin CLV, expected cost
to serve and net CLV, scored with this run's fitted parameters (clv_model_params).

Every customer is scored on every run: T grows every night, so every score moves. The scoring is vectorised (the
costly hypergeometric terms once per distinct (frequency, T), for every window and month at once) on the histories
dbt computed set-wise (int_clv_inputs); the join to the profile stays in DuckDB. Numeric work stays in Python
(pipeline.lib.equity / pipeline.lib.clv); the settings are the `clv` and `equity` sections of cdp.yaml, handed in by
the Dagster run as dbt vars (configs `clv_settings`, `equity_settings`, JSON).
"""

import json

from pipeline.lib import equity


def model(dbt, session):
    dbt.config(materialized="table")
    settings = json.loads(dbt.config.get("clv_settings"))
    equity_settings = json.loads(dbt.config.get("equity_settings"))
    inputs = equity.in_periods(dbt.ref("int_clv_inputs").pl(), settings["period"])
    scored = equity.score_clv(
        inputs,
        equity.fit_from_params_table(dbt.ref("clv_model_params").pl()),
        horizon_months=settings["horizon_months"],
        monthly_discount_rate=settings["monthly_discount_rate"],
        cost_per_ticket=settings["cost_per_ticket"],
        windows_days=equity_settings["expected_purchase_days"],
    )
    return equity.customer_clv_relation(
        dbt.ref("customer_profile"), dbt.ref("int_run_date"), session.from_arrow(scored.to_arrow())
    )
