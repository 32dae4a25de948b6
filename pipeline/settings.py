"""The pipeline's settings: one YAML file (`pipeline/config/cdp.yaml`) plus environment variables, validated once.

`CDP_CONFIG` points at another YAML file; `CDP_DATA_DIR` and `CDP_WAREHOUSE` override storage paths. Paths in the
file are relative to the repository root; paths in environment variables must be absolute, because several processes
with different working directories (CLI, Dagster code server, daemon, dbt) read them.
Values written as `env:NAME` are resolved from the environment where they are used, so secrets stay out of files.

`load_settings()` parses and validates the whole file into a typed `Settings` object; a wrong value is refused with
the file and the key path (`calendar.timezone`, `duckdb.memory_limit`, ...). Dagster code receives the object through
`pipeline.defs.resources.SettingsResource`; `pipeline/lib` never reads it and gets values passed in.
"""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from pipeline.lib.environment import REPO_ROOT
from pipeline.lib.warehouse import MEMORY_SIZE, deleted_row_pins_fit

if TYPE_CHECKING:
    import duckdb

    from pipeline.lib.identity import IdentityRules
    from pipeline.lib.ingest import Limits

DEFAULT_CONFIG = REPO_ROOT / "pipeline" / "config" / "cdp.yaml"

# Keys that were renamed: (section, old key) -> new key. A file still using the old name is refused with the new one.
RENAMED_KEYS = {("clv", "cost_per_ticket_idr"): "clv.cost_per_ticket (in calendar.currency)"}


