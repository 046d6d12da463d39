"""Asyncio SignalR hub client (JSON protocol) for the CPlugin hubs, with reconnect and gap reporting.

Why not pysignalr (1.3.3, read from its wheel): it only has a WebSocket transport (no Long Polling, so no
fallback); its ``access_token_factory`` is synchronous and is only called in the handshake *after* the socket
opened (the first negotiate and WebSocket request go without the token; later ones reuse stale headers);
reconnects re-open the WebSocket with the old connection id instead of negotiating again (ASP.NET connection
tokens are single use); stream invocations are callback-only (no async iteration) and cannot be cancelled
(there is no way to send ``CancelInvocation``, handlers are never removed); streams are not re-invoked after a
reconnect; there is no server-timeout detection (it relies on WebSocket pings), a Close message with an error
raises inside its receive loop, and its retry policy is exponential with a fixed count rather than the SDK's
``[0, 2, 10, 30]`` s. Fixing that would mean rewriting its transport and client, so this module implements the
protocol directly on aiohttp (already a dependency; pysignalr would add orjson and msgpack).

Behaviour follows the official SDK 0.2.1 (``@microsoft/signalr`` under the hood) where it has one: token
provider called on every (re)connect, negotiate with ``negotiateVersion=1``, WebSockets then Long Polling,
15 s keep-alive pings, 30 s server timeout, reconnect delays ``[0, 2, 10, 30]`` s then give up, Close
``allowReconnect`` honoured. Beyond the SDK: streams and ``subscribe`` methods are re-invoked after a reconnect
and every outage is recorded as a :class:`~airflow_provider_cplugin.realtime.gaps.GapRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from airflow_provider_cplugin.realtime import protocol as P
from airflow_provider_cplugin.realtime.errors import (
    HubAuthError,
    HubClosedError,
    HubConnectionLostError,
    HubError,
    HubHandshakeError,
    HubInvocationError,
    HubTimeoutError,
    HubTransportError,
)
from airflow_provider_cplugin.realtime.events import DEFAULT_BUFFER_SIZE, EventBuffer, RawItemBuffer, RawItems
from airflow_provider_cplugin.realtime.gaps import GapLedger, GapRecord, SequenceFn
from airflow_provider_cplugin.realtime.negotiate import Negotiation, negotiate
from airflow_provider_cplugin.realtime.subscriptions import HubListener, HubStream, Subscription, _Channel
from airflow_provider_cplugin.realtime.transports import (
    LONG_POLLING,
    TRANSPORTS,
    WEBSOCKETS,
    LongPollingTransport,
    Transport,
    WebSocketTransport,
)
from airflow_provider_cplugin.realtime.urls import redact, validate_hub_url

log = logging.getLogger(__name__)

DEFAULT_RECONNECT_DELAYS: tuple[float, ...] = (0.0, 2.0, 10.0, 30.0)

TokenProvider = Callable[[], Awaitable[str]]
EventCallback = Callable[[list[Any]], Awaitable[None] | None]
StateCallback = Callable[["ConnectionState", BaseException | None], None]


YIELD_EVERY = 1000
"""Records dispatched between two yields to the event loop."""


class ConnectionState(enum.StrEnum):
    DISCONNECTED = "Disconnected"
    CONNECTING = "Connecting"
    CONNECTED = "Connected"
    RECONNECTING = "Reconnecting"
    STOPPED = "Stopped"


class _Connection:
    """One physical connection: transport, decoder, pending invocations, stream routes, liveness."""

    def __init__(self, number: int, transport: Transport, negotiation: Negotiation | None) -> None:
        self.number = number
        self.transport = transport
        self.negotiation = negotiation
        self.decoder = P.FrameDecoder()
        self.pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self.routes: dict[str, HubStream] = {}
        now = time.monotonic()
        self.last_received = now
        self.last_sent = now
        self.paused = False  # reading paused for backpressure: the server timeout does not apply
        self.send_lock = asyncio.Lock()
        self.lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.close_message: tuple[str | None, bool] | None = None

    @property
    def connection_id(self) -> str | None:
        return self.negotiation.connection_id if self.negotiation else None


class HubClient:
    """SignalR hub client. Typical use::

        async with HubClient(url, token_provider, allow_insecure_loopback=True) as client:
            ticks = await client.stream("StreamTicks", sequence=...)
            async for event in ticks:
                ...
            client.gaps  # outages and sequence jumps

    ``url``: the hub URL with its binding query (``https://host/hubs/mt4/v2?tradePlatform=<guid>``).
    ``token_provider``: async callable returning a bearer token; called on every (re)connect (None = no auth).
    ``reconnect_delays``: seconds to wait before each reconnect attempt, then give up; None disables reconnect.
    """

    def __init__(
        self,
        url: str,
        token_provider: TokenProvider | None = None,
        *,
        transports: Sequence[str] = TRANSPORTS,
        skip_negotiation: bool = False,
        reconnect_delays: Sequence[float] | None = DEFAULT_RECONNECT_DELAYS,
        keep_alive_interval: float = 15.0,
        server_timeout: float = 30.0,
        handshake_timeout: float = 15.0,
        request_timeout: float = 30.0,
        long_poll_timeout: float = 120.0,
        allow_insecure_loopback: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url: URL = validate_hub_url(url, allow_insecure_loopback=allow_insecure_loopback)
        unknown = set(transports) - set(TRANSPORTS)
        if unknown or not transports:
            raise ValueError(f"transports must be a non-empty subset of {TRANSPORTS}, got {list(transports)}")
        if skip_negotiation and WEBSOCKETS not in transports:
            raise ValueError("skip_negotiation needs the WebSockets transport")
        if server_timeout <= keep_alive_interval:
            raise ValueError("server_timeout must be larger than keep_alive_interval")
        self._token_provider = token_provider
        self._transports = tuple(transports)
        self._skip_negotiation = skip_negotiation
        self._reconnect_delays = None if reconnect_delays is None else tuple(float(d) for d in reconnect_delays)
        self._keep_alive = keep_alive_interval
        self._server_timeout = server_timeout
        self._handshake_timeout = handshake_timeout
        self._request_timeout = request_timeout
        self._long_poll_timeout = long_poll_timeout
        self._buffer_size = buffer_size
        self._session = session
        self._own_session = session is None

        self._state = ConnectionState.DISCONNECTED
        self._conn: _Connection | None = None
        self._connections = 0
        self._ids = itertools.count()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._error: BaseException | None = None
        self._callbacks: dict[str, list[EventCallback]] = {}
        self._listeners: dict[str, list[HubListener]] = {}
        self._streams: list[HubStream] = []
        self._subscriptions: list[Subscription] = []
        self._state_callbacks: list[StateCallback] = []
        self._ledger = GapLedger()
        self._last_event_at: float | None = None
        self._counters = {"chunks": 0, "messages": 0, "pings_received": 0, "reconnects": 0}

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def transport(self) -> str | None:
        return self._conn.transport.name if self._conn else None

    @property
    def connection_id(self) -> str | None:
        return self._conn.connection_id if self._conn else None

    @property
    def connection_number(self) -> int:
        """1 for the first connection, incremented by every reconnect."""
        return self._connections

    @property
    def gaps(self) -> list[GapRecord]:
        return self._ledger.records

    @property
    def error(self) -> BaseException | None:
        """Why the client gave up (reconnect exhausted / not allowed), else None."""
        return self._error

    def stats(self) -> dict[str, Any]:
        channels = [*self._streams, *itertools.chain.from_iterable(self._listeners.values())]
        return {
            **self._counters,
            "state": str(self._state),
            "connections": self._connections,
            "gaps": len(self.gaps),
            "channels": {
                c.name: {
                    "received": c.received,
                    "delivered": c.delivered,
                    "duplicates": c.duplicates,
                    "missed": c.missed,
                }
                for c in channels
            },
        }

    async def start(self) -> None:
        """Connect (negotiate, transport, handshake) once; errors are raised, not retried (like the SDK)."""
        if self._state in (ConnectionState.CONNECTED, ConnectionState.CONNECTING, ConnectionState.RECONNECTING):
            return
        if self._stopping:
            raise HubError("this client was stopped; create a new one")
        self._set_state(ConnectionState.CONNECTING)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await self._open()
        except BaseException as exc:
            self._set_state(ConnectionState.DISCONNECTED, exc)
            if self._own_session and self._session is not None:
                await self._session.close()
                self._session = None
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="signalr-supervisor")

    async def stop(self) -> None:
        """Close the connection, cancel every task, end every iterator (normally). Safe to call twice."""
        if self._stopping and self._state == ConnectionState.STOPPED:
            return
        self._stopping = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        conn = self._conn
        if conn is not None:
            if not conn.lost.done():
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self._send(conn, P.CLOSE_MESSAGE)
            await self._teardown(conn, HubError("client stopped"))
        for channel in [*self._streams, *itertools.chain.from_iterable(self._listeners.values())]:
            channel._end()
        self._streams.clear()
        self._subscriptions.clear()
        self._set_state(ConnectionState.STOPPED)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - public API
        """Wait until the client is connected (e.g. after a reconnect); raises the client's error if it gave up."""
        async with asyncio.timeout(timeout):
            while self._state != ConnectionState.CONNECTED:
                if self._error is not None:
                    raise self._error
                if self._state == ConnectionState.STOPPED:
                    raise HubError("client stopped")
                await asyncio.sleep(0.01)

    def on(self, target: str, callback: EventCallback) -> None:
        """Call ``callback(arguments)`` for every server event ``target`` (may be a coroutine function)."""
        self._callbacks.setdefault(target, []).append(callback)

    def off(self, target: str, callback: EventCallback | None = None) -> None:
        if callback is None:
            self._callbacks.pop(target, None)
        elif callback in self._callbacks.get(target, []):
            self._callbacks[target].remove(callback)

    def on_state(self, callback: StateCallback) -> None:
        """``callback(state, error)`` on every state change (Reconnecting carries the reason)."""
        self._state_callbacks.append(callback)

    def listen(
        self,
        target: str,
        *,
        sequence: SequenceFn | None = None,
        buffer: EventBuffer | None = None,
        name: str | None = None,
    ) -> HubListener:
        """An async iterator of the server events ``target`` (register before ``start`` to miss none)."""
        self._raise_if_given_up()
        listener = HubListener(self, target, name=name, buffer=buffer, sequence=sequence, maxsize=self._buffer_size)
        self._listeners.setdefault(target, []).append(listener)
        return listener

    async def stream(
        self,
        target: str,
        *args: Any,
        sequence: SequenceFn | None = None,
        buffer: EventBuffer | None = None,
        resume: bool = True,
        name: str | None = None,
        raw: bool = False,
    ) -> HubStream:
        """Open a server stream (now if connected, else at the next connect); re-invoked after reconnects
        unless ``resume=False`` (then a reconnect ends it with :class:`HubConnectionLostError`, as in the SDK).
        ``raw=True``: deliver :class:`RawItems` (undecoded runs of items, see :meth:`HubStream.get_raw`).
        """
        if self._stopping:
            raise HubError("client stopped")
        self._raise_if_given_up()
        stream = HubStream(
            self,
            target,
            list(args),
            name=name,
            buffer=buffer,
            sequence=sequence,
            resume=resume,
            maxsize=self._buffer_size,
            raw=raw,
        )
        self._streams.append(stream)
        conn = self._conn
        if conn is not None and self._state == ConnectionState.CONNECTED and not conn.lost.done():
            try:
                await self._start_stream(conn, stream)
            except BaseException as exc:
                # The caller gets the error, not the stream: nobody would read it, so it must not be re-opened
                # on reconnect (its full buffer would pause the receive loop for good).
                self._streams.remove(stream)
                stream._end(exc if isinstance(exc, Exception) else None)
                raise
        return stream

    def _raise_if_given_up(self) -> None:
        # After the client gave up reconnecting, a new stream or listener would never start: say so now.
        if self._error is not None:
            raise self._error

    async def subscribe(self, target: str, *args: Any, undo: str | None = None) -> Subscription:
        """Invoke ``target(*args)`` now (if connected) and again after every reconnect; ``cancel()`` invokes
        ``undo(*args)``. For ``SubscribeToTicks`` / ``UnsubscribeFromTicks``."""
        sub = Subscription(self, target, list(args), undo)
        conn = self._conn
        if conn is not None and self._state == ConnectionState.CONNECTED and not conn.lost.done():
            sub.connection = conn.number
            await self._invoke_on(conn, target, sub.args, self._request_timeout)
        self._subscriptions.append(sub)
        return sub

    async def invoke(self, target: str, *args: Any, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Call a hub method and return its result (:class:`HubInvocationError` on an error completion)."""
        return await self._invoke_on(self._require_connected(), target, list(args), timeout)

    async def send(self, target: str, *args: Any) -> None:
        """Fire-and-forget invocation (no completion expected)."""
        conn = self._require_connected()
        await self._send(conn, P.invocation(target, list(args), None))

    # ------------------------------------------------------------------ connection setup

    def _require_connected(self) -> _Connection:
        conn = self._conn
        if conn is None or self._state != ConnectionState.CONNECTED or conn.lost.done():
            raise HubError(f"not connected (state {self._state})")
        return conn

    def _set_state(self, state: ConnectionState, error: BaseException | None = None) -> None:
        if state == self._state:
            return
        self._state = state
        for callback in list(self._state_callbacks):
            try:
                callback(state, error)
            except Exception:
                log.exception("state callback failed")

    async def _open(self) -> _Connection:
        """Negotiate, open a transport (falling back), handshake, start the loops, re-subscribe."""
        assert self._session is not None
        session = self._session
        token = await self._token_provider() if self._token_provider is not None else None
        negotiation: Negotiation | None = None
        transport: Transport
        if self._skip_negotiation:
            transport = await WebSocketTransport.open(session, self.url, None, token, self._request_timeout)
        else:
            negotiation = await negotiate(session, self.url, token, self._request_timeout)
            candidates = [t for t in self._transports if t in negotiation.transports]
            if not candidates:
                raise HubTransportError(
                    f"server offers {list(negotiation.transports)}, client allows {list(self._transports)}"
                )
            failures: list[str] = []
            for attempt, name in enumerate(candidates):
                if attempt:
                    # A connection token is good for one transport attempt: negotiate again before falling back.
                    negotiation = await negotiate(session, self.url, token, self._request_timeout)
                try:
                    transport = await self._open_transport(name, negotiation, token)
                    break
                except HubAuthError:
                    raise
                except HubTransportError as exc:
                    failures.append(str(exc))
                    log.warning("SignalR transport %s failed (%s); trying the next one", name, exc)
            else:
                raise HubTransportError("no transport could connect: " + "; ".join(failures))
        conn = _Connection(self._connections + 1, transport, negotiation)
        try:
            leftover = await self._handshake(conn)
            self._connections += 1
            self._conn = conn
            conn.tasks = [
                asyncio.create_task(self._receive_loop(conn, leftover), name=f"signalr-receive-{conn.number}"),
                asyncio.create_task(self._keep_alive_loop(conn), name=f"signalr-keepalive-{conn.number}"),
            ]
            await self._resubscribe(conn)
            if conn.lost.done():
                raise conn.lost.result()
        except BaseException as exc:
            await self._teardown(conn, exc if isinstance(exc, Exception) else HubError("cancelled"))
            raise
        self._set_state(ConnectionState.CONNECTED)
        log.info("SignalR connected to %s via %s (connection %d)", redact(self.url), transport.name, conn.number)
        return conn

    async def _open_transport(self, name: str, negotiation: Negotiation, token: str | None) -> Transport:
        assert self._session is not None
        if name == WEBSOCKETS:
            return await WebSocketTransport.open(
                self._session, self.url, negotiation.connection_token, token, self._request_timeout
            )
        if name == LONG_POLLING:
            return await LongPollingTransport.open(
                self._session,
                self.url,
                negotiation.connection_token,
                token,
                self._request_timeout,
                self._long_poll_timeout,
            )
        raise HubTransportError(f"unsupported transport {name}")

    async def _handshake(self, conn: _Connection) -> list[str]:
        """Send the handshake, wait for the answer; returns records that came right after it."""
        await conn.transport.send(P.HANDSHAKE_REQUEST)
        records: list[str] = []
        try:
            async with asyncio.timeout(self._handshake_timeout):
                while not records:
                    chunk = await conn.transport.receive()
                    if chunk is None:
                        raise HubHandshakeError("the server closed the connection during the handshake")
                    records = conn.decoder.split(chunk)
        except TimeoutError:
            raise HubHandshakeError(f"no handshake response within {self._handshake_timeout:g}s") from None
        P.parse_handshake(records[0])
        return records[1:]

    async def _resubscribe(self, conn: _Connection) -> None:
        """Invoke every subscription and stream not yet running on ``conn``; loops because the caller may add
        some while this awaits (the state only becomes Connected after it)."""
        while True:
            subs = [s for s in self._subscriptions if s.connection != conn.number]
            streams = [s for s in self._streams if s.active and not s.cancelling and s.connection != conn.number]
            if not subs and not streams:
                return
            for sub in subs:
                sub.connection = conn.number
                try:
                    await self._invoke_on(conn, sub.target, sub.args, self._request_timeout)
                    sub.error = None
                except HubInvocationError as exc:
                    sub.error = exc
                    log.warning("re-invoking %s after reconnect failed: %s", sub.target, exc)
            for stream in streams:
                await self._start_stream(conn, stream)

    async def _start_stream(self, conn: _Connection, stream: HubStream) -> None:
        invocation_id = str(next(self._ids))
        stream.invocation_id = invocation_id
        stream.connection = conn.number
        stream.invocations += 1
        conn.routes[invocation_id] = stream
        await self._send(conn, P.stream_invocation(stream.target, stream.args, invocation_id))

    # ------------------------------------------------------------------ running connection

    async def _send(self, conn: _Connection, text: str) -> None:
        async with conn.send_lock:
            try:
                await conn.transport.send(text)
            except HubError as exc:
                self._lose(conn, exc)
                raise
            conn.last_sent = time.monotonic()

    async def _invoke_on(self, conn: _Connection, target: str, args: list[Any], deadline_s: float | None) -> Any:
        invocation_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.pending[invocation_id] = (target, future)
        try:
            await self._send(conn, P.invocation(target, args, invocation_id))
            try:
                async with asyncio.timeout(deadline_s):
                    return await future
            except TimeoutError:
                raise HubTimeoutError(f"{target}: no completion within {deadline_s} s") from None
        finally:
            conn.pending.pop(invocation_id, None)

    def _lose(self, conn: _Connection, reason: BaseException) -> None:
        if not conn.lost.done():
            conn.lost.set_result(reason)

    async def _receive_loop(self, conn: _Connection, leftover: list[str]) -> None:
        reason: BaseException
        try:
            if leftover:
                await self._receive_text(conn, "".join(r + P.RS for r in leftover))
            while conn.close_message is None:
                chunk = await conn.transport.receive()
                if chunk is None:
                    reason = HubTransportError("the server ended the connection", transport=conn.transport.name)
                    break
                conn.last_received = time.monotonic()
                self._counters["chunks"] += 1
                await self._receive_text(conn, conn.decoder.complete(chunk))
            else:
                error, allow_reconnect = conn.close_message
                reason = HubClosedError(error, allow_reconnect)
        except HubError as exc:
            reason = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the connection visibly, not hang it
            log.exception("SignalR receive loop failed")
            reason = HubError(f"receive loop failed: {exc!r}")
        self._lose(conn, reason)

    async def _receive_text(self, conn: _Connection, text: str) -> None:
        """Route complete records: runs of items of a raw stream go to it as text (no decoding on the loop),
        every other record is decoded and dispatched; in arrival order either way."""
        if not text:
            return
        count = text.count(P.RS)
        invocation_id = P.single_item_run(text, count)
        if invocation_id is not None:
            stream = conn.routes.get(invocation_id)
            if stream is not None and stream.raw:
                # The usual chunk at high rates: thousands of items of one stream, handed over in O(1).
                self._counters["messages"] += count
                now = self._last_event_at = time.time()
                if stream._deliver_raw(RawItems(text, count, now, conn.number)):
                    await self._pause(conn, {stream.buffer})
                return
        records = text.split(P.RS)
        records.pop()
        if not any(s.raw for s in conn.routes.values()):
            await self._handle(conn, conn.decoder.decode_records(records))
            return
        full: set[EventBuffer | RawItemBuffer] = set()
        other: list[str] = []
        run: list[str] = []
        run_stream: HubStream | None = None
        for record in [*records, ""]:  # "" ends the last run
            item_of = P.item_invocation(record)
            stream = conn.routes.get(item_of) if item_of is not None else None
            if stream is not run_stream or stream is None or not stream.raw:
                if run_stream is not None and run:
                    now = self._last_event_at = time.time()
                    raw = RawItems("".join(r + P.RS for r in run), len(run), now, conn.number)
                    self._counters["messages"] += len(run)
                    if run_stream._deliver_raw(raw):
                        full.add(run_stream.buffer)
                run, run_stream = [], None
            if stream is not None and stream.raw:
                if other:
                    await self._handle(conn, conn.decoder.decode_records(other))
                    other = []
                run_stream = stream
                run.append(record)
            elif record:
                other.append(record)
        if other:
            await self._handle(conn, conn.decoder.decode_records(other))
        await self._pause(conn, full)

    async def _pause(self, conn: _Connection, full: set[EventBuffer | RawItemBuffer]) -> None:
        """Stop reading (TCP backpressure on the server) until every full consumer buffer has room again."""
        for buffer in full:
            conn.paused = True
            try:
                await buffer.wait_room()
            finally:
                conn.paused = False
                conn.last_received = time.monotonic()

    async def _handle(self, conn: _Connection, messages: list[dict[str, Any]]) -> None:
        """Dispatch decoded messages in order; pause reading while a consumer's buffer is full."""
        now = time.time()
        number = conn.number
        ledger = self._ledger
        full: set[EventBuffer | RawItemBuffer] = set()
        self._counters["messages"] += len(messages)
        for position, message in enumerate(messages, 1):
            if position % YIELD_EVERY == 0:
                # One WebSocket message may carry thousands of records: let other tasks (the trigger's batch
                # writer, other triggers) run between slices instead of after the whole message.
                await asyncio.sleep(0)
            kind = message["type"]
            if kind == P.STREAM_ITEM:
                stream = conn.routes.get(message.get("invocationId"))  # type: ignore[arg-type]
                if stream is None:
                    pass
                elif stream.raw:
                    # An item the text router did not recognise (other key order, headers): re-encoded as a run.
                    if stream._deliver_raw(RawItems(orjson.dumps(message).decode() + P.RS, 1, now, number)):
                        full.add(stream.buffer)
                elif stream._deliver(message.get("item"), now, number, ledger):
                    full.add(stream.buffer)
                self._last_event_at = now
            elif kind == P.INVOCATION:
                await self._server_invocation(conn, message, now, full)
            elif kind == P.COMPLETION:
                self._completion(conn, message)
            elif kind == P.PING:
                self._counters["pings_received"] += 1
            elif kind == P.CLOSE:
                conn.close_message = (message.get("error"), bool(message.get("allowReconnect", False)))
                break
            # Unknown message types are ignored, as the protocol asks.
        await self._pause(conn, full)

    async def _server_invocation(
        self, conn: _Connection, message: dict[str, Any], now: float, full: set[EventBuffer | RawItemBuffer]
    ) -> None:
        target = message.get("target")
        args = message.get("arguments") or []
        if not isinstance(target, str) or not isinstance(args, list):
            raise P.HubProtocolError(f"malformed invocation message: {message!r:.200}")
        if message.get("invocationId") is not None:
            # Client results (server awaits an answer) are not supported; answer so the server does not hang.
            await self._send(conn, P.completion_error(str(message["invocationId"]), "Client results not supported."))
        self._last_event_at = now
        payload = args[0] if len(args) == 1 else args
        for listener in self._listeners.get(target, ()):
            if listener._deliver(payload, now, conn.number, self._ledger):
                full.add(listener.buffer)
        for callback in self._callbacks.get(target, ()):
            try:
                result = callback(args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("callback for %s failed", target)

    def _completion(self, conn: _Connection, message: dict[str, Any]) -> None:
        invocation_id = message.get("invocationId")
        error = message.get("error")
        pending = conn.pending.pop(invocation_id, None)  # type: ignore[arg-type]
        if pending is not None:
            target, future = pending
            if not future.done():
                if error is not None:
                    future.set_exception(HubInvocationError(target, str(error)))
                else:
                    future.set_result(message.get("result"))
            return
        stream = conn.routes.pop(invocation_id, None)  # type: ignore[arg-type]
        if stream is not None:
            self._finish_stream(stream, HubInvocationError(stream.target, str(error)) if error is not None else None)

    def _finish_stream(self, stream: HubStream, error: BaseException | None) -> None:
        stream.error = error
        if stream in self._streams:
            self._streams.remove(stream)
        stream._end(error)

    async def _keep_alive_loop(self, conn: _Connection) -> None:
        period = min(max(min(self._keep_alive, self._server_timeout) / 4, 0.02), 1.0)
        while not conn.lost.done():
            await asyncio.sleep(period)
            now = time.monotonic()
            if not conn.paused and now - conn.last_received > self._server_timeout:
                self._lose(
                    conn,
                    HubTimeoutError(f"server timeout: no message from the server for {self._server_timeout:g}s"),
                )
                return
            if now - conn.last_sent >= self._keep_alive:
                with contextlib.suppress(HubError):
                    await self._send(conn, P.PING_MESSAGE)

    async def _teardown(self, conn: _Connection, reason: BaseException) -> None:
        """Cancel the connection's tasks, close its transport, fail what waited on it."""
        self._lose(conn, reason)
        current = asyncio.current_task()
        tasks = [t for t in conn.tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await conn.transport.close()
        lost = HubConnectionLostError(f"connection {conn.number} lost", cause=reason)
        for target, future in conn.pending.values():
            if not future.done():
                future.set_exception(HubConnectionLostError(f"{target}: connection lost", cause=reason))
        conn.pending.clear()
        for stream in list(conn.routes.values()):
            if stream.cancelling:
                self._finish_stream(stream, None)
            elif not stream.resume and stream.active:
                self._finish_stream(stream, lost)
        conn.routes.clear()

    # ------------------------------------------------------------------ reconnect

    async def _supervise(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            reason = await asyncio.shield(conn.lost)
            if self._stopping:
                return
            await self._teardown(conn, reason)
            channels: list[_Channel] = [*self._streams, *itertools.chain.from_iterable(self._listeners.values())]
            gap = self._ledger.open_disconnect(
                reason=f"{type(reason).__name__}: {reason}",
                connection=conn.number,
                transport=conn.transport.name,
                started_at=time.time(),
                last_event_at=self._last_event_at,
                unsequenced=[c.name for c in channels if c.tracker is None],
            )
            log.warning("SignalR connection %d lost: %s", conn.number, reason)
            allowed = not (isinstance(reason, HubClosedError) and not reason.allow_reconnect)
            if self._reconnect_delays is None or not allowed:
                self._give_up(gap, reason, "reconnect disabled" if allowed else "server closed without allowReconnect")
                return
            self._set_state(ConnectionState.RECONNECTING, reason)
            last_error: BaseException = reason
            for attempt, delay in enumerate(self._reconnect_delays, 1):
                await asyncio.sleep(delay)
                if self._stopping:
                    return
                gap.attempts = attempt
                try:
                    await self._open()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    last_error = exc
                    log.warning("SignalR reconnect attempt %d failed: %s", attempt, exc)
                    continue
                gap.ended_at = time.time()
                self._counters["reconnects"] += 1
                break
            else:
                self._give_up(gap, last_error, f"{len(self._reconnect_delays)} reconnect attempts failed")
                return

    def _give_up(self, gap: GapRecord, cause: BaseException, why: str) -> None:
        error = HubConnectionLostError(f"SignalR connection to {redact(self.url)} lost for good ({why})", cause=cause)
        gap.error = str(error)
        self._error = error
        for stream in list(self._streams):
            self._finish_stream(stream, error)
        for listener in itertools.chain.from_iterable(self._listeners.values()):
            listener._end(error)
        self._set_state(ConnectionState.DISCONNECTED, error)

    # ------------------------------------------------------------------ subscription management

    async def _cancel_stream(self, stream: HubStream, drain: bool, drain_s: float) -> None:
        stream.cancelling = True  # never re-invoked from now on
        conn = self._conn
        invocation_id = stream.invocation_id
        if conn is not None and invocation_id is not None and conn.routes.get(invocation_id) is stream:
            sent = False
            if not conn.lost.done():
                with contextlib.suppress(HubError):
                    await self._send(conn, P.cancel_invocation(invocation_id))
                    sent = True
            if sent and drain:
                # The server answers a cancel with a completion after its last item; _completion ends the stream.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(drain_s):
                        await stream.ended.wait()
            if conn.routes.get(invocation_id) is stream:
                del conn.routes[invocation_id]
        self._finish_stream(stream, None)

    async def _cancel_subscription(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        conn = self._conn
        if sub.undo and conn is not None and self._state == ConnectionState.CONNECTED and not conn.lost.done():
            await self._invoke_on(conn, sub.undo, sub.args, self._request_timeout)

    def _remove_listener(self, listener: HubListener) -> None:
        listeners = self._listeners.get(listener.target, [])
        if listener in listeners:
            listeners.remove(listener)
