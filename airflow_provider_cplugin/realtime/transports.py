"""Client transports over aiohttp: WebSockets and Long Polling (same interface, text transfer format).

``receive()`` returns the next chunk of text (one or more records, possibly partial), ``None`` once the server
ended the connection cleanly, and raises :class:`HubTransportError` when the transport broke.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

import aiohttp
from yarl import URL

from airflow_provider_cplugin.realtime.errors import HubAuthError, HubError, HubTransportError
from airflow_provider_cplugin.realtime.urls import redact, redact_text, websocket_url, with_query

WEBSOCKETS = "WebSockets"
LONG_POLLING = "LongPolling"
TRANSPORTS = (WEBSOCKETS, LONG_POLLING)


class Transport(Protocol):
    name: str

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str | None: ...

    async def close(self) -> None: ...


class _RedirectRefused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def _refuse_redirects(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """``ws_connect`` has no ``allow_redirects``: without this it follows a 307 to another origin and hands that
    server the upgrade (with the token in the query). Every other hub request is sent with redirects off."""
    response = await handler(request)
    if 300 <= response.status < 400:
        response.release()
        raise _RedirectRefused(response.status)
    return response


async def _ws_connect(session: aiohttp.ClientSession, url: URL, **options: Any) -> aiohttp.ClientWebSocketResponse:
    """``session.ws_connect`` through a session that shares its connector (pool, TLS settings) and headers but
    refuses redirects (middlewares are a session setting; the caller's session may be the user's own)."""
    async with aiohttp.ClientSession(
        connector=session.connector,
        connector_owner=False,
        headers=session.headers,
        cookie_jar=session.cookie_jar,
        middlewares=(_refuse_redirects,),
    ) as no_redirects:
        return await no_redirects.ws_connect(url, **options)


class WebSocketTransport:
    """Token travels as the ``access_token`` query parameter, as browser SignalR clients do (reference §8)."""

    name = WEBSOCKETS

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        hub: URL,
        connection_token: str | None,
        token: str | None,
        deadline_s: float,
    ) -> WebSocketTransport:
        params: dict[str, str] = {}
        if connection_token is not None:
            params["id"] = connection_token
        if token:
            params["access_token"] = token
        url = websocket_url(with_query(hub, **params))
        failure: HubError
        try:
            async with asyncio.timeout(deadline_s):
                ws = await _ws_connect(
                    session,
                    url,
                    autoping=True,
                    heartbeat=None,  # SignalR pings do the keep-alive; WebSocket pings are answered (autoping)
                    max_msg_size=0,  # a batch of records can be large; records are bounded by the decoder
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                )
        except TimeoutError:
            failure = HubTransportError(f"no WebSocket within {deadline_s:g}s at {redact(url)}", transport=cls.name)
        except _RedirectRefused as exc:
            failure = HubTransportError(
                f"upgrade at {redact(url)} was redirected; redirects are not followed", transport=cls.name,
                status=exc.status,
            )  # fmt: skip
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                failure = HubAuthError("WebSocket upgrade refused the token", status=exc.status, url=redact(url))
            else:
                failure = HubTransportError(f"upgrade refused at {redact(url)}", transport=cls.name, status=exc.status)
        except aiohttp.ClientError as exc:
            failure = HubTransportError(f"connect failed: {redact_text(str(exc), token)}", transport=cls.name)
        else:
            return cls(ws)
        # Raised outside the handlers on purpose: aiohttp's error (its message and request_info carry the URL with
        # access_token) must not ride along as __context__/__cause__ into task tracebacks.
        raise failure

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise HubTransportError(f"send failed: {exc}", transport=self.name) from exc

    async def receive(self) -> str | None:
        msg = await self._ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == aiohttp.WSMsgType.BINARY:
            return bytes(msg.data).decode("utf-8")
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = self._ws.close_code
            if code in (None, 1000, 1001):
                return None
            raise HubTransportError(f"WebSocket closed with code {code}", transport=self.name)
        exc = self._ws.exception()
        raise HubTransportError(f"WebSocket failed: {exc or msg.type.name}", transport=self.name)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


class LongPollingTransport:
    """GET polls, POST sends, DELETE closes; the token goes in the ``Authorization`` header of every request."""

    name = LONG_POLLING

    def __init__(self, session: aiohttp.ClientSession, url: URL, token: str | None, poll_timeout: float) -> None:
        self._session = session
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._poll_timeout = poll_timeout
        self._chunks: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        session: aiohttp.ClientSession,
        hub: URL,
        connection_token: str,
        token: str | None,
        deadline_s: float,
        poll_timeout: float,
    ) -> LongPollingTransport:
        transport = cls(session, with_query(hub, id=connection_token), token, poll_timeout)
        # The first poll only confirms the connection (the server answers at once without data).
        status, _ = await transport._get(deadline_s)
        if status in (401, 403):
            raise HubAuthError("long polling refused the token", status=status, url=redact(transport._url))
        if status != 200:
            raise HubTransportError("first poll failed", transport=cls.name, status=status)
        transport._poller = asyncio.create_task(transport._poll_loop(), name="signalr-long-poll")
        return transport

    async def _get(self, deadline_s: float) -> tuple[int, str]:
        url = self._url.update_query(_=str(time.time_ns() // 1_000_000))  # defeat caches, like the JS client
        try:
            async with asyncio.timeout(deadline_s):
                async with self._session.get(url, headers=self._headers, allow_redirects=False) as resp:
                    return resp.status, await resp.text()
        except TimeoutError:
            raise HubTransportError(f"poll got no answer within {deadline_s:g}s", transport=self.name) from None
        except aiohttp.ClientError as exc:
            raise HubTransportError(f"poll failed: {exc}", transport=self.name) from exc

    async def _poll_loop(self) -> None:
        try:
            while not self._closed:
                status, text = await self._get(self._poll_timeout)
                if status == 204:
                    self._chunks.put_nowait(None)
                    return
                if status != 200:
                    raise HubTransportError("poll failed", transport=self.name, status=status)
                if text:
                    self._chunks.put_nowait(text)
        except HubTransportError as exc:
            self._chunks.put_nowait(exc)

    async def send(self, text: str) -> None:
        try:
            async with self._session.post(
                self._url, data=text.encode("utf-8"), headers=self._headers, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise HubTransportError("send failed", transport=self.name, status=resp.status)
        except aiohttp.ClientError as exc:
            raise HubTransportError(f"send failed: {exc}", transport=self.name) from exc

    async def receive(self) -> str | None:
        chunk = await self._chunks.get()
        if isinstance(chunk, BaseException):
            raise chunk
        return chunk

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                async with self._session.delete(self._url, headers=self._headers, allow_redirects=False):
                    pass
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
        self._chunks.put_nowait(None)
