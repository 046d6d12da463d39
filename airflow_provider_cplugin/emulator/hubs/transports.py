"""HTTP face of the hubs: negotiate and the three transports ASP.NET Core offers (its status codes and texts).

* ``POST {hub}/negotiate[?negotiateVersion=n]`` -> ``{negotiateVersion, connectionId, [connectionToken,]
  availableTransports}`` (``negotiateVersion`` always written, 0 or 1, like ``NegotiateProtocol.WriteResponse``;
  a non-integer or negative version -> 200 ``{"error": ...}``); bearer checked (header, or ``access_token``
  query), ``tradePlatform`` checked.
* ``GET {hub}?id=<token>`` with ``Upgrade: websocket`` -> WebSocket; without ``id`` -> direct connect
  (``skipNegotiation``, WebSockets only).
* ``GET {hub}?id=`` with ``Accept: text/event-stream`` -> Server-Sent Events: ``:\r\n`` first, then every batch
  of frames as one ``data: ...\r\n\r\n`` event; the client sends with ``POST {hub}?id=`` and stops by closing
  the request (DELETE is refused, 400).
* Long polling: ``GET {hub}?id=`` polls (the first poll returns at once with no data, later ones wait up to
  ``poll_timeout_s`` and return 200 with whatever is queued, 204 once the connection is over),
  ``POST {hub}?id=`` sends (405 on a WebSocket connection), ``DELETE {hub}?id=`` closes (202).

Every request carrying ``id`` re-checks the bearer token (ASP.NET's authorization runs on each request), so a
poll or send with an expired token gets 401 even though a live WebSocket/SSE stream is kept open past expiry.

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
from typing import Any

from aiohttp import WSMsgType, web

from airflow_provider_cplugin.emulator.auth import bearer_token, unauthorized
from airflow_provider_cplugin.emulator.hubs import faults as hub_faults
from airflow_provider_cplugin.emulator.hubs.connection import (
    LONG_POLLING,
    SERVER_SENT_EVENTS,
    WEBSOCKETS,
    HubConnection,
)
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


# The transports ASP.NET Core lists (HttpConnectionDispatcher), in its order; SSE is text only.
AVAILABLE_TRANSPORTS: list[dict[str, Any]] = [
    {"transport": WEBSOCKETS, "transferFormats": ["Text", "Binary"]},
    {"transport": SERVER_SENT_EVENTS, "transferFormats": ["Text"]},
    {"transport": LONG_POLLING, "transferFormats": ["Text", "Binary"]},
]
NEGOTIATE_VERSION = 1


def _negotiate_version(request: web.Request) -> tuple[int, str | None]:
    """``(version, error)`` as ASP.NET Core reads ``negotiateVersion`` (query keys are case-insensitive)."""
    raw = next((v for k, v in request.query.items() if k.lower() == "negotiateversion"), None)
    if raw is None:
        return 0, None
    try:
        version = int(raw.strip())
    except ValueError:
        return 0, "The client requested a non-integer protocol version."
    if version < 0:
        return 0, f"The client requested version '{version}', but the server does not support this version."
    return min(version, NEGOTIATE_VERSION), None


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
        version, error = _negotiate_version(request)
        if error is not None:
            return web.json_response({"error": error})
        conn = HubConnection(hubs, spec, token, version)
        conn.register()
        body: dict[str, object] = {"negotiateVersion": version, "connectionId": conn.id}
        if version >= 1:
            body["connectionToken"] = conn.token
        body["availableTransports"] = AVAILABLE_TRANSPORTS
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
        if not request.query.get("id"):
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
        if is_ws or _wants_sse(request):
            if conn.transport == (WEBSOCKETS if is_ws else SERVER_SENT_EVENTS):
                return web.Response(status=409, content_type="text/plain")  # already active
            if conn.transport is not None:
                return _text(400, "Cannot change transports mid-connection")
            return await (_websocket(request, conn) if is_ws else _sse(request, conn))
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


async def _deliver(
    conn: HubConnection,
    send: Callable[[str], Awaitable[Any]],
    tcp: asyncio.BaseTransport | None,
    wait_s: float | None = None,
) -> bool:
    """Write the outbox through ``send`` (faults applied) until the connection is over.

    Returns True when a drop fault ended it: either the TCP connection was cut (no goodbye of any kind) or,
    with ``close_message``, a Close frame was the last thing sent. ``wait_s`` bounds each wait so a transport
    that cannot see its client leave (SSE) notices a closed socket."""
    outbox = conn.outbox
    max_frames = conn.settings.max_batch_frames
    while True:
        frames = await outbox.take(wait_s=wait_s, max_frames=max_frames)
        if not frames:
            if outbox.closed or (tcp is not None and tcp.is_closing()):
                return False
            continue
        out, action, delay = conn.apply_faults(frames)
        if out:
            text = "".join(out)
            await send(text)
            conn.record_batch(len(out), len(text))
        if action == "stall":
            await asyncio.sleep(delay)
        elif action == "drop":
            assert conn.faults.drop is not None
            if conn.faults.drop.get("close_message"):
                await send(close_frame("Connection dropped by the emulator (fault injection).", True))
                conn.close(send_close=False, reason="fault drop")
            else:
                conn.close(send_close=False, reason="fault drop")
                if tcp is not None:
                    tcp.close()  # flush what was written, then FIN: no WebSocket close frame, no SSE end
            return True


async def _ws_writer(ws: web.WebSocketResponse, conn: HubConnection, tcp: asyncio.BaseTransport | None) -> None:
    try:
        if await _deliver(conn, ws.send_str, tcp) and tcp is not None and tcp.is_closing():
            return
        await ws.close()
    except (ConnectionError, RuntimeError):
        conn.close(send_close=False, reason="write failed")


def _wants_sse(request: web.Request) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "").lower()


def sse_event(text: str) -> bytes:
    """One SSE event per batch, like ``ServerSentEventsMessageFormatter``: a ``data:`` line per payload line."""
    lines = (line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
    return ("".join(f"data: {line}\r\n" for line in lines) + "\r\n").encode()


async def _sse(request: web.Request, conn: HubConnection) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache,no-store",
            "Pragma": "no-cache",
            "Content-Encoding": "identity",
        }
    )
    await response.prepare(request)
    conn.attach(SERVER_SENT_EVENTS)
    tcp = request.transport

    async def send(text: str) -> None:
        await response.write(sse_event(text))

    try:
        await response.write(b":\r\n")  # ASP.NET's first bytes (EventSource "open" workaround)
        if await _deliver(conn, send, tcp, wait_s=1.0) and tcp is not None and tcp.is_closing():
            return response
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass
    finally:
        conn.close(send_close=False, reason="client disconnected")
    return response


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
            return _text(405, "POST requests are not allowed for WebSocket connections.")
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
        if found.transport != LONG_POLLING:
            return _text(400, "Cannot terminate this connection using the DELETE endpoint.")
        found.close(send_close=False, reason="client delete")
        return _text(202, "")

    return delete


def add_hub_routes(app: web.Application, spec: HubSpec) -> None:
    app.router.add_post(spec.path + "/negotiate", negotiate_handler(spec))
    app.router.add_get(spec.path, connect_handler(spec), allow_head=False)
    app.router.add_post(spec.path, send_handler(spec))
    app.router.add_delete(spec.path, delete_handler(spec))
