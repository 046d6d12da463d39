"""The naming rule of docs/architecture.md ("Class names"), and the old names that stay importable."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from airflow._shared.module_loading import import_string  # what the triggerer re-creates triggers with
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger

import airflow_provider_cplugin
from airflow_provider_cplugin import exceptions
from airflow_provider_cplugin.operators.webapi import WebApiCallOperator
from airflow_provider_cplugin.triggers.condition import ConditionTrigger


def classes_of(package: str, base: type) -> list[type]:
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        module = importlib.import_module(info.name)
        found += [
            c for _, c in inspect.getmembers(module, inspect.isclass)
            if c.__module__ == module.__name__ and issubclass(c, base) and not c.__name__.startswith("_")
        ]  # fmt: skip
    return found


def test_hooks_are_named_for_the_system_and_tasks_for_what_they_do() -> None:
    hooks = [c for c in classes_of("airflow_provider_cplugin.hooks", BaseHook) if not c.__module__.endswith("._base")]
    assert hooks and all(c.__name__.startswith("CPlugin") for c in hooks)
    tasks = [
        *classes_of("airflow_provider_cplugin.operators", BaseOperator),
        *classes_of("airflow_provider_cplugin.sensors", BaseOperator),
        *classes_of("airflow_provider_cplugin.triggers", BaseTrigger),
    ]
    assert len(tasks) > 15
    assert [c.__name__ for c in tasks if c.__name__.startswith("CPlugin")] == []
    # The provider's own errors: the root and what the API and configuration raise carry the system's name.
    assert {"CPluginError", "CPluginApiError", "CPluginAuthError", "CPluginConfigError"} <= set(dir(exceptions))


def test_old_operator_name_warns_and_is_the_same_class() -> None:
    with pytest.warns(AirflowProviderDeprecationWarning, match="WebApiCallOperator"):
        from airflow_provider_cplugin.operators.webapi import CPluginWebApiOperator
    assert CPluginWebApiOperator is WebApiCallOperator


def test_triggers_stored_under_the_old_classpath_are_re_created() -> None:
    """The triggerer re-creates a deferred task's trigger from the classpath stored by the version that deferred."""
    cls = import_string("airflow_provider_cplugin.triggers.condition.CPluginConditionTrigger")
    trigger = cls(cplugin_conn_id="c", condition={"name": "platform_reachable", "trade_platform": "x"})
    assert type(trigger) is ConditionTrigger
    assert trigger.serialize()[0] == "airflow_provider_cplugin.triggers.condition.ConditionTrigger"


def test_unknown_names_still_raise() -> None:
    with pytest.raises(AttributeError):
        airflow_provider_cplugin.operators.webapi.NoSuchOperator  # type: ignore[attr-defined]  # noqa: B018
