"""The CLV models fitted on this run's data: BG/NBD on every purchasing customer, Gamma-Gamma on the repeat ones.

Numeric work stays in Python (pipeline.lib.equity / pipeline.lib.clv); the settings are the `clv` section of
cdp.yaml, handed in by the Dagster run as a dbt var (config `clv_settings`, JSON).
"""

import json
from datetime import datetime

from pipeline.lib import equity


def model(dbt, session):
    dbt.config(materialized="table")
    settings = json.loads(dbt.config.get("clv_settings"))
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    inputs = equity.clv_inputs(
        dbt.ref("int_purchases").pl(),
        dbt.ref("int_customer_margins").pl(),
        dbt.ref("customer_profile").pl(),
        run_date,
        period=settings["period"],
    )
    fit = equity.fit_clv(inputs, period=settings["period"])
    return equity.params_table(fit, datetime.now(), run_date).to_arrow()
