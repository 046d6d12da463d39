"""The trade platform and its type are resolved by one set of rules (``platforms.py``) for every caller.

The snapshot operators, the hub sampler operator, the sensors and the hook's path helper used to resolve them each
their own way, and only one validated the type. A bad task-level ``platform_type`` must now fail the same way
everywhere, naming the field; a missing trade platform names ``extra.trade_platform``; a good one is normalised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor

TP = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"conn_type": "cplugin", "host": "https://api.example.test", "login": "c", "password": "s"}
    extra = {"env": "custom", "auth_url": "https://auth.example.test"}
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", json.dumps({**base, "extra": {**extra, "trade_platform": TP}}))
    monkeypatch.setenv("AIRFLOW_CONN_NO_PLATFORM", json.dumps({**base, "extra": extra}))


def snapshot(**kw: Any) -> tuple[str, str]:
    return UsersSnapshotOperator(task_id="users", **kw).resolve_platform()


def sensor(**kw: Any) -> tuple[str, str]:
    return HistoryCompleteSensor(task_id="settled", **kw).resolved_platform()


def hub(**kw: Any) -> tuple[str, str]:
    from airflow_provider_cplugin.platforms import resolve_platform

    op = HubSampleOperator(task_id="sample", streams=["StreamMarginCallUpdates"], **kw)  # on MT4 and MT5
    platform = resolve_platform(op.hook, op.trade_platform, op.platform_type)
    return platform.trade_platform, platform.platform_type


def hook_path(**kw: Any) -> tuple[str, str]:
    conn = kw.pop("cplugin_conn_id", "cplugin_default")
    path = CPluginWebApiHook(conn).v2_path("ServerTime", **kw)
    _, _, _, kind, tp, _ = path.split("/")
    return tp, kind


CALLERS: list[Callable[..., tuple[str, str]]] = [snapshot, sensor, hub, hook_path]


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.__name__)
def test_a_bad_platform_type_is_refused_naming_the_field(caller: Callable[..., tuple[str, str]]) -> None:
    with pytest.raises(CPluginConfigError) as err:
        caller(platform_type="MT6")
    assert err.value.field == "platform_type" and "MT4 or MT5" in err.value.problem


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.__name__)
def test_a_good_type_in_any_case_is_normalised(caller: Callable[..., tuple[str, str]]) -> None:
    assert caller(platform_type=" mt5 ") == (TP, "MT5")


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.__name__)
def test_no_trade_platform_names_the_connection_extra(caller: Callable[..., tuple[str, str]]) -> None:
    with pytest.raises(CPluginConfigError) as err:
        caller(cplugin_conn_id="no_platform", platform_type="MT4")
    assert err.value.field == "extra.trade_platform"
