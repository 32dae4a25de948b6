"""The shop's calendar, optional sources, renamed keys and environment paths: what a wrong configuration is told."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from pipeline import settings as config


@pytest.fixture
def write_config(tmp_path, monkeypatch):
    """Write a configuration file and point CDP_CONFIG at it (one file per call: files are read once per path)."""
    written = []

    def write(document: dict) -> str:
        path = tmp_path / f"cdp-{len(written)}.yaml"
        path.write_text(yaml.safe_dump(document))
        written.append(path)
        monkeypatch.setenv("CDP_CONFIG", str(path))
        return str(path)

    return write


def test_calendar_of_a_us_shop(write_config):
    write_config(
        {
            "calendar": {
                "timezone": "America/New_York",
                "currency": "USD",
                "locale": "en_US",
                "partitions_start": "1997-01-01",
            }
        }
    )
    assert config.shop_calendar() == config.ShopCalendar("America/New_York", "USD", 2, "en_US", date(1997, 1, 1))


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ({"currency": "USD", "partitions_start": "1997-01-01"}, "calendar.timezone is not set"),
        ({"timezone": "New York", "currency": "USD", "partitions_start": "1997-01-01"}, "not an IANA time zone"),
        ({"timezone": "UTC", "currency": "usd", "partitions_start": "1997-01-01"}, "'usd' is not an ISO 4217 code"),
        ({"timezone": "UTC", "currency": "XYZ", "partitions_start": "1997-01-01"}, "'XYZ' is not an ISO 4217 code"),
        (
            {"timezone": "UTC", "currency": "JPY", "partitions_start": "1997-01-01", "locale": "xx_YY"},
            "not a known locale",
        ),
        ({"timezone": "UTC", "currency": "JPY", "partitions_start": "97-1-1"}, "is not a YYYY-MM-DD date"),
    ],
)
def test_a_wrong_calendar_names_its_key(write_config, calendar, message):
    path = write_config({"calendar": calendar})
    with pytest.raises(ValueError, match=message) as raised:
        config.shop_calendar()
    assert path in str(raised.value)


def test_minor_units_default_to_iso_and_can_be_set(write_config):
    write_config({"calendar": {"timezone": "Asia/Tokyo", "currency": "JPY", "partitions_start": "2020-01-01"}})
    assert config.shop_calendar().currency_minor_units == 0
    write_config(
        {
            "calendar": {
                "timezone": "UTC",
                "currency": "KWD",
                "partitions_start": "2020-01-01",
                "currency_minor_units": 7,
            }
        }
    )
    with pytest.raises(ValueError, match="currency_minor_units must be between 0 and 4"):
        config.shop_calendar()


def test_renamed_key_is_refused_with_the_new_name(write_config):
    write_config({"clv": {"cost_per_ticket_idr": 25000}})
    with pytest.raises(ValueError, match=r"clv.cost_per_ticket_idr was renamed; write it as clv.cost_per_ticket"):
        config.load_config()


def test_sources_off_when_absent_or_disabled(write_config):
    write_config(
        {
            "sources": {
                "webshop": {"kind": "sqlite", "location": "x.sqlite"},
                "helpdesk": {"enabled": False},
                "survey": None,
            }
        }
    )
    assert config.source_config("webshop") == {"kind": "sqlite", "location": "x.sqlite"}
    assert config.source_config("helpdesk") is None
    assert config.source_config("survey") is None
    assert config.source_config("crm") is None


def test_relative_paths_in_the_environment_are_refused_with_a_hint(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CDP_DATA_DIR", "shop-data")
    with pytest.raises(
        ValueError, match=rf'CDP_DATA_DIR=\'shop-data\' is a relative path.*export CDP_DATA_DIR="{tmp_path}/shop-data"'
    ):
        config.data_dir()
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "shop-data"))
    monkeypatch.setenv("CDP_WAREHOUSE", "w.duckdb")
    with pytest.raises(ValueError, match="CDP_WAREHOUSE='w.duckdb' is a relative path"):
        config.warehouse_path()
    monkeypatch.delenv("CDP_WAREHOUSE")
    assert config.warehouse_path() == tmp_path / "shop-data" / "warehouse.duckdb"


def test_cli_refuses_a_relative_dagster_home_before_starting(monkeypatch, tmp_path, capsys):
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", ".dagster")
    assert main(["summary"]) == 2
    assert (
        "DAGSTER_HOME='.dagster' is a relative path; set an absolute one, "
        f'e.g. export DAGSTER_HOME="{tmp_path}/.dagster"' in capsys.readouterr().err
    )


def test_doctor_quotes_codes_and_only_the_shape_of_anything_else():
    import duckdb

    from pipeline.lib import doctor
    from pipeline.lib.sources import registry

    con = duckdb.connect()
    con.execute("set TimeZone = 'America/New_York'")
    con.execute(
        "create table delivered as select * from (values ('O1', 'lost_in_transit', 'CAD', '2024-01-02T23:30:00-05:00'),"
        " ('O2', 'jane.doe@example.com', 'USD', '2024-01-03'), ('O3', 'paid', 'usd', '2024-01-03 08:00:00')) "
        "as t(order_id, status, currency, updated_at)"
    )
    found = doctor.inspect(
        con,
        registry.table("webshop_orders"),
        "delivered",
        currency="USD",
        phone_region="US",
        declared=["order_id", "status", "currency", "updated_at"],
    )
    assert found.unexpected == {"currency": {"CAD": 1}, "status": {"lost_in_transit": 1, "xxxx.xxx@xxxxxxx.xxx": 1}}
    assert (found.first_date.isoformat(), found.last_date.isoformat()) == ("2024-01-02", "2024-01-03")
    assert found.missing_required == ["customer_id", "ordered_at", "channel", "net_amount"]
    assert not found.ok
