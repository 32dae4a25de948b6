"""How dbt nodes appear in Dagster: asset keys `[schema, name]`, groups by dbt layer.

Sources map to the raw ingestion assets (`raw.webshop_orders` -> AssetKey(["raw", "webshop_orders"])), so the
lineage reads raw -> staging -> intermediate -> marts in the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


class CdpDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        # Source tests too: they guard the raw tables the ingest assets land.
        super().__init__(
            settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
        )

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or dbt_resource_props.get("schema")
        return dg.AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("config", {}).get("schema") or "dbt"
