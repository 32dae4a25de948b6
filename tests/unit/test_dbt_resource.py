"""The dbt CLI resource runs dbt without dagster-dbt's `dbt --version` process and in-process adapter handle
(the dbt steps of every integration run invoke dbt through it)."""

import inspect
from importlib.metadata import version

from dagster_dbt import DbtCliResource
from packaging.version import Version

from pipeline.defs.dbt.resources import dbt_resource


def test_the_overridden_members_are_the_ones_dagster_dbt_calls():
    # An upgrade of dagster-dbt that renames them would silently bring both costs back: fail here instead.
    called = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in called and "self._initialize_dbt_core_adapter(" in called
    assert dbt_resource._cli_version == Version(version("dbt-core"))
    assert dbt_resource._initialize_dbt_core_adapter(["build"]) is None
