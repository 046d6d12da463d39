"""Provider metadata as Airflow reads it (ProvidersManager via the entry point), its config and connection type."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

import airflow_provider_cplugin
from airflow_provider_cplugin import get_provider_info
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.parquet.location import default_landing_path

PACKAGE = "airflow-provider-cplugin"


def test_provider_info_matches_airflows_schema() -> None:
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def _declared(kind: str) -> set[str]:
    return {m for entry in get_provider_info()[kind] for m in entry["python-modules"]}


@pytest.mark.parametrize(
    ("kind", "base"), [("operators", BaseOperator), ("sensors", BaseOperator), ("triggers", BaseTrigger)]
)
def test_every_module_with_a_public_class_is_declared(kind: str, base: type) -> None:
    """A new operator, sensor or trigger module must be listed, or ProvidersManager does not know it."""
    package = importlib.import_module(f"airflow_provider_cplugin.{kind}")
    found = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
        # Bases (base_snapshot, sensors/base) are not used in DAGs: their subclasses are.
        if not info.name.startswith("base") and any(issubclass(c, base) for c in classes):
            found.add(module.__name__)
    assert found == _declared(kind)


def test_providers_manager_lists_ours() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    info: dict[str, Any] = manager.providers[PACKAGE].data
    assert {"operators", "sensors", "triggers", "integrations", "config"} <= set(info)
    assert {t.trigger_class_name for t in manager.trigger if t.package_name == PACKAGE} == _declared("triggers")
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hooks = ProvidersManagerTaskRuntime().hooks
    assert hooks["cplugin"].hook_class_name.endswith("CPluginWebApiHook")  # type: ignore[union-attr]
    assert "cplugin_webapi" not in hooks  # only the RFC 3986-valid name is registered
    assert dict(manager.provider_configs)[PACKAGE]["cplugin"]["options"]["landing_path"]["default"] == ""


def test_landing_path_config_then_environment_then_airflow_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", "/opt/af")
    monkeypatch.delenv("CPLUGIN_LANDING_PATH", raising=False)
    monkeypatch.delenv("AIRFLOW__CPLUGIN__LANDING_PATH", raising=False)
    assert default_landing_path() == "file:///opt/af/data/cplugin"
    monkeypatch.setenv("CPLUGIN_LANDING_PATH", "s3://from-env/x")
    assert default_landing_path() == "s3://from-env/x"
    monkeypatch.setenv("AIRFLOW__CPLUGIN__LANDING_PATH", "s3://from-config/y")
    assert default_landing_path() == "s3://from-config/y"
    monkeypatch.setenv("AIRFLOW__CPLUGIN__LANDING_PATH", " ")
    assert default_landing_path() == "s3://from-env/x"  # empty option falls through


def test_old_connection_type_still_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    value = {
        "conn_type": "cplugin_webapi",
        "host": "https://api.example.test",
        "login": "client",
        "password": "secret",
        "extra": {"env": "custom", "extra__cplugin_webapi__auth_url": "https://auth.example.test"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OLD", json.dumps(value))
    config = CPluginWebApiHook("old").config
    assert (config.api_base_url, config.auth_url) == ("https://api.example.test", "https://auth.example.test")
    assert airflow_provider_cplugin.CONN_TYPE == CPluginWebApiHook.conn_type == "cplugin"


def test_connection_test_names_the_field_not_the_temporary_test_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI/REST test runs the hook on a copy under a random id (e.g. 'SDIhO6XQ') the user never saw."""
    value = {"conn_type": "cplugin", "host": "https://api.example.test", "login": "c", "password": "s",
             "extra": {"env": "custom"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SDIHO6XQ", json.dumps(value))
    ok, message = CPluginWebApiHook("SDIhO6XQ").test_connection()
    assert not ok and message.startswith("Invalid connection: field 'extra.auth_url': ")
    assert "SDIhO6XQ" not in message and "sdiho6xq" not in message.lower()
