"""The customer-base report asset: reads the CLV / segment / equity marts and writes one static HTML page.

pipeline.lib.report (matplotlib, babel, jinja2) is imported when the report is built, not when the code location
loads: every process that loads the definitions (UI, daemon, sensors, a one-asset run) would pay for it otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.lib.warehouse import read_frame
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.lib.report import CustomerBaseInputs, ReportStyle


def read_report_inputs(con: duckdb.DuckDBPyConnection, settings: Settings) -> CustomerBaseInputs:
    """Every warehouse read of the report, renamed to the report's columns (align mart names here only)."""
    from pipeline.lib.report import CustomerBaseInputs

    segments = read_frame(
        con,
        """
        select s.primary_segment as segment, count(*) as customers, coalesce(sum(p.revenue), 0) as revenue
        from marts.customer_segments s left join marts.customer_profile p using (customer_id)
        group by s.primary_segment""",
    )
    clv = read_frame(con, "select clv from marts.customer_clv where clv is not null")
    equity = read_frame(
        con,
        """
        select dimension_value as segment, current_value, future_value, lifetime_value
        from marts.customer_equity where dimension = 'segment'""",
    )
    equity_history = read_frame(
        con,
        """
        select snapshot_date, sum(lifetime_value) as lifetime_value, sum(future_value) as future_value
        from marts.customer_equity_history where dimension = 'segment'
        group by snapshot_date""",
    )
    revenue = read_frame(con, "select coalesce(revenue, 0) as revenue from marts.customer_profile")
    as_of = con.execute("select max(as_of_date) from marts.customer_profile").fetchone()[0]
    return CustomerBaseInputs(
        segments,
        clv,
        equity,
        equity_history,
        revenue,
        as_of,
        current_period_days=int(settings.equity.get("current_period_days", 365)),
        horizon_months=int(settings.clv.get("horizon_months", 12)),
    )


def report_style(settings: Settings) -> ReportStyle:
    """Language from `report.language`; money in the shop's currency (`calendar:`), numbers in its locale."""
    from pipeline.lib.report import ReportStyle

    calendar = settings.shop_calendar()
    return ReportStyle(
        language=str(settings.report.get("language", "en")),
        currency=calendar.currency,
        minor_units=calendar.currency_minor_units,
        locale=calendar.locale,
    )


@dg.asset(
    key=["reports", "customer_base_report"],
    kinds={"python", "html"},
    deps=[
        dg.AssetKey(["marts", "customer_segments"]),
        dg.AssetKey(["marts", "customer_clv"]),
        dg.AssetKey(["marts", "customer_equity"]),
        dg.AssetKey(["marts", "customer_equity_history"]),
        dg.AssetKey(["marts", "customer_profile"]),
    ],
    description="Static HTML page of the customer base: segments, CLV, customer equity, revenue concentration.",
)
def customer_base_report(settings: SettingsResource, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from pipeline.lib.report import render_customer_base_report

    cdp = settings.get()
    with warehouse.connect(read_only=True) as con:
        inputs = read_report_inputs(con, cdp)
    style = report_style(cdp)
    html = render_customer_base_report(inputs, style)
    path = cdp.data_dir / "reports" / "customer_base_report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write aside and rename, so a browser open on the page never loads half of it.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "url": dg.MetadataValue.url(path.resolve().as_uri()),
            "as_of": dg.MetadataValue.text(inputs.as_of.isoformat() if inputs.as_of else "unknown"),
            "language": dg.MetadataValue.text(style.language),
            "customers": dg.MetadataValue.int(int(inputs.segments["customers"].sum())),
            "segments": dg.MetadataValue.int(inputs.segments.height),
            "clv_customers": dg.MetadataValue.int(inputs.clv.height),
            "equity_snapshots": dg.MetadataValue.int(inputs.equity_history.height),
            "size_bytes": dg.MetadataValue.int(len(html.encode("utf-8"))),
        }
    )
