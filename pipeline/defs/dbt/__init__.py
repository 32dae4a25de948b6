"""Every dbt model as an asset and every dbt test as a check, built by one `dbt build` per run."""

import dagster as dg

from pipeline.defs.dbt.assets import dbt_models
from pipeline.defs.dbt.resources import dbt_resource

defs = dg.Definitions(assets=[dbt_models], resources={"dbt": dbt_resource})
