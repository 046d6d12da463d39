"""Hook test fixtures: clean process-wide token caches, a requests-mock API, a connection pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_cplugin.hooks import webapi, webapi_async
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches

API = "https://api.example.test"
AUTH = "https://auth.example.test"
TOKEN_URL = AUTH + "/connect/token"
TP = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cret-client-value"
TOKEN = "tok-abcdef-0123456789"


@pytest.fixture(autouse=True)
def _fresh_token_caches() -> Iterator[None]:
    clear_token_caches()
    yield
    clear_token_caches()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry sleeps (sync and async) recorded instead of waited."""
    recorded: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(webapi, "_sleep", recorded.append)
    monkeypatch.setattr(webapi_async, "_asleep", fake_asleep)
    return recorded


def conn_dict(**extra: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {"env": "custom", "auth_url": AUTH, "trade_platform": TP, "platform_type": "MT4"}
    extras.update(extra)
    return {"conn_type": "cplugin_webapi", "host": API, "login": "client-1", "password": SECRET, "extra": extras}


@pytest.fixture
def mock_conn(airflow_conn: Any) -> str:
    return str(airflow_conn("cplugin_default", conn_dict()))


@pytest.fixture
def api() -> Iterator[rm.Mocker]:
    """requests-mock with discovery + token endpoint answering; add API routes in the test."""
    with rm.Mocker() as mocker:
        mocker.get(AUTH + "/.well-known/openid-configuration", json={"token_endpoint": TOKEN_URL})
        mocker.post(TOKEN_URL, json={"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        yield mocker


def envelope(data: Any, *, activity: str = "a" * 32, paging: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"activityId": activity}
    if paging is not None:
        meta["paging"] = paging
    return {"data": data, "error": None, "meta": meta}


def v2(method: str) -> str:
    return f"{API}/api/v2/MT4/{TP}/{method}"
