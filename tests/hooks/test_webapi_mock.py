"""Sync hook against requests-mock: retries, 401 refresh, decoding, pagination guards, secrets in logs."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import requests_mock as rm

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError, CPluginConfigError
from airflow_provider_cplugin.hooks.paging import peek_next_cursor
from airflow_provider_cplugin.hooks.retry import RetryPolicy
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

from .support import API, SECRET, TOKEN, TOKEN_URL, TP, conn_dict, envelope, v2

pytestmark = pytest.mark.usefixtures("mock_conn")

TIME = v2("ServerTime")


def calls_to(api: rm.Mocker, url: str, method: str = "GET") -> int:
    return sum(1 for r in api.request_history if r.url.split("?")[0] == url and r.method == method)


def test_get_returns_data_and_sends_bearer(api: rm.Mocker) -> None:
    api.get(TIME, json=envelope("2026-01-01T00:00:00Z"))
    assert CPluginWebApiHook().get(TIME.removeprefix(API)) == "2026-01-01T00:00:00Z"
    sent = api.request_history[-1]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    form = dict(p.split("=") for p in api.request_history[1].text.split("&"))
    assert form["grant_type"] == "client_credentials" and form["scope"] == "webapi"


def test_request_returns_meta_and_activity(api: rm.Mocker) -> None:
    api.get(
        v2("UsersRequest"),
        json=envelope([{"login": 1}], activity="f" * 32, paging={"nextCursor": "c1", "hasMore": True}),
    )
    response = CPluginWebApiHook().request("GET", v2("UsersRequest").removeprefix(API), params={"limit": 1})
    assert response.data == [{"login": 1}]
    assert response.activity_id == "f" * 32
    assert (response.next_cursor, response.has_more, response.status) == ("c1", True, 200)


def test_token_reused_across_hooks(api: rm.Mocker) -> None:
    api.get(TIME, json=envelope("t"))
    for _ in range(3):
        CPluginWebApiHook().server_time()
    assert calls_to(api, TOKEN_URL, "POST") == 1
    assert calls_to(api, TIME) == 3


def test_429_retry_after_is_honoured(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, [{"status_code": 429, "headers": {"Retry-After": "3"}, "text": ""}, {"json": envelope("ok")}])
    assert CPluginWebApiHook().server_time() == "ok"
    assert sleeps == [3.0]
    assert calls_to(api, TIME) == 2


def test_retry_after_http_date_and_cap(api: rm.Mocker, sleeps: list[float]) -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    api.get(
        TIME,
        [
            {"status_code": 503, "headers": {"Retry-After": soon}},
            {"status_code": 503, "headers": {"Retry-After": "3600"}},
            {"json": envelope("ok")},
        ],
    )
    assert CPluginWebApiHook().server_time() == "ok"
    assert 3.0 <= sleeps[0] <= 5.0
    assert sleeps[1] == 10.0  # capped at maxDelay


def test_503_burst_then_success_with_jittered_backoff(api: rm.Mocker, sleeps: list[float], airflow_conn: Any) -> None:
    airflow_conn("cplugin_default", conn_dict(max_attempts=5))
    api.get(TIME, [{"status_code": 503}] * 4 + [{"json": envelope("ok")}])
    assert CPluginWebApiHook().server_time() == "ok"
    assert len(sleeps) == 4
    ratios = [slept / min(0.5 * 2 ** (attempt - 1), 10.0) for attempt, slept in enumerate(sleeps, start=1)]
    assert all(0.75 <= r <= 1.25 for r in ratios)
    # Jittered: no two sleeps share their factor (zero or constant jitter gives four equal ratios; the chance of a
    # tie with real jitter is nil).
    assert len({round(r, 9) for r in ratios}) == 4


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_retries_exhausted_gives_typed_error_with_status(api: rm.Mocker, sleeps: list[float], status: int) -> None:
    api.get(TIME, status_code=status, text="busy")
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    err = excinfo.value
    assert err.status == status and err.code == "Internal" and err.method == "GET"
    assert calls_to(api, TIME) == 3 and len(sleeps) == 2


def test_500_and_envelope_errors_are_not_retried(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, status_code=500, json={"data": None, "error": {"code": "Internal", "message": "x"}, "meta": {}})
    with pytest.raises(CPluginApiError):
        CPluginWebApiHook().server_time()
    assert calls_to(api, TIME) == 1 and sleeps == []


def test_envelope_error_at_http_200(api: rm.Mocker) -> None:
    api.get(
        v2("UserRecordGet/5"),
        json={
            "data": None,
            "error": {"code": "MT4Error", "managerCode": "TradeNoMoney", "message": "no money"},
            "meta": {"activityId": "b" * 32},
        },
    )
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().get(CPluginWebApiHook().v2_path("UserRecordGet", 5))
    err = excinfo.value
    assert (err.code, err.description, err.manager_code, err.activity_id, err.status) == (
        "MT4Error",
        "no money",
        "TradeNoMoney",
        "b" * 32,
        200,
    )


@pytest.mark.parametrize(
    ("status", "code"), [(401, "Forbidden"), (403, "Forbidden"), (404, "NotFound"), (500, "Internal")]
)
def test_http_errors_without_envelope(api: rm.Mocker, status: int, code: str) -> None:
    api.post(v2("Thing"), status_code=status, text="<html>nope</html>")
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().request("POST", v2("Thing").removeprefix(API), json={})
    assert (excinfo.value.code, excinfo.value.status, excinfo.value.description) == (code, status, f"HTTP {status}")


def test_malformed_json_is_a_clear_error(api: rm.Mocker) -> None:
    api.get(TIME, text="<html>gateway page</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    message = str(excinfo.value)
    assert "malformed JSON" in message and "HTTP 200" in message and "<html>gateway page" in message
    assert "text/html" in message


def test_v2_body_that_is_not_an_envelope(api: rm.Mocker) -> None:
    api.get(TIME, json=[1, 2])
    with pytest.raises(CPluginApiError, match="not a WebAPI envelope"):
        CPluginWebApiHook().server_time()


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_writes_not_retried_on_503_even_with_idempotency_key(api: rm.Mocker, sleeps: list[float], method: str) -> None:
    url = v2("AdmTradeRecordModify/7")
    api.register_uri(method, url, status_code=503, headers={"Retry-After": "1"})
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().request(method, url.removeprefix(API), json={"order": 7}, idempotency_key="k-1")
    assert excinfo.value.status == 503
    assert calls_to(api, url, method) == 1 and sleeps == []
    assert api.request_history[-1].headers["Idempotency-Key"] == "k-1"
    assert api.request_history[-1].json() == {"order": 7}


def test_post_not_resent_on_401(api: rm.Mocker) -> None:
    url = v2("AdmTradeRecordModify/7")
    api.post(url, status_code=401)
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().request("POST", url.removeprefix(API), json={})
    assert (excinfo.value.code, excinfo.value.status) == ("Forbidden", 401)
    assert calls_to(api, url, "POST") == 1
    assert calls_to(api, TOKEN_URL, "POST") == 1


def test_get_401_forces_one_refresh_then_succeeds(api: rm.Mocker) -> None:
    api.post(
        TOKEN_URL,
        [{"json": {"access_token": "old", "expires_in": 3600}}, {"json": {"access_token": "new", "expires_in": 3600}}],
    )
    api.get(TIME, [{"status_code": 401}, {"json": envelope("ok")}])
    assert CPluginWebApiHook().server_time() == "ok"
    auth = [r.headers["Authorization"] for r in api.request_history if r.url.startswith(TIME)]
    assert auth == ["Bearer old", "Bearer new"]


def test_get_401_twice_fails_after_one_refresh(api: rm.Mocker) -> None:
    api.get(TIME, status_code=401)
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.status == 401
    assert calls_to(api, TOKEN_URL, "POST") == 2 and calls_to(api, TIME) == 2


def test_redirect_is_an_error_not_followed(api: rm.Mocker) -> None:
    api.get(TIME, status_code=302, headers={"Location": "https://elsewhere.test/x"})
    api.get("https://elsewhere.test/x", json=envelope("should not be reached"))
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.status == 302 and "redirect" in str(excinfo.value)
    assert calls_to(api, "https://elsewhere.test/x") == 0


def test_network_errors_retried_then_transport_error(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, exc=requests.ConnectionError("connection refused"))
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.code == "Transport" and "3 attempt" in str(excinfo.value)
    assert calls_to(api, TIME) == 3 and len(sleeps) == 2


def test_network_error_then_success(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, [{"exc": requests.ConnectionError("reset")}, {"json": envelope("ok")}])
    assert CPluginWebApiHook().server_time() == "ok"


def test_timeout_is_not_retried(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, exc=requests.ReadTimeout("slow"))
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.code == "Timeout" and calls_to(api, TIME) == 1


def test_retry_never_sleeps_past_the_deadline(api: rm.Mocker, sleeps: list[float], airflow_conn: Any) -> None:
    airflow_conn("cplugin_default", conn_dict(timeout=2, max_attempts=5))
    api.get(TIME, status_code=503, headers={"Retry-After": "5"})
    with pytest.raises(CPluginApiError) as excinfo:
        CPluginWebApiHook().server_time()
    assert excinfo.value.status == 503
    assert sleeps == [] and calls_to(api, TIME) == 1


def test_retry_policy_override(api: rm.Mocker, sleeps: list[float]) -> None:
    api.get(TIME, status_code=503)
    with pytest.raises(CPluginApiError):
        CPluginWebApiHook(retry_policy=RetryPolicy(max_attempts=1)).server_time()
    assert calls_to(api, TIME) == 1


def test_auth_errors(api: rm.Mocker) -> None:
    api.post(
        TOKEN_URL,
        status_code=400,
        json={"error": "invalid_client", "error_description": "Invalid client"},
        headers={"x-request-id": "rq9"},
    )
    with pytest.raises(CPluginAuthError) as excinfo:
        CPluginWebApiHook().server_time()
    assert (excinfo.value.error_code, excinfo.value.request_id, excinfo.value.status) == ("invalid_client", "rq9", 400)


def test_failed_discovery_is_forgotten(api: rm.Mocker) -> None:
    discovery = "https://auth.example.test/.well-known/openid-configuration"
    api.get(discovery, [{"status_code": 503}, {"json": {"token_endpoint": TOKEN_URL}}])
    api.get(TIME, json=envelope("ok"))
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginAuthError, match="discovery_failed"):
        hook.server_time()
    assert hook.server_time() == "ok"
    assert hook.server_time() == "ok"
    assert calls_to(api, discovery) == 2


def test_params_repeated_keys_and_path_encoding(api: rm.Mocker) -> None:
    api.get(re.compile(re.escape(API) + "/api/v2/"), json=envelope([]))
    hook = CPluginWebApiHook()
    path = hook.v2_path("UserRecordsRequest", trade_platform=TP, platform_type="MT4")
    hook.get(path, params={"logins": [1001, 1002], "flag": True, "skip": None})
    assert api.request_history[-1].qs == {"logins": ["1001", "1002"], "flag": ["true"]}
    assert hook.v2_path("AdmUsersRequestSafe", "real\\*") == f"/api/v2/MT4/{TP}/AdmUsersRequestSafe/real%5C*"
    assert hook.v2_path("GroupRecordGet/a b", platform_type="MT5") == f"/api/v2/MT5/{TP}/GroupRecordGet/a%20b"


def test_caller_cannot_override_authorization(api: rm.Mocker) -> None:
    api.get(TIME, json=envelope("ok"))
    CPluginWebApiHook().request("GET", TIME.removeprefix(API), headers={"Authorization": "Basic x", "X-Trace": "1"})
    assert api.request_history[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert api.request_history[-1].headers["X-Trace"] == "1"


# -- pagination ------------------------------------------------------------------------------------------------


def page_reply(items: list[int], cursor: str | None, has_more: bool | None = None) -> dict[str, Any]:
    more = cursor is not None if has_more is None else has_more
    return {"json": envelope([{"login": i} for i in items], paging={"nextCursor": cursor, "hasMore": more})}


def test_paginate_follows_cursors(api: rm.Mocker) -> None:
    api.get(v2("UsersRequest"), [page_reply([1, 2], "c1"), page_reply([3, 4], "c2"), page_reply([5], None)])
    hook = CPluginWebApiHook()
    pages = list(hook.paginate(hook.v2_path("UsersRequest"), params={"group": "real"}, limit=2))
    assert [p.number for p in pages] == [1, 2, 3]
    assert [i["login"] for p in pages for i in p.items] == [1, 2, 3, 4, 5]
    assert [p.next_cursor for p in pages] == ["c1", "c2", None]
    sent = [r.qs for r in api.request_history if "UsersRequest" in r.url]
    assert sent == [
        {"group": ["real"], "limit": ["2"]},
        {"group": ["real"], "limit": ["2"], "cursor": ["c1"]},
        {"group": ["real"], "limit": ["2"], "cursor": ["c2"]},
    ]


def test_paginate_stops_on_has_more_false_even_with_cursor(api: rm.Mocker) -> None:
    api.get(v2("UsersRequest"), [page_reply([1], "c1", has_more=False), page_reply([2], None)])
    hook = CPluginWebApiHook()
    assert len(list(hook.paginate(hook.v2_path("UsersRequest")))) == 1


def test_paginate_refuses_an_empty_cursor_with_has_more(api: rm.Mocker) -> None:
    # An empty cursor is no cursor: with hasMore true, stopping would drop the rest of the list (tests/hooks/
    # test_paging.py has the other refusals).
    api.get(v2("UsersRequest"), [page_reply([1], "", has_more=True), page_reply([2], None)])
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError, match=r"UsersRequest page 1: meta\.paging\.hasMore is true but nextCursor"):
        list(hook.paginate(hook.v2_path("UsersRequest")))


def test_paginate_repeated_cursor_is_an_error(api: rm.Mocker) -> None:
    api.get(v2("UsersRequest"), [page_reply([1], "c1"), page_reply([2], "c2"), page_reply([3], "c1")])
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError, match="cursor 'c1' again"):
        list(hook.paginate(hook.v2_path("UsersRequest")))


def test_paginate_recovers_from_a_wrong_cursor_guess(api: rm.Mocker) -> None:
    # ``meta`` first and a record carrying a ``nextCursor`` key last: the peek guesses "decoy", the decoded page
    # says "c1"; the decoy's reply is dropped and paging continues from c1 without losing or repeating a page.
    first = (
        '{"meta":{"paging":{"nextCursor":"c1","hasMore":true}},"error":null,'
        '"data":[{"login":1,"x":{"nextCursor":"decoy"}}]}'
    )
    decoy = json.dumps(envelope([{"login": 99}], paging={"nextCursor": None, "hasMore": False}))
    api.get(v2("UsersRequest"), text=lambda request, context: decoy)
    api.get(v2("UsersRequest") + "?limit=5000", complete_qs=True, text=first)
    api.get(v2("UsersRequest") + "?limit=5000&cursor=c1", complete_qs=True, **page_reply([2], None))
    hook = CPluginWebApiHook()
    pages = list(hook.paginate(hook.v2_path("UsersRequest")))
    assert [i["login"] for p in pages for i in p.items] == [1, 2]
    assert [p.number for p in pages] == [1, 2]
    assert peek_next_cursor(first) == "decoy"  # the guess was wrong (its request may be cancelled before it leaves)


def test_slow_consumer_does_not_turn_pages_fetched_ahead_into_timeouts(api: rm.Mocker, airflow_conn: Any) -> None:
    airflow_conn("cplugin_default", json.dumps(conn_dict(timeout=1)))
    api.get(v2("UsersRequest"), [page_reply([1], "c1"), page_reply([2], "c2"), page_reply([3], None)])
    hook = CPluginWebApiHook()
    logins = []
    for page in hook.paginate(hook.v2_path("UsersRequest")):
        logins += [i["login"] for i in page.items]
        time.sleep(1.2)  # longer than the call timeout, while the next page waits, already fetched
    assert logins == [1, 2, 3]


def test_identity_server_calls_ignore_netrc(api: rm.Mocker, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".netrc").write_text("default login someone password netrc-secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    api.get(TIME, json=envelope("ok"))
    CPluginWebApiHook().request("GET", TIME.removeprefix(API))
    auth_calls = [r for r in api.request_history if r.url.startswith(TOKEN_URL) or "openid" in r.url]
    assert auth_calls and all("Authorization" not in r.headers for r in auth_calls)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"data":[1],"meta":{"paging":{"nextCursor":"abc","hasMore":true}}}', "abc"),
        ('{"meta":{"paging":{"nextCursor" : "head"}},"data":[1]}', "head"),
        ('{"data":[1],"meta":{"paging":{"nextCursor":null,"hasMore":false}}}', None),
        ('{"data":[1],"meta":{"paging":{"nextCursor":"a\\u0041","hasMore":true}}}', None),
        ('{"data":[{"note":"\\"nextCursor\\":\\"x\\""}],"meta":{}}', None),
        ('{"data":[1],"meta":{}}', None),
    ],
)
def test_peek_next_cursor(body: str, expected: str | None) -> None:
    assert peek_next_cursor(body) == expected


def test_peek_reads_only_the_ends_of_a_body() -> None:
    middle = '{"data":[' + "1," * 3000 + '{"nextCursor":"inner"},' + "1," * 3000 + "1]}"
    assert peek_next_cursor(middle) is None


def test_paginate_limit_bounds() -> None:
    hook = CPluginWebApiHook()
    for bad in (0, 5001):
        with pytest.raises(ValueError, match="limit"):
            next(hook.paginate("/api/v2/MT4/x/UsersRequest", limit=bad))


# -- trade platforms -------------------------------------------------------------------------------------------


MT5_TP = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"


@pytest.mark.parametrize(("kind", "expected"), [("MT5", "MT5"), ("mt4", "MT4"), (5, "MT5"), ("MetaTrader 4", "MT4")])
def test_platform_type_from_trade_platforms(api: rm.Mocker, kind: object, expected: str) -> None:
    api.get(API + "/api/TradePlatforms", json=[{"id": TP, "type": "MT4"}, {"id": MT5_TP.upper(), "type": kind}])
    hook = CPluginWebApiHook()
    assert hook.platform_type_of(MT5_TP) == expected
    assert hook.platform_type_of(MT5_TP) == expected
    assert calls_to(api, API + "/api/TradePlatforms") == 1  # cached per hook
    assert hook.platform_type_of() == "MT4"  # connection extra for its own platform


def test_ambiguous_platform_type_asks_for_extra(api: rm.Mocker) -> None:
    api.get(API + "/api/TradePlatforms", json=[{"id": MT5_TP, "type": 1}])
    with pytest.raises(CPluginConfigError) as excinfo:
        CPluginWebApiHook().platform_type_of(MT5_TP)
    assert excinfo.value.field == "extra.platform_type"


def test_unknown_trade_platform(api: rm.Mocker) -> None:
    api.get(API + "/api/TradePlatforms", json=[{"id": TP, "type": "MT4"}])
    with pytest.raises(CPluginConfigError, match="not visible"):
        CPluginWebApiHook().platform_type_of(MT5_TP)


def test_trade_platforms_must_be_an_array(api: rm.Mocker) -> None:
    api.get(API + "/api/TradePlatforms", json={"items": []})
    with pytest.raises(CPluginApiError, match="invalid payload"):
        CPluginWebApiHook().trade_platforms()


def test_ping_bare_json(api: rm.Mocker) -> None:
    api.get(f"{API}/api/TradePlatforms/{TP}/Ping", json=True)
    assert CPluginWebApiHook().ping() is True


def test_test_connection_messages(api: rm.Mocker, airflow_conn: Any) -> None:
    api.get(API + "/api/TradePlatforms", json=[{"id": TP, "name": "Demo", "type": "MT4"}])
    api.get(f"{API}/api/TradePlatforms/{TP}/Ping", json=True)
    ok, message = CPluginWebApiHook().test_connection()
    assert ok and "1 trade platform" in message and "Demo (MT4)" in message and "ping" in message

    api.post(TOKEN_URL, status_code=400, json={"error": "invalid_client"})
    ok, message = CPluginWebApiHook().test_connection()
    assert not ok and "invalid_client" in message and "client secret" in message

    value = conn_dict()
    value.pop("password")
    airflow_conn("cplugin_default", value)
    ok, message = CPluginWebApiHook().test_connection()
    assert not ok and "'password'" in message


# -- secrets ---------------------------------------------------------------------------------------------------


def test_secret_and_token_never_logged(api: rm.Mocker, caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_cplugin"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    api.get(TIME, [{"status_code": 503}, {"status_code": 401}, {"json": envelope("ok")}])
    api.post(v2("X"), status_code=400, json={"data": None, "error": {"code": "Validation", "message": "m"}, "meta": {}})
    hook = CPluginWebApiHook()
    hook.server_time()
    with pytest.raises(CPluginApiError):
        hook.request("POST", v2("X").removeprefix(API), json={})
    assert caplog.records, "expected request log lines"
    text = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    assert SECRET not in text and TOKEN not in text and "Bearer" not in text
    assert SECRET not in repr(hook) and TOKEN not in repr(hook)
    assert any("ServerTime -> HTTP 200" in r.getMessage() for r in caplog.records)


def test_get_access_token(api: rm.Mocker) -> None:
    hook = CPluginWebApiHook()
    assert hook.get_access_token() == TOKEN
    assert TOKEN not in repr(hook.token_cache.valid_token())
