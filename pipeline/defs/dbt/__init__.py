"""Every dbt model as an asset and every dbt test as a check, built by two `dbt build` steps per run."""

import dagster as dg

from pipeline.defs.dbt.assets import dbt_customer_marts, dbt_models
from pipeline.defs.dbt.resources import dbt_resource

defs = dg.Definitions(assets=[dbt_models, dbt_customer_marts], resources={"dbt": dbt_resource})
