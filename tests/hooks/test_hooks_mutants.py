"""Hook behaviours a plausible bug would break unseen by the other hook tests (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError
from airflow_provider_cplugin.hooks.connection import check_service_url, from_connection
from airflow_provider_cplugin.hooks.envelope import ApiResponse
from airflow_provider_cplugin.hooks.paging import PageTracker
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

from .support import TOKEN_URL, envelope, v2


def test_sync_hook_logs_no_token_it_ever_used(
    emulator: EmulatorProcess, airflow_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Every token of the session (the first one and the one after a 401 refresh), not only the last."""
    caplog.set_level(logging.DEBUG)
    airflow_conn("cplugin_default", emulator.connection_json())
    hook = CPluginWebApiHook()
    issued_before = emulator.stats()["tokens_issued"]
    hook.server_time()
    first = hook.get_access_token()
    emulator.revoke_tokens()
    hook.server_time()  # 401, one refresh, re-sent
    second = hook.get_access_token()
    assert first != second and emulator.stats()["tokens_issued"] == issued_before + 2
    assert "refreshing the token" in caplog.text
    assert first not in caplog.text and second not in caplog.text
    assert emulator.client_secret not in caplog.text


def test_one_forced_refresh_per_call_even_across_retries(mock_conn: str, api: rm.Mocker, sleeps: list[float]) -> None:
    """Reference §2.6: a 401 gets one forced refresh per logical call. Here the re-sent request meets a 503, the
    retry meets 401 again: that second 401 is final, not a second refresh."""
    time_url = v2("ServerTime")
    issued = iter(range(1, 100))
    api.post(TOKEN_URL, json=lambda request, context: {"access_token": f"tok-{next(issued):05d}", "expires_in": 3600})
    api.get(time_url, [{"status_code": 401}, {"status_code": 503}, {"status_code": 401}, {"json": envelope("x")}])
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.status == 401
    token_posts = sum(1 for r in api.request_history if r.url == TOKEN_URL and r.method == "POST")
    assert token_posts == 2  # the first token and one forced refresh
    assert sum(1 for r in api.request_history if r.url.split("?")[0] == time_url) == 3
    assert len(sleeps) == 1


def _answer(data: Any, cursor: str | None, has_more: bool) -> ApiResponse:
    return ApiResponse(data=data, activity_id="a" * 32, next_cursor=cursor, has_more=has_more)


def test_a_page_of_exactly_limit_rows_is_taken_and_one_more_is_refused() -> None:
    tracker = PageTracker("GET", "/api/v2/MT4/tp/UsersRequest", limit=2)
    assert len(tracker.page(_answer([{"login": 1}, {"login": 2}], "c1", True)).items) == 2
    with pytest.raises(CPluginApiError, match=r"UsersRequest page 2: 3 rows for limit=2"):
        tracker.page(_answer([{"login": 3}, {"login": 4}, {"login": 5}], None, False))


def test_a_cursor_coming_back_after_another_is_a_loop() -> None:
    """A-B-A: the server hands out cursor c1 again two pages later (not the one just followed)."""
    tracker = PageTracker("GET", "/api/v2/MT4/tp/UsersRequest", limit=2)
    tracker.page(_answer([{"login": 1}], "c1", True))
    tracker.page(_answer([{"login": 2}], "c2", True))
    with pytest.raises(CPluginApiError, match=r"page 3: returned cursor 'c1' again"):
        tracker.page(_answer([{"login": 3}], "c1", True))


@pytest.mark.parametrize("url", ["https://user@api.example.test", "https://user:pw@api.example.test"])
def test_a_url_with_a_user_alone_is_refused_too(url: str) -> None:
    with pytest.raises(ValueError, match=r"^must not contain credentials \(user:pass@\)$"):
        check_service_url(url, allow_insecure_loopback=False)


@pytest.mark.parametrize("value", [2, -1, "2"])
def test_a_number_other_than_0_or_1_is_not_a_boolean(value: Any) -> None:
    conn = SimpleNamespace(
        host="http://127.0.0.1:8080",
        login="client",
        password="secret",
        extra_dejson={"env": "custom", "auth_url": "http://localhost:8080", "allow_insecure_loopback": value},
    )
    with pytest.raises(CPluginConfigError) as excinfo:
        from_connection(conn, "c")
    assert excinfo.value.field == "extra.allow_insecure_loopback"
