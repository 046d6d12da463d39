"""The emulator speaks SignalR as ASP.NET Core does: negotiate body, handshake versions, SSE framing, status codes,
token expiry on live connections, case-insensitive routes and hub methods, the v1 MT4 hub and MT5 OnMarginCall.

Raw HTTP/WebSocket here (no SignalR client library), so each assertion is about the bytes on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from emulator_support import MT4, MT5, ClientFactory, get_token

from airflow_provider_cplugin.emulator.hubs import get_hubs
from airflow_provider_cplugin.emulator.hubs.feeds import Mt5MarginCallFeed, now_ticks

pytestmark = pytest.mark.timeout(60)
RS = "\x1e"
V2 = f"/hubs/mt4/v2?tradePlatform={MT4}"


async def _configure(client: TestClient[Any, Any], **settings: float) -> None:
    fast = {"keep_alive_s": 0.2, "client_timeout_s": 10.0, "token_check_s": 0.05, **settings}
    resp = await client.post("/_emulator/hub-config", json={"rates": {"ticks": 400}, "settings": fast})
    assert resp.status == 200, await resp.text()


async def _negotiate(client: TestClient[Any, Any], path: str, token: str, query: str = "") -> Any:
    resp = await client.post(f"{path.split('?')[0]}/negotiate?{path.partition('?')[2]}{query}", headers=_auth(token))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(r) for r in text.split(RS) if r]


async def _ws(client: TestClient[Any, Any], path: str, token: str | None, version: int = 1) -> Any:
    """A WebSocket connected (skipNegotiation) and past the handshake; returns (socket, handshake answer)."""
    sep = "&" if "?" in path else "?"
    ws = await client.ws_connect(path + (f"{sep}access_token={token}" if token else ""))
    await ws.send_str(json.dumps({"protocol": "json", "version": version}) + RS)
    return ws, _records(await ws.receive_str())


async def _until(predicate: Callable[[], bool], wait_s: float = 10.0) -> None:
    """Poll a server-side counter (the server notices a closed SSE request on its next write or 1 s check)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _until_event(ws: Any, target: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(found) < count:
            found += [m for m in _records(await ws.receive_str()) if m.get("target") == target]
    return found


async def test_negotiate_writes_the_version_like_aspnet_core(client: TestClient[Any, Any]) -> None:
    token = await get_token(client)
    v0 = await _negotiate(client, V2, token)
    # signalrcore sends no negotiateVersion and refuses an answer without one.
    assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0 and v0["connectionId"]
    assert [t["transport"] for t in v0["availableTransports"]] == ["WebSockets", "ServerSentEvents", "LongPolling"]
    assert v0["availableTransports"][1]["transferFormats"] == ["Text"]
    v1 = await _negotiate(client, V2, token, "&NEGOTIATEVERSION=5")  # query keys are case-insensitive
    assert v1["negotiateVersion"] == 1 and v1["connectionToken"] != v1["connectionId"]
    assert await _negotiate(client, V2, token, "&negotiateVersion=x") == {
        "error": "The client requested a non-integer protocol version."
    }
    assert "version '-1'" in (await _negotiate(client, V2, token, "&negotiateVersion=-1"))["error"]


@pytest.mark.parametrize(("protocol", "version", "error"), [
    ("json", 0, None),
    ("json", 1, None),
    ("JSON", 2, None),
    ("json", 3, "The server does not support version 3 of the 'json' protocol."),
    ("messagepack", 1, "The protocol 'messagepack' is not supported."),
])  # fmt: skip
async def test_handshake_versions(client: TestClient[Any, Any], protocol: str, version: int, error: str | None) -> None:
    token = await get_token(client)
    ws = await client.ws_connect(f"{V2}&access_token={token}")
    await ws.send_str(json.dumps({"protocol": protocol, "version": version}) + RS)
    answer = _records(await ws.receive_str())[0]
    assert answer == ({} if error is None else {"error": error})
    await ws.close()


async def test_live_connection_outlives_its_token_unless_the_fault_switch_is_on(make_client: ClientFactory) -> None:
    client = await make_client(token_lifetime=1)
    await _configure(client)
    hubs = get_hubs(client.server.app)
    ws, _ = await _ws(client, V2, await get_token(client))
    await ws.send_str(
        json.dumps({"type": 1, "invocationId": "1", "target": "SubscribeToTicks", "arguments": ["EURUSD"]}) + RS
    )
    await _until_event(ws, "OnTick")
    token = next(iter(hubs.connections.values())).access_token
    assert token is not None
    await asyncio.sleep(1.2)  # the token's lifetime is the subject here: let it run out
    assert hubs.emulator.tokens.status(token) == "expired"
    await _until_event(ws, "OnTick", 20)  # ASP.NET default (CloseOnAuthenticationExpiration = false): still open
    assert not hubs.stats.closes
    # A request that carries the expired token is refused even so (authorization runs per request).
    refused = await client.post(f"/hubs/mt4/v2/negotiate?tradePlatform={MT4}", headers=_auth(token))
    assert refused.status == 401
    await ws.close()

    resp = await client.post("/_emulator/hub-faults", json={"rules": [{"fault": "close_on_token_expiry"}]})
    assert resp.status == 200
    ws, _ = await _ws(client, V2, await get_token(client))
    async with asyncio.timeout(10):
        while not (closes := [m for m in _records(await ws.receive_str()) if m["type"] == 7]):
            pass
    assert closes == [{"type": 7, "error": "Unauthorized: the access token has expired.", "allowReconnect": True}]
    assert hubs.stats.closes["token expired"] == 1


async def test_routes_and_hub_methods_ignore_case_and_unknown_routes_answer_like_aspnet(
    client: TestClient[Any, Any],
) -> None:
    token = await get_token(client)
    canonical = await client.get(f"/api/v2/MT4/{MT4}/ManagerCommon", headers=_auth(token))
    respelt = await client.get(f"/API/V2/mt4/{MT4}/managercommon", headers=_auth(token))
    assert respelt.status == canonical.status == 200
    assert (await respelt.json())["data"] == (await canonical.json())["data"]
    assert (await client.get(f"/API/v2/mt4/{MT4}/ManagerCommon")).status == 401  # re-spelt paths keep their auth
    assert (await _negotiate(client, f"/HUBS/Mt4/V2?tradePlatform={MT4}", token))["negotiateVersion"] == 0
    missing = await client.get("/api/v2/nothing/here", headers=_auth(token))
    assert (missing.status, await missing.read(), missing.content_type) == (404, b"", "application/octet-stream")
    wrong_method = await client.delete("/connect/token")
    assert wrong_method.status == 405 and await wrong_method.read() == b"" and wrong_method.headers["Allow"] == "POST"

    await _configure(client)
    ws, _ = await _ws(client, V2, token)
    await ws.send_str(
        json.dumps({"type": 1, "invocationId": "1", "target": "subscribetoticks", "arguments": ["EURUSD"]}) + RS
    )
    await _until_event(ws, "OnTick")
    await ws.close()


async def test_server_sent_events_transport(client: TestClient[Any, Any]) -> None:
    await _configure(client)
    token = await get_token(client)
    conn = (await _negotiate(client, V2, token, "&negotiateVersion=1"))["connectionToken"]
    url = f"{V2}&id={conn}"
    sse = await client.get(url, headers={**_auth(token), "Accept": "text/event-stream"})
    assert sse.status == 200 and sse.headers["Content-Type"] == "text/event-stream"
    assert sse.headers["Cache-Control"] == "no-cache,no-store"
    assert await sse.content.readline() == b":\r\n"
    send = await client.post(url, headers=_auth(token), data='{"protocol":"json","version":1}' + RS)
    assert send.status == 200
    first, end = await sse.content.readline(), await sse.content.readline()
    assert first.startswith(f"data: {{}}{RS}".encode()) and first.endswith(b"\r\n") and end == b"\r\n"
    await client.post(
        url,
        headers=_auth(token),
        data=json.dumps({"type": 1, "target": "SubscribeToTicks", "arguments": ["EURUSD"]}) + RS,
    )
    async with asyncio.timeout(10):
        while b"OnTick" not in (line := await sse.content.readline()):
            pass
    assert line.startswith(b"data: ") and line.endswith(RS.encode() + b"\r\n")
    assert (await client.delete(url, headers=_auth(token))).status == 400  # SSE stops by closing its request
    sse.close()
    hubs = get_hubs(client.server.app)
    await _until(lambda: hubs.stats.closes["client disconnected"] == 1)
    assert hubs.stats.transports["ServerSentEvents"] == 1

    ws_conn = (await _negotiate(client, V2, token, "&negotiateVersion=1"))["connectionToken"]
    ws = await client.ws_connect(f"{V2}&id={ws_conn}&access_token={token}")
    posted = await client.post(f"{V2}&id={ws_conn}", headers=_auth(token), data="{}")
    assert (posted.status, await posted.text()) == (405, "POST requests are not allowed for WebSocket connections.")
    await ws.close()


async def test_v1_hub_of_the_docs_example(client: TestClient[Any, Any]) -> None:
    await _configure(client)
    refused = await client.get("/hubs/mt4/v1", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert refused.status == 401  # same token rules as the v2 hub
    ws, handshake = await _ws(client, "/hubs/mt4/v1", await get_token(client))
    assert handshake == [{}]  # no OnConnectionStatus on the legacy hub: nothing but the handshake answer

    async def call(invocation_id: str, target: str, *args: Any) -> dict[str, Any]:
        await ws.send_str(
            json.dumps({"type": 1, "invocationId": invocation_id, "target": target, "arguments": list(args)}) + RS
        )
        async with asyncio.timeout(10):
            while True:
                for m in _records(await ws.receive_str()):
                    if m.get("invocationId") == invocation_id:
                        return m

    assert (await call("1", "Connect", MT4))["result"] is True
    assert (await call("2", "Ping", MT4.upper()))["result"] is True
    assert "not an MT4 platform" in (await call("3", "Connect", MT5))["error"]
    assert (await call("4", "SubscribeToTicks", MT4, "EURUSD"))["result"] is True
    [tick] = await _until_event(ws, "onTick")
    assert tick["arguments"][0] == MT4 and set(tick["arguments"][1]) == {"Symbol", "Bid", "Ask"}
    assert tick["arguments"][1]["Symbol"] == "EURUSD"
    await ws.close()


async def test_mt5_hub_pushes_on_margin_call(client: TestClient[Any, Any]) -> None:
    await _configure(client)
    await client.post("/_emulator/hub-config", json={"rates": {"mt5_margin_calls": 100}})
    ws, _ = await _ws(client, f"/hubs/mt5/v2?tradePlatform={MT5}", await get_token(client))
    pushes = await _until_event(ws, "OnMarginCall", 3)
    feed = Mt5MarginCallFeed(get_hubs(client.server.app).emulator.dataset)
    clock = get_hubs(client.server.app).feeds.clocks["mt5_margin_calls"]
    last = clock.index_at(now_ticks())
    generated = [feed.item(clock, i) for i in range(last - 2000, last + 1)]
    for push in pushes:
        [item] = push["arguments"]
        assert item in generated
    await ws.close()
