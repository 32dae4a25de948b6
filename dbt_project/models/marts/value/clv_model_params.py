"""The CLV models fitted on this run's data: BG/NBD on every purchasing customer, Gamma-Gamma on the repeat ones.

The fit reads grouped histories: DuckDB counts the customers per distinct (frequency, recency, T), so the optimiser
sees thousands of rows at any number of customers. Nightly runs warm-start from the previous run's parameters (the
table as it stands before this run) and refit every night rather than on a schedule: the warm start converges to the
same optimum a cold fit finds, so a nightly run and a full build agree (tests/integration/test_nightly_marts.py) and
tonight's scores never use stale parameters, while the fit stays a few cheap iterations. A full build (no table yet,
or --full-refresh) fits from cold. Numeric work stays in Python (pipeline.lib.equity / pipeline.lib.clv); the
settings are the `clv` section of cdp.yaml, handed in by the Dagster run as a dbt var (config `clv_settings`, JSON).
"""

import json
from datetime import datetime

from pipeline.lib import equity


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="delete+insert", unique_key=["model", "param"])
    settings = json.loads(dbt.config.get("clv_settings"))
    period = settings["period"]
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    inputs = dbt.ref("int_clv_inputs")
    histories = inputs.aggregate(
        "frequency, recency_days, age_days, count(*) as customers", "frequency, recency_days, age_days"
    ).pl()
    # In customer order: the Gamma-Gamma sums then run in the same order on every run.
    spend = inputs.filter("frequency > 0").order("customer_id").project("frequency, monetary_value").pl()
    previous = (
        equity.fit_from_params_table(session.sql(f"select * from {dbt.this}").pl()) if dbt.is_incremental else None
    )
    fit = equity.fit_clv(equity.in_periods(histories, period), spend, period=period, start=previous)
    return equity.params_table(fit, datetime.now(), run_date).to_arrow()
