"""HTTP face of the hubs: negotiate, WebSocket transport and Long Polling transport (ASP.NET Core behaviour).

* ``POST {hub}/negotiate[?negotiateVersion=1]`` -> ``{negotiateVersion, connectionId, connectionToken,
  availableTransports}``; bearer checked (header, or ``access_token`` query), ``tradePlatform`` checked.
* ``GET {hub}?id=<token>`` with ``Upgrade: websocket`` -> WebSocket; without ``id`` -> direct connect
  (``skipNegotiation``, WebSockets only).
* Long polling: ``GET {hub}?id=`` polls (the first poll returns at once with no data, later ones wait up to
  ``poll_timeout_s`` and return 200 with whatever is queued, 204 once the connection is over),
  ``POST {hub}?id=`` sends, ``DELETE {hub}?id=`` closes (202).

Unverified choices (the reference does not say): a missing or malformed ``tradePlatform`` answers 400, a
platform of the wrong kind 404, both at negotiate time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from airflow_provider_cplugin.emulator.auth import bearer_token, unauthorized
from airflow_provider_cplugin.emulator.hubs import faults as hub_faults
from airflow_provider_cplugin.emulator.hubs.connection import LONG_POLLING, WEBSOCKETS, HubConnection
from airflow_provider_cplugin.emulator.hubs.definitions import HubSpec
from airflow_provider_cplugin.emulator.hubs.protocol import close_frame
from airflow_provider_cplugin.emulator.hubs.state import HubsState, get_hubs

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TEXT = "text/plain; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _check_access(request: web.Request, hubs: HubsState, spec: HubSpec) -> tuple[web.Response | None, str | None]:
    """``(error response, access token)``: bearer (header or query) and trade platform binding."""
    token: str | None = None
    if spec.requires_auth:
        token = bearer_token(request, allow_query=True)
        status = hubs.emulator.tokens.status(token)
        if status != "valid":
            hubs.stats.unauthorized += 1
            return unauthorized(status), None
    if spec.platform is not None:
        platform = request.query.get("tradePlatform", "")
        if not _GUID.match(platform):
            return _text(400, "The tradePlatform query parameter must be a GUID."), None
        expected = spec.platform(hubs.emulator.config)
        if uuid.UUID(platform) != uuid.UUID(expected):
            return _text(404, f"Trade platform {platform} is not served by {spec.path}."), None
    return None, token


async def _refusal(hubs: HubsState, spec: HubSpec) -> web.Response | None:
    store = hubs.emulator.faults
    delay = hub_faults.take(store, "delay_negotiate", spec.path)
    if delay is not None:
        hubs.stats.faults_applied["delay_negotiate"] += 1
        await asyncio.sleep(delay["delay_s"])
    refuse = hub_faults.take(store, "refuse_negotiate", spec.path)
    if refuse is None:
        return None
    hubs.stats.faults_applied["refuse_negotiate"] += 1
    hubs.stats.negotiations_refused += 1
    return _text(int(refuse["status"]), str(refuse["body"]))


def negotiate_handler(spec: HubSpec) -> Handler:
    async def negotiate(request: web.Request) -> web.StreamResponse:
        hubs = get_hubs(request)
        hubs.stats.negotiations += 1
        refused = await _refusal(hubs, spec)
        if refused is not None:
            return refused
        problem, token = _check_access(request, hubs, spec)
        if problem is not None:
            return problem
        try:
            version = int(request.query.get("negotiateVersion", "0"))
        except ValueError:
            version = 0
        conn = HubConnection(hubs, spec, token, min(max(version, 0), 1))
        conn.register()
        body: dict[str, object] = {
            "connectionId": conn.id,
            "availableTransports": [
                {"transport": WEBSOCKETS, "transferFormats": ["Text", "Binary"]},
                {"transport": LONG_POLLING, "transferFormats": ["Text", "Binary"]},
            ],
        }
        if version >= 1:
            body = {"negotiateVersion": 1, "connectionToken": conn.token, **body}
        return web.json_response(body)

    return negotiate


def _lookup(request: web.Request, spec: HubSpec) -> HubConnection | web.Response:
    token = request.query.get("id", "")
    conn = get_hubs(request).connections.get(token)
    if conn is None or conn.spec is not spec:
        return _text(404, "No Connection with that ID")
    return conn


def connect_handler(spec: HubSpec) -> Handler:
    async def connect(request: web.Request) -> web.StreamResponse:
        hubs = get_hubs(request)
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        if "id" not in request.query:
            if not is_ws:
                return _text(400, "Connection ID required")
            # skipNegotiation: a direct WebSocket connect gets the negotiate checks (and faults) here.
            refused = await _refusal(hubs, spec)
            if refused is not None:
                return refused
            problem, token = _check_access(request, hubs, spec)
            if problem is not None:
                return problem
            conn = HubConnection(hubs, spec, token, 1)
            conn.register()
        else:
            found = _lookup(request, spec)
            if isinstance(found, web.Response):
                return found
            conn = found
            if spec.requires_auth:
                token = bearer_token(request, allow_query=True)
                status = hubs.emulator.tokens.status(token)
                if status != "valid":
                    hubs.stats.unauthorized += 1
                    return unauthorized(status)
                conn.access_token = token
        if is_ws:
            if conn.transport is not None:
                return _text(400, "Cannot change transports mid-connection")
            return await _websocket(request, conn)
        if conn.transport not in (None, LONG_POLLING):
            return _text(400, "Cannot change transports mid-connection")
        return await _poll(conn)

    return connect


async def _websocket(request: web.Request, conn: HubConnection) -> web.StreamResponse:
    ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    conn.attach(WEBSOCKETS)
    tcp = request.transport
    writer = asyncio.create_task(_ws_writer(ws, conn, tcp), name=f"hub-ws-writer-{conn.id}")
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.on_text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await conn.on_text(msg.data.decode("utf-8", errors="replace"))
            if conn.closed:
                break
    finally:
        conn.close(send_close=False, reason="client disconnected")
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer, timeout=5)
    return ws


async def _ws_writer(ws: web.WebSocketResponse, conn: HubConnection, tcp: asyncio.BaseTransport | None) -> None:
    outbox = conn.outbox
    max_frames = conn.settings.max_batch_frames
    try:
        while True:
            frames = await outbox.take(max_frames=max_frames)
            if not frames:
                if outbox.closed:
                    break
                continue
            out, action, delay = conn.apply_faults(frames)
            if out:
                text = "".join(out)
                await ws.send_str(text)
                conn.record_batch(len(out), len(text))
            if action == "stall":
                await asyncio.sleep(delay)
            elif action == "drop":
                assert conn.faults.drop is not None
                if conn.faults.drop.get("close_message"):
                    await ws.send_str(close_frame("Connection dropped by the emulator (fault injection).", True))
                    conn.close(send_close=False, reason="fault drop")
                    await ws.close()
                else:
                    conn.close(send_close=False, reason="fault drop")
                    if tcp is not None:
                        tcp.close()  # flush what was written, then FIN: no WebSocket close frame
                return
        await ws.close()
    except (ConnectionError, RuntimeError):
        conn.close(send_close=False, reason="write failed")


async def _poll(conn: HubConnection) -> web.StreamResponse:
    if conn.transport is None:
        # First poll: confirms the connection, returns immediately without data (ASP.NET does the same).
        conn.attach(LONG_POLLING)
        conn.last_poll_end = time.monotonic()
        return _text(200, "")
    conn.poll_active += 1
    try:
        if conn.closed and not len(conn.outbox):
            conn.forget()
            return web.Response(status=204)
        frames = await conn.outbox.take(wait_s=conn.settings.poll_timeout_s, max_frames=conn.settings.max_batch_frames)
        if not frames and conn.outbox.closed:
            conn.forget()
            return web.Response(status=204)
        out, action, delay = conn.apply_faults(frames)
        if action == "stall":
            await asyncio.sleep(delay)
        elif action == "drop":
            conn.close(send_close=False, reason="fault drop")
            conn.forget()  # next poll: 404, like a server that lost the connection
        text = "".join(out)
        conn.record_batch(len(out), len(text))
        return _text(200, text)
    finally:
        conn.poll_active -= 1
        conn.last_poll_end = time.monotonic()


def send_handler(spec: HubSpec) -> Handler:
    async def send(request: web.Request) -> web.StreamResponse:
        found = _lookup(request, spec)
        if isinstance(found, web.Response):
            return found
        conn = found
        if conn.transport == WEBSOCKETS:
            return _text(400, "POST requests are not allowed for WebSocket connections.")
        if conn.closed:
            return _text(404, "No Connection with that ID")
        await conn.on_text(await request.text())
        return _text(200, "")

    return send


def delete_handler(spec: HubSpec) -> Handler:
    async def delete(request: web.Request) -> web.StreamResponse:
        found = _lookup(request, spec)
        if isinstance(found, web.Response):
            return found
        if found.transport == WEBSOCKETS:
            return _text(400, "DELETE requests are only allowed for long polling connections.")
        found.close(send_close=False, reason="client delete")
        return _text(202, "")

    return delete


def add_hub_routes(app: web.Application, spec: HubSpec) -> None:
    app.router.add_post(spec.path + "/negotiate", negotiate_handler(spec))
    app.router.add_get(spec.path, connect_handler(spec), allow_head=False)
    app.router.add_post(spec.path, send_handler(spec))
    app.router.add_delete(spec.path, delete_handler(spec))
