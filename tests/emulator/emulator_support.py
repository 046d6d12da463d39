"""Shared test helpers: pinned config, token helper, envelope-checking API wrapper."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from airflow_provider_cplugin.emulator.config import EmulatorConfig

ANCHOR = 1_767_225_600  # 2026-01-01T00:00:00Z: pinned so expected data is reproducible
MT4 = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
MT5 = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
HEX32 = re.compile(r"^[0-9a-f]{32}$")

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def make_config(**overrides: Any) -> EmulatorConfig:
    # No quirks unless a test asks: these tests pin the default shapes even under $CPLUGIN_EMULATOR_QUIRKS.
    return EmulatorConfig(**{"anchor": ANCHOR, "mt4_users": 1000, "mt5_users": 200, "quirks": (), **overrides})


async def get_token(client: TestClient[Any, Any], secret: str = "cplugin-demo-secret") -> str:
    resp = await client.post(
        "/connect/token",
        data={"grant_type": "client_credentials", "client_id": "cplugin-demo", "client_secret": secret},
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


class Api:
    """Authenticated GET/POST returning the decoded envelope (asserting HTTP 200 + envelope shape)."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def raw(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.client.request(method, path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = await self.raw(method, path, **kwargs)
        assert resp.status == 200, (resp.status, await resp.text())
        body: dict[str, Any] = await resp.json()
        assert set(body) == {"data", "error", "meta"}
        assert HEX32.match(body["meta"]["activityId"])
        if body["error"] is not None:
            assert body["data"] is None
            assert set(body["error"]) == {"code", "managerCode", "message"}
        return body

    async def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self.call("POST", path, **kwargs)

    async def data(self, path: str, **kwargs: Any) -> Any:
        body = await self.get(path, **kwargs)
        assert body["error"] is None, body["error"]
        return body["data"]

    async def pages(self, path: str, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Follow the cursor to the end; returns (rows, number of pages) and checks paging invariants."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        n = 0
        while True:
            query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
            body = await self.get(path, params=query)
            assert body["error"] is None, body["error"]
            paging = body["meta"]["paging"]
            assert paging["hasMore"] == (paging["nextCursor"] is not None)
            assert len(body["data"]) <= limit
            if paging["hasMore"]:
                assert len(body["data"]) == limit
            rows.extend(body["data"])
            n += 1
            cursor = paging["nextCursor"]
            if not cursor:
                return rows, n
