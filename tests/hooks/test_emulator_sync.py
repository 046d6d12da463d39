"""Sync hook against the real emulator process on loopback (OAuth2, caching, refresh, paging, faults)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

from .support import counters, delta


@pytest.fixture
def emu(emulator: EmulatorProcess, airflow_conn: Any) -> Iterator[EmulatorProcess]:
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([])
    yield emulator
    emulator.set_faults([])


@pytest.fixture(scope="module")
def short_lived() -> Iterator[EmulatorProcess]:
    """Tokens living 2 s: with the skew clamped to 0.5 s each one is reused for 1.5 s."""
    with EmulatorProcess(users=50, token_lifetime=2) as emu:
        yield emu


def test_discovery_then_one_token_shared_by_hooks(emu: EmulatorProcess) -> None:
    before = counters(emu)
    for _ in range(3):
        hook = CPluginWebApiHook()
        for _ in range(5):
            assert isinstance(hook.server_time(), str)
    changed = delta(before, counters(emu))
    assert changed == {"token": 1, "discovery": 1, "unauthorized": 0, "time": 15}


def test_token_refreshed_after_expiry(short_lived: EmulatorProcess, airflow_conn: Any) -> None:
    airflow_conn("cplugin_default", short_lived.connection_json())
    hook = CPluginWebApiHook()
    before = counters(short_lived)
    hook.server_time()
    hook.server_time()
    assert delta(before, counters(short_lived))["token"] == 1
    time.sleep(1.7)  # past expiry - clamped skew (2 s - 0.5 s)
    hook.server_time()
    changed = delta(before, counters(short_lived))
    assert changed["token"] == 2 and changed["unauthorized"] == 0


def test_revoked_token_gets_401_then_one_refresh(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiHook()
    hook.server_time()
    before = counters(emu)
    assert emu.revoke_tokens() >= 1
    assert isinstance(hook.server_time(), str)
    changed = delta(before, counters(emu))
    assert changed == {"token": 1, "discovery": 0, "unauthorized": 1, "time": 2}


def test_wrong_secret_names_the_cause(emu: EmulatorProcess, airflow_conn: Any) -> None:
    conn = emu.connection_json().replace(emu.client_secret, "not-the-secret")
    airflow_conn("bad_secret", conn)
    with pytest.raises(CPluginAuthError) as excinfo:
        CPluginWebApiHook("bad_secret").server_time()
    err = excinfo.value
    assert err.error_code == "invalid_client" and err.status == 400 and err.request_id
    assert "not-the-secret" not in str(err)
    ok, message = CPluginWebApiHook("bad_secret").test_connection()
    assert not ok and "invalid_client" in message and "client secret" in message


def test_paginate_users_exact_login_sequence(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiHook()
    pages = list(hook.paginate(hook.v2_path("UsersRequest"), limit=300))
    assert [len(p.items) for p in pages] == [300, 300, 300, 100]
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert pages[-1].next_cursor is None and all(p.activity_id for p in pages)
    logins = [u["login"] for p in pages for u in p.items]
    assert logins == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + 1000))


def users_requests(emu: EmulatorProcess) -> int:
    return sum(n for route, n in emu.stats()["requests"].items() if route.endswith("UsersRequest"))


@pytest.mark.parametrize("request_ahead", [True, False])
def test_paginate_sends_one_request_per_page_either_way(emu: EmulatorProcess, request_ahead: bool) -> None:
    hook = CPluginWebApiHook()
    before = users_requests(emu)
    pages = list(hook.paginate(hook.v2_path("UsersRequest"), limit=70, request_ahead=request_ahead))
    logins = [u["login"] for p in pages for u in p.items]
    assert logins == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + 1000))
    assert [p.number for p in pages] == list(range(1, 16))
    # The cursor peeked from each body was the decoded one: no request was wasted on a wrong guess.
    assert users_requests(emu) - before == 15


def test_abandoned_pagination_stops_requesting_ahead(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiHook()
    before = users_requests(emu)
    pages = hook.paginate(hook.v2_path("UsersRequest"), limit=10)
    first = next(pages)
    pages.close()
    # The read-ahead thread sees the close once its request in flight returns, then ends: wait for exactly that.
    for thread in [t for t in threading.enumerate() if t.name == "cplugin-read-ahead"]:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert first.number == 1
    assert users_requests(emu) - before <= 3  # the page handed out plus at most two fetched ahead


def test_body_cut_mid_way_is_retried(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "UsersRequest$", "truncate": True, "times": 2}])
    hook = CPluginWebApiHook()
    pages = list(hook.paginate(hook.v2_path("UsersRequest"), limit=400))
    assert [len(p.items) for p in pages] == [400, 400, 200]
    assert len(sleeps) == 2


def test_body_cut_every_time_is_a_transport_error(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "UsersRequest$", "truncate": True, "times": None}])
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError) as excinfo:
        list(hook.paginate(hook.v2_path("UsersRequest"), limit=400))
    assert excinfo.value.code == "Transport" and "3 attempt" in str(excinfo.value)


def test_sixteen_threads_one_token_request(emu: EmulatorProcess) -> None:
    before = counters(emu)
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []
    shared = CPluginWebApiHook()
    path = shared.v2_path("ServerTime")

    def worker(index: int) -> None:
        hook = shared if index % 2 else CPluginWebApiHook()
        try:
            barrier.wait()
            for _ in range(10):
                hook.get(path)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    changed = delta(before, counters(emu))
    assert changed["token"] == 1 and changed["time"] == 160


def test_retry_after_from_emulator(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "ServerTime$", "status": 429, "retry_after": 2, "times": 1}])
    before = counters(emu)
    assert isinstance(CPluginWebApiHook().server_time(), str)
    assert sleeps == [2.0]
    assert delta(before, counters(emu))["time"] == 2


def test_503_burst_exhausts_retries(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "ServerTime$", "status": 503, "times": 3}])
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.status == 503 and len(sleeps) == 2


def test_envelope_error_and_redirect_from_emulator(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError) as excinfo:
        hook.get(hook.v2_path("UserRecordGet", 1))
    assert excinfo.value.code == "NotFound" and excinfo.value.activity_id and excinfo.value.status == 200
    emu.set_faults([{"path": "ServerTime$", "status": 302, "redirect": "http://127.0.0.1:9/elsewhere"}])
    with pytest.raises(CPluginApiError, match="redirect"):
        hook.server_time()


def test_dropped_connection_is_retried(emu: EmulatorProcess, sleeps: list[float]) -> None:
    emu.set_faults([{"path": "ServerTime$", "drop": True, "times": 1}])
    assert isinstance(CPluginWebApiHook().server_time(), str)
    assert len(sleeps) == 1


def test_test_connection_ok(emu: EmulatorProcess) -> None:
    ok, message = CPluginWebApiHook().test_connection()
    assert ok, message
    assert "2 trade platform(s)" in message and emu.mt4_trade_platform in message


def test_platform_types_from_emulator_list(emu: EmulatorProcess) -> None:
    hook = CPluginWebApiHook()
    assert hook.platform_type_of(emu.mt4_trade_platform) == "MT4"
    assert hook.platform_type_of(emu.mt5_trade_platform) == "MT5"
    assert hook.ping(emu.mt5_trade_platform) is True