@dataclass(frozen=True)
class ShopCalendar:
    """Where and in what money the shop trades (`calendar:` in cdp.yaml).

    timezone: naive source timestamps are read in it and business days are cut at its midnight.
    currency / currency_minor_units: ISO 4217 code of the shop's money and its decimals (default: the code's ISO
    minor units; orders in another currency are quarantined). locale: how people read numbers and money (report).
    partitions_start: the first day the pipeline loads.
    """

    timezone: str
    currency: str
    currency_minor_units: int
    locale: str
    partitions_start: date

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/New_York, Europe/Berlin)") from None
        return value

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        from babel.numbers import is_currency

        if not re.fullmatch(r"[A-Z]{3}", value) or not is_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 code (e.g. USD, EUR)")
        return value

    @field_validator("currency_minor_units")
    @classmethod
    def _minor_units_range(cls, value: int) -> int:
        if not 0 <= value <= 4:
            raise ValueError(f"currency_minor_units must be between 0 and 4, not {value}")
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"{value!r} is not a known locale (e.g. en_US, de_DE)") from None
        return value

    @field_validator("partitions_start", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a YYYY-MM-DD date") from None


class StorageSettings(BaseModel):
    """Where the pipeline keeps its files (the environment's CDP_DATA_DIR / CDP_WAREHOUSE win)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data_dir: str = "data"
    warehouse: str = "data/warehouse.duckdb"


class DuckDBSettings(BaseModel):
    """Applied to every DuckDB a run opens: the warehouse connections of Dagster steps, the CLI and dbt (via its
    profile vars), and in-memory ones (Settings.connect_memory; dbt Python models get the limits as model configs).

    memory_limit bounds each DuckDB instance's buffer pool (DuckDB's default is 80 % of RAM per instance); work
    beyond it spills to temp_directory (default: DuckDB's own, `<warehouse>.tmp`). A run has the Dagster process and
    one dbt process alive at once, each with one warehouse connection at this limit; what the dbt Python models hold
    in polars comes on top (at 1M it took dbt past 8 GB: bench/results/1M-20261202T144608.md).

    keep_open: whether dbt holds the warehouse open for a whole step (true) or closes it after every model (false,
    a checkpoint each: about a second a model at 1M persons, since DuckDB 1.5.5's checkpoint reads every table's
    delete marks). `auto` keeps it open while the delete marks the warehouse can pin fit in half of memory_limit
    (pipeline.lib.warehouse.deleted_row_pins_fit: about 1M persons at 4GB), and closes it above that.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    memory_limit: str = "4GB"
    temp_directory: str | None = None
    keep_open: bool | Literal["auto"] = "auto"

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not MEMORY_SIZE.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a memory size (e.g. 4GB, 512MB)")
        return value.strip()


class Settings(BaseModel):
    """The whole cdp.yaml, validated. Sections without a typed model here are checked by the code that uses them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    storage: StorageSettings = StorageSettings()
    duckdb: DuckDBSettings = DuckDBSettings()
    calendar: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    segments: dict[str, Any] = {}
    identity: dict[str, Any] = {}
    ingest: dict[str, Any] = {}
    quality: dict[str, Any] = {}
    serving: dict[str, Any] = {}
    clv: dict[str, Any] = {}
    equity: dict[str, Any] = {}
    report: dict[str, Any] = {}

    @field_validator("identity")
    @classmethod
    def _identity_rules(cls, value: dict[str, Any]) -> dict[str, Any]:
        from pipeline.lib.identity import IdentityRules

        IdentityRules.from_config(value)  # raises naming the wrong key
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value

    def section(self, name: str) -> dict[str, Any]:
        """One untyped section as a dict (a copy: settings are read-only)."""
        return dict(getattr(self, name))

    def shop_calendar(self) -> ShopCalendar:
        """The validated `calendar:` section; a missing or invalid key raises an error naming it."""
        from babel.numbers import get_currency_precision, is_currency

        cfg = {"locale": "en", **self.calendar}
        currency = str(cfg.get("currency") or "")
        if cfg.get("currency_minor_units") is None and re.fullmatch(r"[A-Z]{3}", currency) and is_currency(currency):
            cfg["currency_minor_units"] = get_currency_precision(currency)  # the code's ISO 4217 minor units
        return _validated(lambda: ShopCalendar(**cfg), "calendar")

    def source_config(self, name: str) -> dict[str, Any] | None:
        """`sources.<name>` with `{data_dir}` expanded in its location, or None when the shop does not have that
        source (absent, empty, or `enabled: false`)."""
        cfg = self.sources.get(name)
        if not cfg or cfg.get("enabled", True) is False:
            return None
        if "location" in cfg:
            cfg = {**cfg, "location": str(cfg["location"]).replace("{data_dir}", str(self.data_dir))}
        return dict(cfg)

    def contract_limits(self) -> Limits:
        """The raw contract's shop-specific bounds: `calendar.currency` and the `ingest:` section."""
        from pipeline.lib.ingest import Limits

        cfg, defaults = self.ingest, Limits()
        hours = float(cfg.get("future_tolerance_hours", defaults.future_tolerance.total_seconds() / 3600))
        return Limits(
            currency=self.shop_calendar().currency,
            max_amount=float(cfg.get("max_amount", defaults.max_amount)),
            future_tolerance=timedelta(hours=hours),
        )

    def identity_rules(self) -> IdentityRules:
        """The `identity:` rules (validated when the settings load)."""
        from pipeline.lib.identity import IdentityRules

        return IdentityRules.from_config(self.identity)

    @property
    def data_dir(self) -> Path:
        return env_path("CDP_DATA_DIR") or _repo_path(self.storage.data_dir)

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file; by default `warehouse.duckdb` inside the data directory."""
        explicit = env_path("CDP_WAREHOUSE")
        if explicit:
            return explicit
        if env_path("CDP_DATA_DIR"):
            return self.data_dir / "warehouse.duckdb"
        return _repo_path(self.storage.warehouse)

    def duckdb_temp_directory(self, warehouse: Path) -> Path:
        """Where DuckDB spills work beyond memory_limit (default: DuckDB's own, `<warehouse>.tmp`)."""
        if self.duckdb.temp_directory:
            return _repo_path(self.duckdb.temp_directory)
        return Path(f"{warehouse}.tmp")

    def connect_warehouse(self, read_only: bool = False):
        """A warehouse connection as the settings say (path, memory limit, spill directory); a context manager."""
        from pipeline.lib.warehouse import connect

        return connect(
            self.warehouse_path,
            read_only,
            memory_limit=self.duckdb.memory_limit,
            temp_directory=self.duckdb_temp_directory(self.warehouse_path),
        )

    def connect_memory(self):
        """An in-memory DuckDB bounded like the warehouse connections (memory limit, its own spill directory)."""
        from pipeline.lib.warehouse import in_memory

        return in_memory(self.duckdb.memory_limit, self.duckdb_temp_directory(self.warehouse_path))

    def keep_warehouse_open(self, con: duckdb.DuckDBPyConnection) -> bool:
        """duckdb.keep_open for dbt's next invocation on the warehouse `con` has open, `auto` decided on its size."""
        if self.duckdb.keep_open == "auto":
            return deleted_row_pins_fit(con, self.duckdb.memory_limit)
        return self.duckdb.keep_open

    def dbt_vars(self, warehouse: Path | None = None) -> dict[str, Any]:
        """What dbt gets from the settings (`--vars`): profiles.yml reads the warehouse and DuckDB keys, the models
        the rest. dbt never reads cdp.yaml itself. `warehouse` overrides the configured file."""
        path = warehouse or self.warehouse_path
        return {
            "warehouse_path": str(path),
            "duckdb_memory_limit": self.duckdb.memory_limit,
            "duckdb_temp_directory": str(self.duckdb_temp_directory(path)),
            "timezone": self.shop_calendar().timezone,
            "identity_rules": self.section("identity"),
            # the segment rules and the CLV/equity settings, read by the mart models (setting() macro, Python configs)
            **{name: self.section(name) for name in ("segments", "clv", "equity")},
        }


class SettingsError(ValueError):
    """A configuration file that does not validate; the message names the file and the key path."""


def _key_path(location: tuple) -> str:
    return ".".join(str(part) for part in location if not str(part).startswith("function-"))


def _validated(build, prefix: str | None = None):
    try:
        return build()
    except ValidationError as exc:
        error = exc.errors()[0]
        key = _key_path(((prefix,) if prefix else ()) + tuple(error["loc"]))
        if error["type"] == "missing":
            problem = f"{key} is not set"
        elif error["type"] == "extra_forbidden":
            problem = f"{key} is not a known setting"
        else:
            problem = f"{key}: {str(error['msg']).removeprefix('Value error, ')}"
        raise SettingsError(f"{config_path()}: {problem}") from None


def config_path() -> str:
    return os.environ.get("CDP_CONFIG", str(DEFAULT_CONFIG))


@lru_cache(maxsize=4)
def _read_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        parsed = yaml.safe_load(fh) or {}
    for (name, old), new in RENAMED_KEYS.items():
        if old in (parsed.get(name) or {}):
            raise SettingsError(f"{path}: {name}.{old} was renamed; write it as {new}")
    return parsed


@lru_cache(maxsize=4)
def _load(path: str) -> Settings:
    return _validated(lambda: Settings(**_read_yaml(path)))


def load_settings(path: str | Path | None = None) -> Settings:
    """The validated settings of a configuration file (default: `CDP_CONFIG` or the shipped cdp.yaml), read once."""
    return _load(str(path) if path is not None else config_path())


def load_config() -> dict[str, Any]:
    """The parsed configuration file (cached per path; treat as read-only)."""
    return _read_yaml(config_path())


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


# Shorthands for entry points (CLI, forget, Dagster definitions) that read the current settings.
def section(name: str) -> dict[str, Any]:
    return load_settings().section(name)


def shop_calendar() -> ShopCalendar:
    return load_settings().shop_calendar()


def source_config(name: str) -> dict[str, Any] | None:
    return load_settings().source_config(name)


def data_dir() -> Path:
    return load_settings().data_dir


def warehouse_path() -> Path:
    return load_settings().warehouse_path


def connect_warehouse(read_only: bool = False):
    return load_settings().connect_warehouse(read_only)


def connect_memory():
    return load_settings().connect_memory()
