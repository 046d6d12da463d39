"""Hook test fixtures: clean process-wide token caches, recorded retry sleeps, a requests-mock API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_cplugin.hooks import webapi, webapi_async
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches

from .support import AUTH, TOKEN, TOKEN_URL, conn_dict


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
