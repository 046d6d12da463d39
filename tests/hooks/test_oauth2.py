"""OAuth2 pure logic: discovery/token parsing, redaction, TokenCache skew and single-flight."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from airflow_provider_cplugin.exceptions import CPluginAuthError
from airflow_provider_cplugin.hooks.connection import Secret
from airflow_provider_cplugin.hooks.oauth2 import (
    TokenCache,
    TokenGrant,
    effective_skew,
    parse_discovery,
    parse_token_reply,
    token_form,
)
from airflow_provider_cplugin.hooks.reply import Reply

AUTH = "https://auth.example.test"
SECRET = Secret("top-secret-value")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def grant(value: str = "t1", expires_in: float = 3600) -> TokenGrant:
    return TokenGrant(Secret(value), expires_in)


# -- discovery ------------------------------------------------------------------------------------------------


def test_discovery_ok() -> None:
    reply = Reply(200, json.dumps({"token_endpoint": AUTH + "/connect/token"}))
    assert parse_discovery(reply, AUTH, False) == AUTH + "/connect/token"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(500, "boom"), "discovery_failed"),
        (Reply(302, "", {"Location": "https://elsewhere"}), "discovery_failed"),
        (Reply(200, "{}"), "discovery_invalid"),
        (Reply(200, "not json"), "discovery_invalid"),
        (Reply(200, json.dumps({"token_endpoint": 5})), "discovery_invalid"),
        (Reply(200, json.dumps({"token_endpoint": "https://evil.test/connect/token"})), "discovery_invalid"),
        (Reply(200, json.dumps({"token_endpoint": "http://auth.example.test/connect/token"})), "discovery_invalid"),
        (Reply(200, json.dumps({"token_endpoint": "https://auth.example.test:8443/token"})), "discovery_invalid"),
    ],
)
def test_discovery_errors(reply: Reply, code: str) -> None:
    with pytest.raises(CPluginAuthError) as excinfo:
        parse_discovery(reply, AUTH, False)
    assert excinfo.value.error_code == code


def test_discovery_loopback_http_needs_opt_in() -> None:
    reply = Reply(200, json.dumps({"token_endpoint": "http://127.0.0.1:5/connect/token"}))
    assert parse_discovery(reply, "http://127.0.0.1:5", True) == "http://127.0.0.1:5/connect/token"
    with pytest.raises(CPluginAuthError, match="discovery_invalid"):
        parse_discovery(reply, "http://127.0.0.1:5", False)


# -- token request --------------------------------------------------------------------------------------------


def test_token_form_space_joins_scopes_and_omits_empty() -> None:
    form = token_form("cid", SECRET, ("webapi", "extra"))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "top-secret-value",
        "scope": "webapi extra",
    }
    assert "scope" not in token_form("cid", SECRET, ())


def test_token_ok() -> None:
    got = parse_token_reply(Reply(200, json.dumps({"access_token": "abc", "expires_in": 60})), SECRET)
    assert got.access_token.reveal() == "abc" and got.expires_in == 60


def test_oauth_error_fields() -> None:
    reply = Reply(
        400, json.dumps({"error": "invalid_client", "error_description": "bad creds"}), {"X-Request-Id": "r-1"}
    )
    with pytest.raises(CPluginAuthError) as excinfo:
        parse_token_reply(reply, SECRET)
    err = excinfo.value
    assert (err.error_code, err.error_description, err.status, err.request_id) == (
        "invalid_client",
        "bad creds",
        400,
        "r-1",
    )
    assert str(err) == "OAuth2 token error (invalid_client): bad creds | x-request-id=r-1"


def test_non_oauth_error_body_is_excerpted_and_redacted() -> None:
    body = "proxy says: client_id=cid&client_secret=top-secret-value&scope=webapi " + "x" * 1000
    with pytest.raises(CPluginAuthError) as excinfo:
        parse_token_reply(Reply(502, body), SECRET)
    err = excinfo.value
    assert "top-secret-value" not in str(err)
    assert "client_secret=<redacted>" in (err.error_description or "")
    assert len(err.error_description or "") <= 520
    assert err.error_code is None and "(502)" in str(err)


def test_echoed_secret_anywhere_is_redacted() -> None:
    body = json.dumps({"error": "invalid_client", "error_description": "secret top-secret-value is wrong"})
    with pytest.raises(CPluginAuthError) as excinfo:
        parse_token_reply(Reply(401, body), SECRET)
    assert "top-secret-value" not in str(excinfo.value)


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 60},
        {"access_token": "a"},
        {"access_token": "a", "expires_in": 0},
        {"access_token": "a", "expires_in": "60"},
        {"access_token": 5, "expires_in": 60},
        "not json",
    ],
)
def test_invalid_token_response(body: object) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(CPluginAuthError) as excinfo:
        parse_token_reply(Reply(200, text), SECRET)
    assert excinfo.value.error_code == "invalid_response"


# -- cache ----------------------------------------------------------------------------------------------------


def test_skew_clamp() -> None:
    assert effective_skew(60, 3600) == 60
    assert effective_skew(60, 240) == 60
    assert effective_skew(60, 120) == 30
    assert effective_skew(60, 2) == 0.5
    assert effective_skew(0, 2) == 0


def test_reuse_until_skew_then_refresh() -> None:
    clock = Clock()
    cache = TokenCache(skew=60, clock=clock)
    calls: list[int] = []

    def fetch() -> TokenGrant:
        calls.append(1)
        return grant(f"t{len(calls)}", 3600)

    assert cache.get(fetch).reveal() == "t1"
    clock.now += 3600 - 61
    assert cache.get(fetch).reveal() == "t1"
    clock.now += 1  # exactly 60 s left: no longer "> skew"
    assert cache.get(fetch).reveal() == "t2"
    assert len(calls) == 2


def test_short_token_is_reused_for_three_quarters_of_its_life() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    fetched: list[str] = []

    def fetch() -> TokenGrant:
        fetched.append("x")
        return grant(f"t{len(fetched)}", 2)

    cache.get(fetch)
    clock.now += 1.4
    cache.get(fetch)
    assert len(fetched) == 1
    clock.now += 0.2
    cache.get(fetch)
    assert len(fetched) == 2


def test_force_refresh_and_invalidate() -> None:
    cache = TokenCache()
    values = iter(["a", "b", "c"])
    assert cache.get(lambda: grant(next(values))).reveal() == "a"
    assert cache.get(lambda: grant(next(values)), force_refresh=True).reveal() == "b"
    cache.invalidate()
    assert cache.get(lambda: grant(next(values))).reveal() == "c"


def test_failed_fetch_keeps_nothing_and_next_call_retries() -> None:
    cache = TokenCache()

    def boom() -> TokenGrant:
        raise CPluginAuthError("invalid_client")

    with pytest.raises(CPluginAuthError):
        cache.get(boom)
    assert cache.get(lambda: grant("ok")).reveal() == "ok"


@pytest.mark.parametrize("force", [False, True])
def test_sixteen_threads_one_request(force: bool) -> None:
    cache = TokenCache()
    calls = 0
    barrier = threading.Barrier(16)

    def fetch() -> TokenGrant:
        nonlocal calls
        calls += 1
        time.sleep(0.05)  # keep the request in flight while the others arrive
        return grant(f"t{calls}")

    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get(fetch, force_refresh=force).reveal())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    assert results == ["t1"] * 16


async def test_async_single_flight() -> None:
    cache = TokenCache()
    calls = 0

    async def fetch() -> TokenGrant:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return grant("t")

    got = await asyncio.gather(*[cache.aget(fetch) for _ in range(16)])
    assert calls == 1 and {g.reveal() for g in got} == {"t"}
    forced = await asyncio.gather(*[cache.aget(fetch, force_refresh=True) for _ in range(8)])
    assert calls == 2 and len({id(f) for f in forced}) == 1


def test_rejected_token_refreshed_only_once() -> None:
    cache = TokenCache()
    values = iter(["a", "b", "c"])
    first = cache.get(lambda: grant(next(values)))
    # Two callers got 401 with token "a": the first replaces it, the second reuses the replacement.
    assert cache.get(lambda: grant(next(values)), rejected=first).reveal() == "b"
    assert cache.get(lambda: grant(next(values)), rejected=first).reveal() == "b"
    assert cache.get(lambda: grant(next(values)), rejected=Secret("b")).reveal() == "c"


def test_sixteen_threads_rejecting_the_same_token_refresh_once() -> None:
    cache = TokenCache()
    old = cache.get(lambda: grant("old"))
    calls = 0
    barrier = threading.Barrier(16)

    def fetch() -> TokenGrant:
        nonlocal calls
        calls += 1
        return grant(f"new{calls}")

    def worker() -> None:
        barrier.wait()
        cache.get(fetch, rejected=old)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
