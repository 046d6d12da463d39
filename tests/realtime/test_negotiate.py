"""``negotiate`` and the WebSocket upgrade against tiny aiohttp servers: every error path is a typed error that
says why, follows no redirect and never carries the token."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from airflow_provider_cplugin.realtime.errors import HubAuthError, HubNegotiationError, HubTransportError
from airflow_provider_cplugin.realtime.negotiate import negotiate
from airflow_provider_cplugin.realtime.transports import WebSocketTransport

TOKEN = "hub-token-0123456789abcdef"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[[Handler], Awaitable[tuple[URL, list[web.Request]]]]


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    """``serve(handler)`` → (hub URL on its own loopback port, the requests that reached it)."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> tuple[URL, list[web.Request]]:
        seen: list[web.Request] = []

        async def record(request: web.Request) -> web.StreamResponse:
            seen.append(request)
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return URL(str(server.make_url("/hubs/mt4/v2"))), seen

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def everything_printed(exc: BaseException) -> str:
    """str/repr of the error and of every exception chained to it, plus the formatted traceback."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def reply(status: int = 200, **kwargs: Any) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(status=status, **kwargs)

    return handler


async def test_negotiate_parses_version_1(serve: ServerFactory, session: aiohttp.ClientSession) -> None:
    body = (
        '{"negotiateVersion":1,"connectionId":"c","connectionToken":"t","availableTransports":'
        '[{"transport":"WebSockets","transferFormats":["Text"]},{"transport":"X","transferFormats":["Binary"]}]}'
    )
    hub, seen = await serve(reply(text=body, content_type="application/json"))
    result = await negotiate(session, hub, TOKEN, 5)
    assert (result.connection_id, result.connection_token, result.transports, result.version) == (
        "c",
        "t",
        ("WebSockets",),
        1,
    )
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].path.endswith("/negotiate") and seen[0].query["negotiateVersion"] == "1"


async def test_negotiate_timeout_names_the_deadline(serve: ServerFactory, session: aiohttp.ClientSession) -> None:
    answered = asyncio.Event()

    async def never(_: web.Request) -> web.StreamResponse:
        await answered.wait()  # released at the end of the test
        return web.Response()

    hub, seen = await serve(never)
    try:
        with pytest.raises(HubNegotiationError, match=r"no answer within 0.2s") as excinfo:
            await negotiate(session, hub, TOKEN, 0.2)
    finally:
        answered.set()
    assert len(seen) == 1 and excinfo.value.status is None
    assert TOKEN not in everything_printed(excinfo.value)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_negotiate_redirect_is_not_followed(
    serve: ServerFactory, session: aiohttp.ClientSession, status: int
) -> None:
    other, reached = await serve(reply(text="{}"))
    hub, _ = await serve(reply(status, headers={"Location": str(other.with_path("/hubs/mt4/v2/negotiate"))}))
    with pytest.raises(HubNegotiationError, match="redirects are not followed") as excinfo:
        await negotiate(session, hub, TOKEN, 5)
    assert excinfo.value.status == status
    assert reached == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html>gateway</html>", "response is not JSON"),
        ("[1, 2]", "response is not a JSON object"),
        ('{"error":"Negotiate is disabled for this hub"}', "Negotiate is disabled for this hub"),
        ('{"url":"https://elsewhere.test","accessToken":"x"}', "redirect negotiation"),
        ('{"negotiateVersion":1,"connectionId":"c"}', "connectionId/connectionToken missing"),
    ],
)
async def test_negotiate_bad_bodies_say_why(
    serve: ServerFactory, session: aiohttp.ClientSession, body: str, problem: str
) -> None:
    hub, _ = await serve(reply(text=body))
    with pytest.raises(HubNegotiationError) as excinfo:
        await negotiate(session, hub, TOKEN, 5)
    assert problem in str(excinfo.value)
    assert not isinstance(excinfo.value, HubAuthError)


@pytest.mark.parametrize("status", [401, 403])
async def test_negotiate_refusal_echoing_the_token_is_scrubbed(
    serve: ServerFactory, session: aiohttp.ClientSession, status: int
) -> None:
    hub, _ = await serve(reply(status, text=f"invalid token {TOKEN}"))
    with pytest.raises(HubAuthError) as excinfo:
        await negotiate(session, hub, TOKEN, 5)
    assert excinfo.value.status == status
    assert "invalid token ***" in str(excinfo.value)
    assert TOKEN not in everything_printed(excinfo.value)


async def test_negotiate_other_status_keeps_the_body(serve: ServerFactory, session: aiohttp.ClientSession) -> None:
    hub, _ = await serve(reply(503, text="Service Unavailable"))
    with pytest.raises(HubNegotiationError, match="unexpected status: Service Unavailable") as excinfo:
        await negotiate(session, hub, TOKEN, 5)
    assert excinfo.value.status == 503


async def test_negotiate_connection_refused(session: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    with pytest.raises(HubNegotiationError, match="request failed: ClientConnectorError") as excinfo:
        await negotiate(session, URL(f"http://127.0.0.1:{unused_tcp_port}/hubs/mt4/v2"), TOKEN, 5)
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None


async def test_websocket_redirect_is_refused_before_the_other_origin_sees_it(
    serve: ServerFactory, session: aiohttp.ClientSession
) -> None:
    other, reached = await serve(reply(text="should never be asked"))
    hub, seen = await serve(reply(307, headers={"Location": str(other.with_scheme("ws"))}))
    with pytest.raises(HubTransportError, match="redirects are not followed") as excinfo:
        await WebSocketTransport.open(session, hub, "conn-token", TOKEN, 5)
    assert excinfo.value.status == 307
    assert len(seen) == 1 and reached == []
    assert TOKEN not in everything_printed(excinfo.value)
    assert not session.closed  # the caller's session (and its connector) outlive the refused upgrade


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_websocket_refusal_never_shows_the_token(
    serve: ServerFactory, session: aiohttp.ClientSession, status: int
) -> None:
    hub, seen = await serve(reply(status, text="no"))
    expected = HubAuthError if status in (401, 403) else HubTransportError
    with pytest.raises(expected) as excinfo:
        await WebSocketTransport.open(session, hub, "conn-token", TOKEN, 5)
    assert seen[0].query["access_token"] == TOKEN  # it was sent (browser SignalR style)...
    assert TOKEN not in everything_printed(excinfo.value)  # ...and is nowhere in what the task prints
    assert "access_token=***" in str(excinfo.value) or status == 404
