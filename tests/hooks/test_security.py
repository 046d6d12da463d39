"""Hook security properties that plausible regressions would break: token sharing across secrets, tokens in logs,
late replies, the UI's own extra keys, environment proxies without ~/.netrc."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError, CPluginConfigError
from airflow_provider_cplugin.hooks import ui, webapi
from airflow_provider_cplugin.hooks.connection import CONN_TYPE, from_connection
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

from .support import API, AUTH, SECRET, TP, conn_dict, counters, delta, envelope, v2


def wrong_secret(emulator: EmulatorProcess) -> dict[str, Any]:
    conn = json.loads(emulator.connection_json())
    return {**conn, "password": emulator.client_secret + "-but-wrong"}


def test_another_secret_never_gets_the_cached_token(emulator: EmulatorProcess, airflow_conn: Any) -> None:
    """Same authority, client id and scopes, different secret: the cache key must tell them apart, otherwise a
    wrong (or rotated-out) secret keeps working on someone else's token."""
    airflow_conn("good", emulator.connection_json())
    airflow_conn("bad", wrong_secret(emulator))
    before = counters(emulator)
    assert CPluginWebApiHook("good").get_access_token()
    with pytest.raises(CPluginAuthError) as excinfo:
        CPluginWebApiHook("bad").get_access_token()
    assert excinfo.value.error_code == "invalid_client"
    assert delta(before, counters(emulator))["token"] == 2  # the bad secret was really sent to the server


async def test_another_secret_never_gets_the_cached_token_async(emulator: EmulatorProcess, airflow_conn: Any) -> None:
    airflow_conn("good", emulator.connection_json())
    airflow_conn("bad", wrong_secret(emulator))
    async with CPluginWebApiAsyncHook("good") as good, CPluginWebApiAsyncHook("bad") as bad:
        assert await good.get_token()
        with pytest.raises(CPluginAuthError, match="invalid_client"):
            await bad.get_token()


async def test_neither_hook_logs_the_token_or_the_secret(
    emulator: EmulatorProcess, airflow_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([{"path": "ServerTime$", "status": 503, "times": 1}])  # a retry line and a 401 refresh too
    try:
        sync_hook = CPluginWebApiHook()
        sync_hook.server_time()
        emulator.revoke_tokens()
        async with CPluginWebApiAsyncHook() as hook:
            await hook.server_time()
            token = await hook.get_token()
        assert sync_hook.get_access_token() == token  # one process-wide token, the one checked below
    finally:
        emulator.set_faults([])
    assert any(r.name.startswith("airflow_provider_cplugin.hooks.webapi_async") for r in caplog.records)
    assert any(r.name == "airflow_provider_cplugin.hooks.webapi" for r in caplog.records)
    assert "refreshing the token" in caplog.text and "retrying" in caplog.text
    assert token not in caplog.text and emulator.client_secret not in caplog.text


def test_reply_arriving_after_the_deadline_is_a_timeout(
    mock_conn: str, api: rm.Mocker, airflow_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server answers, but only after the call's deadline: its data must not be used (a late page could be
    from a request the caller already gave up on)."""
    airflow_conn("cplugin_default", conn_dict(timeout=5))
    now = [1000.0]
    monkeypatch.setattr(webapi, "time", SimpleNamespace(monotonic=lambda: now[0]))

    def late(request: Any, context: Any) -> dict[str, Any]:
        now[0] += 6  # the answer takes longer than extra.timeout
        return envelope("too late")

    api.get(v2("ServerTime"), json=late)
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.code == "Timeout" and "5s deadline" in str(excinfo.value)


def test_reply_just_inside_the_deadline_is_used(
    mock_conn: str, api: rm.Mocker, airflow_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow_conn("cplugin_default", conn_dict(timeout=5))
    now = [1000.0]
    monkeypatch.setattr(webapi, "time", SimpleNamespace(monotonic=lambda: now[0]))

    def slow(request: Any, context: Any) -> dict[str, Any]:
        now[0] += 4.9
        return envelope("in time")

    api.get(v2("ServerTime"), json=slow)
    assert CPluginWebApiHook().server_time() == "in time"


def test_every_ui_field_is_a_known_extra_also_with_the_legacy_prefix() -> None:
    """The unknown-key check must not reject what the connection form itself stores."""
    plain = {name: None for name in ui.CONN_FIELDS}
    prefixed = {f"extra__{CONN_TYPE}__{name}": None for name in ui.CONN_FIELDS}
    for extras in (plain, prefixed):
        conn = SimpleNamespace(host=API, login="c", password=SECRET, port=None, extra_dejson=extras)
        config = from_connection(conn, extras={**extras, f"extra__{CONN_TYPE}__env": "custom", "auth_url": AUTH})
        assert config.env == "custom" and config.verify is True


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("timout", "timeout"),
        ("extra__cplugin__verfy", "verify"),
        ("extra__cplugin_webapi__verfy", "verify"),  # the first type name's form prefix
        ("tradeplatform", "trade_platform"),
    ],
)
def test_unknown_extra_names_the_key_and_suggests(key: str, suggestion: str) -> None:
    conn = SimpleNamespace(host=API, login="c", password=SECRET, port=None, conn_id="k")
    with pytest.raises(CPluginConfigError, match=f"did you mean '{suggestion}'") as excinfo:
        from_connection(conn, extras={"env": "custom", "auth_url": AUTH, "trade_platform": TP, key: 1})
    assert excinfo.value.field == "extra." + key.rsplit("__", 1)[-1]


async def test_async_hook_applies_environment_proxies_itself(mock_conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """trust_env is off (it would also send ~/.netrc credentials); proxies from the environment still apply."""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "auth.example.test")
    async with CPluginWebApiAsyncHook() as hook:
        session = await hook.get_conn()
        assert session.trust_env is False
        api_proxy = await hook._proxy(API + "/api/TradePlatforms")
        assert str(api_proxy["proxy"]) == "http://proxy.example.test:3128"
        assert api_proxy["proxy_auth"].login == "user"
        assert await hook._proxy(AUTH + "/connect/token") == {}
