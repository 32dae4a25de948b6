"""The pipeline's configuration: one YAML file (`pipeline/config/cdp.yaml`) plus environment variables.

`CDP_CONFIG` points at another YAML file; `CDP_DATA_DIR` and `CDP_WAREHOUSE` override storage paths. Paths in the
file are relative to the repository root; paths in environment variables must be absolute, because several processes
with different working directories (CLI, Dagster code server, daemon, dbt) read them.
Values written as `env:NAME` are resolved from the environment at read time, so secrets stay out of files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "pipeline" / "config" / "cdp.yaml"


# Keys that were renamed: (section, old key) -> new key. A file still using the old name is refused with the new one.
RENAMED_KEYS = {("clv", "cost_per_ticket_idr"): "clv.cost_per_ticket (in calendar.currency)"}


@lru_cache(maxsize=4)
def _read_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        parsed = yaml.safe_load(fh) or {}
    for (name, old), new in RENAMED_KEYS.items():
        if old in (parsed.get(name) or {}):
            raise ValueError(f"{path}: {name}.{old} was renamed; write it as {new}")
    return parsed


def config_path() -> str:
    return os.environ.get("CDP_CONFIG", str(DEFAULT_CONFIG))


def load_config() -> dict[str, Any]:
    """The parsed configuration file (cached per path; treat as read-only)."""
    return _read_yaml(config_path())


def section(name: str) -> dict[str, Any]:
    """One top-level section of the configuration, `{}` when absent."""
    return load_config().get(name) or {}


def resolve_secret(value: Any) -> Any:
    """Turn `env:NAME` into the value of environment variable NAME (error if unset)."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise KeyError(f"environment variable {name} is not set (needed by the source configuration)")
        return os.environ[name]
    return value


def _repo_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def env_path(name: str) -> Path | None:
    """An absolute path from environment variable `name`, None when unset; a relative one is refused with a hint."""
    value = os.environ.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ValueError(
            f'{name}={value!r} is a relative path; set an absolute one, e.g. export {name}="{Path.cwd() / path}"'
        )
    return path


def data_dir() -> Path:
    return env_path("CDP_DATA_DIR") or _repo_path(section("storage").get("data_dir", "data"))


def warehouse_path() -> Path:
    """The DuckDB warehouse file; by default `warehouse.duckdb` inside the data directory."""
    explicit = env_path("CDP_WAREHOUSE")
    if explicit:
        return explicit
    if env_path("CDP_DATA_DIR"):
        return data_dir() / "warehouse.duckdb"
    return _repo_path(section("storage").get("warehouse", "data/warehouse.duckdb"))


@dataclass(frozen=True)
class ShopCalendar:
    """Where and in what money the shop trades (`calendar:` in cdp.yaml), validated once.

    timezone: naive source timestamps are read in it and business days are cut at its midnight.
    currency / currency_minor_units: ISO 4217 code of the shop's money and its decimals (orders in another
    currency are quarantined). locale: how people read numbers and money (report). partitions_start: the first
    day the pipeline loads.
    """

    timezone: str
    currency: str
    currency_minor_units: int
    locale: str
    partitions_start: date


def shop_calendar() -> ShopCalendar:
    """The validated `calendar:` section; a missing or invalid key raises an error naming it."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from babel import Locale, UnknownLocaleError
    from babel.numbers import get_currency_precision, is_currency

    cfg = section("calendar")
    missing = [key for key in ("timezone", "currency", "partitions_start") if not cfg.get(key)]
    if missing:
        raise ValueError(
            f"{config_path()}: calendar.{missing[0]} is not set (e.g. timezone: America/New_York, "
            'currency: USD, partitions_start: "2024-01-01")'
        )
    timezone, currency = str(cfg["timezone"]), str(cfg["currency"])
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{config_path()}: calendar.timezone {timezone!r} is not an IANA time zone "
            "(e.g. America/New_York, Europe/Berlin)"
        ) from None
    if not re.fullmatch(r"[A-Z]{3}", currency) or not is_currency(currency):
        raise ValueError(f"{config_path()}: calendar.currency {currency!r} is not an ISO 4217 code (e.g. USD, EUR)")
    minor_units = int(cfg.get("currency_minor_units", get_currency_precision(currency)))
    if not 0 <= minor_units <= 4:
        raise ValueError(f"{config_path()}: calendar.currency_minor_units must be between 0 and 4, not {minor_units}")
    locale = str(cfg.get("locale", "en"))
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        raise ValueError(
            f"{config_path()}: calendar.locale {locale!r} is not a known locale (e.g. en_US, de_DE)"
        ) from None
    try:
        start = date.fromisoformat(str(cfg["partitions_start"]))
    except ValueError:
        raise ValueError(
            f"{config_path()}: calendar.partitions_start {cfg['partitions_start']!r} is not a YYYY-MM-DD date"
        ) from None
    return ShopCalendar(timezone, currency, minor_units, locale, start)


def source_config(name: str) -> dict[str, Any] | None:
    """`sources.<name>`, or None when the shop does not have that source (absent, empty, or `enabled: false`)."""
    cfg = section("sources").get(name)
    if not cfg or cfg.get("enabled", True) is False:
        return None
    return dict(cfg)
