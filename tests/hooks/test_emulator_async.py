"""Async hook against the emulator process: same behaviour as the sync hook, without blocking the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError, CPluginConfigError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

from .support import counters, delta


@pytest.fixture
def emu(emulator: EmulatorProcess, airflow_conn: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([])

    def no_sync_lookup(*_: Any, **__: Any) -> Any:
        raise AssertionError("the async hook must not use the blocking connection lookup")

    monkeypatch.setattr(CPluginWebApiAsyncHook, "get_connection", classmethod(no_sync_lookup))
    yield emulator
    emulator.set_faults([])


async def test_connection_looked_up_asynchronously(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiAsyncHook()
    config = await hook.get_config()
    assert config.api_base_url == emu.url and config.allow_insecure_loopback
    assert emu.client_secret not in repr(hook)
    await hook.close()


async def test_token_cached_across_requests_and_hooks(emu: EmulatorProcess) -> None:
    before = counters(emu)
    async with CPluginWebApiAsyncHook() as a, CPluginWebApiAsyncHook() as b:
        results = await asyncio.gather(*[h.server_time() for h in (a, b) for _ in range(8)])
    assert all(isinstance(r, str) for r in results)
    changed = delta(before, counters(emu))
    assert changed["token"] == 1 and changed["discovery"] == 1 and changed["time"] == 16


async def test_sync_and_async_hooks_share_the_process_token(emu: EmulatorProcess) -> None:
    before = counters(emu)
    token = await asyncio.to_thread(CPluginWebApiHook().get_access_token)
    async with CPluginWebApiAsyncHook() as hook:
        assert await hook.get_token() == token
        await hook.server_time()
    assert delta(before, counters(emu))["token"] == 1


async def test_revoked_token_refreshed_once(emu: EmulatorProcess) -> None:
    async with CPluginWebApiAsyncHook() as hook:
        await hook.server_time()
        before = counters(emu)
        emu.revoke_tokens()
        assert isinstance(await hook.server_time(), str)
    changed = delta(before, counters(emu))
    assert changed["token"] == 1 and changed["unauthorized"] == 1 and changed["time"] == 2


async def test_wrong_secret(emu: EmulatorProcess, airflow_conn: Any) -> None:
    airflow_conn("bad_secret", emu.connection_json().replace(emu.client_secret, "nope-nope"))
    async with CPluginWebApiAsyncHook("bad_secret") as hook:
        with pytest.raises(CPluginAuthError) as excinfo:
            await hook.server_time()
    assert excinfo.value.error_code == "invalid_client" and excinfo.value.request_id


async def test_paginate_exact_login_sequence(emu: EmulatorProcess) -> None:
    async with CPluginWebApiAsyncHook() as hook:
        path = await hook.v2_path("UsersRequest")
        pages = [page async for page in hook.paginate(path, limit=400)]
    assert [(p.number, len(p.items)) for p in pages] == [(1, 400), (2, 400), (3, 200)]
    assert [u["login"] for p in pages for u in p.items] == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + 1000))


async def test_retry_after_and_exhaustion(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "ServerTime$", "status": 429, "retry_after": 1, "times": 1}])
    async with CPluginWebApiAsyncHook() as hook:
        assert isinstance(await hook.server_time(), str)
        assert sleeps == [1.0]
        emu.set_faults([{"path": "ServerTime$", "status": 502, "times": 3}])
        with pytest.raises(CPluginApiError) as excinfo:
            await hook.server_time()
    assert excinfo.value.status == 502 and len(sleeps) == 3


async def test_post_not_retried(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "Anything$", "method": "POST", "status": 503, "times": 5}])
    before = emu.stats()["faults_applied"]
    async with CPluginWebApiAsyncHook() as hook:
        path = await hook.v2_path("Anything")
        with pytest.raises(CPluginApiError) as excinfo:
            await hook.request("POST", path, json={}, idempotency_key="k")
    assert excinfo.value.status == 503 and sleeps == []
    assert emu.stats()["faults_applied"] - before == 1


async def test_malformed_json_redirect_and_drop(emu: EmulatorProcess, sleeps: list[float]) -> None:
    async with CPluginWebApiAsyncHook() as hook:
        emu.set_faults([{"path": "ServerTime$", "status": 200, "body": "{not json", "times": 1}])
        with pytest.raises(CPluginApiError, match="malformed JSON"):
            await hook.server_time()
        emu.set_faults([{"path": "ServerTime$", "status": 307, "redirect": "http://127.0.0.1:9/x", "times": 1}])
        with pytest.raises(CPluginApiError, match="redirect"):
            await hook.server_time()
        # aiohttp itself re-sends an idempotent request once after a server disconnect (RFC 9112 §9.3.1), so
        # two drops are needed to reach our retry; either way the third send succeeds.
        emu.set_faults([{"path": "ServerTime$", "drop": True, "times": 2}])
        assert isinstance(await hook.server_time(), str)
    assert 1 <= len(sleeps) <= 2


async def test_envelope_error_and_platform_lookup(emu: EmulatorProcess) -> None:
    async with CPluginWebApiAsyncHook() as hook:
        assert await hook.platform_type_of(emu.mt5_trade_platform) == "MT5"
        assert await hook.ping() is True
        with pytest.raises(CPluginApiError) as excinfo:
            await hook.get(await hook.v2_path("UserRecordGet", 1))
        assert excinfo.value.code == "NotFound"
        with pytest.raises(CPluginConfigError):
            await hook.platform_type_of("00000000-0000-4000-8000-000000000000")
