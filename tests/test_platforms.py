"""Which trade platform a call is for, and its type: the platform list the emulator serves decides, a given
``platform_type`` wins, and anything undecidable is an error naming the setting to fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.connection import from_connection
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.platforms import (
    Platform,
    aresolve_platform,
    platform_type_from,
    platform_type_in,
    require_trade_platform,
    resolve_platform,
)

TP = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"


@pytest.mark.parametrize(
    ("served", "expected"),
    [("MT5", "MT5"), ("metatrader 4", "MT4"), (" MetaTrader5 ", "MT5"), (4, "MT4"), ("5", "MT5")],
)
def test_a_platform_type_spelling_is_read(served: Any, expected: str) -> None:
    assert platform_type_in([{"id": "other"}, {"id": TP.upper(), "type": served}], TP, "c") == expected


@pytest.mark.parametrize("served", [True, False, None, 0, 1, "MT6", ""])
def test_an_unreadable_platform_type_names_the_extra_to_set(served: Any) -> None:
    """Bugs caught: ``True`` taken as 1 and 1 as a type (``bool`` is an ``int``); an ordinal guessed as MT4/MT5;
    a missing type defaulting to MT4 (MT5 paths then answer Validation errors)."""
    with pytest.raises(CPluginConfigError) as caught:
        platform_type_in([{"id": TP, "type": served}], TP, "my_conn")
    assert caught.value.field == "extra.platform_type" and "my_conn" in str(caught.value)
    assert platform_type_from(served) is None


def test_an_invisible_platform_lists_the_visible_ones() -> None:
    with pytest.raises(CPluginConfigError) as caught:
        platform_type_in([{"id": "a", "type": "MT4"}], TP, None)
    assert caught.value.field == "extra.trade_platform" and "visible: a" in str(caught.value)
    with pytest.raises(CPluginConfigError, match="visible: none"):
        platform_type_in([], TP, None)


def test_no_trade_platform_anywhere_names_the_extra() -> None:
    """Bug caught: a missing platform turned into the path segment ``None`` (a NotFound from the API, not a
    config error telling what to set)."""
    conn = SimpleNamespace(host="https://api.example.test", port=None, login="c", password="s", conn_id="c")
    config = from_connection(conn, extras={"env": "custom", "auth_url": "https://auth.example.test"})
    assert require_trade_platform(config, TP) == TP
    with pytest.raises(CPluginConfigError) as caught:
        require_trade_platform(config, None)
    assert caught.value.field == "extra.trade_platform"


@pytest.fixture
def conn(emulator: EmulatorProcess, airflow_conn: Any) -> EmulatorProcess:
    airflow_conn("cplugin_default", emulator.connection_json())
    return emulator


def platform_list_calls(emu: EmulatorProcess) -> int:
    return sum(n for route, n in emu.stats()["requests"].items() if route.endswith("/api/TradePlatforms"))


async def test_both_hooks_resolve_a_platform_the_same_way(conn: EmulatorProcess) -> None:
    """The type comes from the emulator's platform list unless the task gives one, which needs no request.

    Bugs caught: the async resolution ignoring a given ``platform_type`` (or not checking it); the sync and async
    paths disagreeing about the same platform.
    """
    mt5 = conn.mt5_trade_platform
    hook = CPluginWebApiAsyncHook()
    try:
        before = platform_list_calls(conn)
        assert await aresolve_platform(hook, mt5, "mt4") == Platform(mt5, "MT4")  # the task's word, unchecked
        assert platform_list_calls(conn) == before
        assert await aresolve_platform(hook, mt5, None) == Platform(mt5, "MT5")
        assert await aresolve_platform(hook, None, None) == Platform(conn.mt4_trade_platform, "MT4")
        assert platform_list_calls(conn) == before + 1  # one list, cached by the hook
        with pytest.raises(CPluginConfigError) as caught:
            await aresolve_platform(hook, mt5, "MT6")
        assert caught.value.field == "platform_type"
    finally:
        await hook.close()
    with CPluginWebApiHook() as sync:
        assert resolve_platform(sync, mt5, None) == Platform(mt5, "MT5")
        assert resolve_platform(sync, None, " mt5 ") == Platform(conn.mt4_trade_platform, "MT5")
