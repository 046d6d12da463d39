from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from emulator_support import MT4, Api, ClientFactory, get_token

from airflow_provider_cplugin.emulator.tokens import TokenStore


async def test_discovery_points_to_same_origin(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/.well-known/openid-configuration")
    assert resp.status == 200
    doc = await resp.json()
    origin = str(client.make_url("")).rstrip("/")
    assert doc["token_endpoint"] == origin + "/connect/token"
    assert doc["issuer"] == origin
    assert "client_credentials" in doc["grant_types_supported"]


async def test_discovery_follows_the_host_header(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/.well-known/openid-configuration", headers={"Host": "localhost:9999"})
    assert (await resp.json())["token_endpoint"] == "http://localhost:9999/connect/token"


async def test_token_success_shape(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "cplugin-demo",
            "client_secret": "cplugin-demo-secret",
            "scope": "webapi",
        },
    )
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "webapi"
    assert body["access_token"].count(".") == 2  # JWT-looking


async def test_token_lifetime_is_configurable(make_client: ClientFactory) -> None:
    client = await make_client(token_lifetime=5)
    resp = await client.post(
        "/connect/token",
        data={"grant_type": "client_credentials", "client_id": "cplugin-demo", "client_secret": "cplugin-demo-secret"},
    )
    assert (await resp.json())["expires_in"] == 5


async def test_wrong_secret_is_invalid_client(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/connect/token",
        data={"grant_type": "client_credentials", "client_id": "cplugin-demo", "client_secret": "nope"},
    )
    assert resp.status == 400
    assert resp.headers["x-request-id"]
    body = await resp.json()
    assert body["error"] == "invalid_client" and body["error_description"]


async def test_wrong_secret_via_basic_auth_is_401(client: TestClient[Any, Any]) -> None:
    import base64

    basic = base64.b64encode(b"cplugin-demo:nope").decode()
    resp = await client.post(
        "/connect/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_client"


async def test_unsupported_grant_type(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/connect/token", data={"grant_type": "password", "client_id": "cplugin-demo", "client_secret": "x"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "unsupported_grant_type"
    assert resp.headers["x-request-id"]


async def test_unknown_scope_is_rejected(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "cplugin-demo",
            "client_secret": "cplugin-demo-secret",
            "scope": "admin",
        },
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_scope"


async def test_api_without_or_with_bad_token_is_bare_401(client: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        resp = await client.get(f"/api/v2/MT4/{MT4}/ServerTime", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await resp.read() == b""  # no envelope
    resp = await client.get("/api/TradePlatforms")
    assert resp.status == 401


async def test_expired_token_is_401(make_client: ClientFactory) -> None:
    client = await make_client(token_lifetime=1)
    token = await get_token(client)
    api = Api(client, token)
    assert (await api.raw("GET", f"/api/v2/MT4/{MT4}/ServerTime")).status == 200
    await asyncio.sleep(1.1)
    resp = await api.raw("GET", f"/api/v2/MT4/{MT4}/ServerTime")
    assert resp.status == 401
    assert "expired" in resp.headers["WWW-Authenticate"]


def test_token_store_expiry_and_revocation_with_fake_clock() -> None:
    now = [1000.0]
    store = TokenStore(lifetime=60, clock=lambda: now[0])
    token, expires_in = store.issue("c", "webapi", "http://127.0.0.1")
    assert expires_in == 60 and store.validate(token)
    now[0] += 59.9
    assert store.validate(token)
    now[0] += 0.2
    assert store.status(token) == "expired" and not store.validate(token)
    fresh, _ = store.issue("c", "webapi", "http://127.0.0.1")
    assert store.revoke_all() == 2
    assert store.status(fresh) == "unknown" and not store.validate(None)
