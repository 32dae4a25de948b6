"""What the code needs from the machine it runs on: the repository root, and secrets from environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# The Dagster instance settings `make setup` copies to $DAGSTER_HOME (pool limits, run monitoring, batched event log).
SHIPPED_INSTANCE = REPO_ROOT / "pipeline" / "config" / "dagster.yaml"


def resolve_secret(value: Any) -> Any:
    """Turn `env:NAME` into the value of environment variable NAME (error if unset)."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise KeyError(f"environment variable {name} is not set (needed by the source configuration)")
        return os.environ[name]
    return value


def secret(name: str) -> str | None:
    """The value of the environment variable `name` holding a secret; None when it is unset or empty."""
    return os.environ.get(name) or None
