"""One SignalR connection on the emulated server: handshake, dispatch, pumps, keep-alive, timeouts, faults.

Transport-agnostic: the WebSocket handler and the long-polling handlers feed inbound text to :meth:`on_text`
and drain :attr:`outbox` through :meth:`apply_faults`. Everything the hub sends is a frame in the outbox, so
all streams of a connection share one batch per socket write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.emulator.hubs import faults as hub_faults
from airflow_provider_cplugin.emulator.hubs import protocol as P
from airflow_provider_cplugin.emulator.hubs.definitions import ON_TICK, HubMethodError, HubSpec, Method, find_method
from airflow_provider_cplugin.emulator.hubs.feeds import TICKS, TICKS_PER_S, Cursor, now_ticks
from airflow_provider_cplugin.emulator.hubs.outbox import Outbox
from airflow_provider_cplugin.emulator.hubs.state import StreamRecord

if TYPE_CHECKING:
    from airflow_provider_cplugin.emulator.hubs.state import HubsState

log = logging.getLogger(__name__)

WEBSOCKETS = "WebSockets"
SERVER_SENT_EVENTS = "ServerSentEvents"
LONG_POLLING = "LongPolling"
_NOT_MESSAGES = frozenset({P.PING_FRAME, P.HANDSHAKE_OK})


def _arity_error(target: str, given: int, method: Method) -> str:
    expected = str(method.max_args) if method.min_args == method.max_args else f"{method.min_args}-{method.max_args}"
    return (
        f"Failed to invoke '{target}' due to an error on the server. InvalidDataException: Invocation provides "
        f"{given} argument(s) but target expects {expected}."
    )


def _missing_method_error(target: str, other_kind: str | None) -> str:
    if other_kind is not None:
        kind = "non-streaming" if other_kind == "streaming" else "streaming"
        return f"The client attempted to invoke the {other_kind} '{target}' method with a {kind} invocation."
    return f"Failed to invoke '{target}' due to an error on the server. HubException: Method does not exist."


class HubConnection:
    def __init__(self, hubs: HubsState, spec: HubSpec, access_token: str | None, negotiate_version: int) -> None:
        self.hubs = hubs
        self.spec = spec
        self.feeds = hubs.feeds
        self.settings = hubs.settings
        self.id = secrets.token_urlsafe(16)
        # negotiateVersion 0 clients connect with the connection id itself.
        self.token = secrets.token_urlsafe(16) if negotiate_version >= 1 else self.id
        self.access_token = access_token
        self.transport: str | None = None
        self.outbox = Outbox(self.settings.outbox_high_water)
        self.reader = P.RecordReader()
        self.handshake_done = False
        self.closed = False
        self.close_reason: str | None = None
        self.created = time.monotonic()
        self.last_received = self.created
        self.messages_sent = 0
        self.faults = hub_faults.ArmedFaults()
        self.expire_at: float | None = None
        self.tick_filter: set[int] = set()
        self.streams: dict[str, tuple[asyncio.Task[None], StreamRecord]] = {}
        self._cancelled_by_client: set[str] = set()
        self._event_tasks: dict[str, asyncio.Task[None]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._malformed_sent = False
        self._corrupted = False
        self._stall_done = False
        # Long polling bookkeeping.
        self.poll_active = 0
        self.last_poll_end = self.created

    # ------------------------------------------------------------------ lifecycle

    def register(self) -> None:
        self.hubs.connections[self.token] = self
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.negotiate_ttl_s, self._expire_if_unused)

    def _expire_if_unused(self) -> None:
        if self.transport is None and not self.closed:
            self.close(send_close=False, reason="never connected")

    def attach(self, transport: str) -> None:
        self.transport = transport
        self.hubs.stats.transports[transport] += 1
        self.hubs.stats.connections_opened += 1
        self.last_received = time.monotonic()
        self._watchdog = asyncio.create_task(self._watch(), name=f"hub-watchdog-{self.id}")

    def close(
        self,
        error: str | None = None,
        allow_reconnect: bool | None = None,
        *,
        send_close: bool = True,
        reason: str = "server",
    ) -> None:
        """Stop everything; a Close frame (when asked) is the last frame the transport delivers."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = error or reason
        self.hubs.stats.closes[reason] += 1
        for task, record in self.streams.values():
            if record.state == "running":
                record.state = "aborted"
            task.cancel()
        self.streams.clear()
        for task in self._event_tasks.values():
            task.cancel()
        self._event_tasks.clear()
        if send_close and self.handshake_done:
            self.outbox.put(P.close_frame(error, allow_reconnect))
        self.outbox.close()
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        if self.transport == LONG_POLLING and len(self.outbox):
            # Keep a tombstone so the next poll can fetch the Close frame (then 204); forget it eventually.
            asyncio.get_running_loop().call_later(self.settings.poll_disconnect_s, self.forget)
        else:
            self.forget()

    def forget(self) -> None:
        if self.hubs.connections.get(self.token) is self:
            del self.hubs.connections[self.token]

    async def _watch(self) -> None:
        """Handshake timeout, keep-alive pings, client timeout, token expiry, abandoned long polls."""
        s = self.settings
        period = min(s.token_check_s, s.keep_alive_s / 2, 0.5)
        tokens = self.hubs.emulator.tokens
        while not self.closed:
            await asyncio.sleep(period)
            now = time.monotonic()
            if not self.handshake_done:
                if now - self.created > s.handshake_timeout_s:
                    self.close(send_close=False, reason="handshake timeout")
                continue
            if now - self.outbox.last_put >= s.keep_alive_s:
                self.outbox.put_ping()
            if now - self.last_received > s.client_timeout_s:
                self.close(
                    "Server timeout: no message from the client within the client timeout.",
                    True,
                    reason="client timeout",
                )
                return
            if self.access_token is not None:
                # ASP.NET Core keeps an authenticated connection open after its token expires
                # (CloseOnAuthenticationExpiration = false): the token is only re-checked under the fault switch.
                status = "valid"
                if self.faults.close_on_token_expiry is not None:
                    status = tokens.status(self.access_token)
                if self.expire_at is not None and now >= self.expire_at:
                    status = "expired"
                if status != "valid":
                    detail = "has expired" if status == "expired" else "is no longer valid"
                    self.close(f"Unauthorized: the access token {detail}.", True, reason=f"token {status}")
                    return
            if (
                self.transport == LONG_POLLING
                and not self.poll_active
                and now - self.last_poll_end > s.poll_disconnect_s
            ):
                self.close(send_close=False, reason="long polling abandoned")
                return

    # ------------------------------------------------------------------ inbound

    async def on_text(self, text: str) -> None:
        self.last_received = time.monotonic()
        try:
            for record in self.reader.feed(text):
                if self.closed:
                    return
                if not self.handshake_done:
                    await self._handshake(record)
                else:
                    self._dispatch(P.parse_message(record))
        except P.ProtocolViolation as exc:
            log.info("hub connection %s: protocol violation: %s", self.id, exc)
            self.close(str(exc), False, reason="protocol violation")

    async def _handshake(self, record: str) -> None:
        stats = self.hubs.stats
        try:
            P.check_handshake(*P.parse_handshake(record))
        except P.ProtocolViolation as exc:
            stats.handshake_errors += 1
            self.outbox.put(P.handshake_error_frame(str(exc)))
            self.close(send_close=False, reason="handshake error")
            return
        store = self.hubs.emulator.faults
        delay = hub_faults.take(store, "delay_handshake", self.spec.path)
        if delay is not None:
            stats.faults_applied["delay_handshake"] += 1
            await asyncio.sleep(delay["delay_s"])
            if self.closed:
                return
        self.outbox.put(P.HANDSHAKE_OK)
        self.handshake_done = True
        stats.handshakes += 1
        self.faults = hub_faults.ArmedFaults.take_all(store, self.spec.path)
        for name in self.faults.names():
            stats.faults_applied[name] += 1
        if self.faults.expire_token is not None:
            self.expire_at = time.monotonic() + float(self.faults.expire_token["after_s"])
        if self.spec.on_connected is not None:
            self.spec.on_connected(self)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == P.INVOCATION:
            self._invoke(message)
        elif kind == P.STREAM_INVOCATION:
            self._start_stream(message)
        elif kind == P.CANCEL_INVOCATION:
            self._cancel(message.get("invocationId"))
        elif kind == P.PING:
            self.hubs.stats.pings_received += 1
        elif kind == P.CLOSE:
            self.close(send_close=False, reason="client close")
        # Other types (client-to-server streams, future types) are ignored.

    @staticmethod
    def _target_and_args(message: dict[str, Any]) -> tuple[str, list[Any]]:
        target = message.get("target")
        args = message.get("arguments", [])
        if not isinstance(target, str) or not isinstance(args, list):
            raise P.ProtocolViolation("Invalid invocation: 'target' must be a string and 'arguments' an array.")
        return target, args

    def _invoke(self, message: dict[str, Any]) -> None:
        target, args = self._target_and_args(message)
        invocation_id = message.get("invocationId")
        self.hubs.stats.invocations[target] += 1
        error: str | None = None
        result: Any = None
        method = find_method(self.spec.invocations, target)
        if method is None:
            streaming = find_method(self.spec.streams, target) is not None
            error = _missing_method_error(target, "streaming" if streaming else None)
        elif not method.min_args <= len(args) <= method.max_args:
            error = _arity_error(target, len(args), method)
        else:
            try:
                result = method.handler(self, args)
            except HubMethodError as exc:
                error = f"An unexpected error occurred invoking '{target}' on the server. HubException: {exc}"
        if isinstance(invocation_id, str):
            self.outbox.put(
                P.completion_frame(invocation_id, result=result, error=error, has_result=result is not None)
            )

    def _start_stream(self, message: dict[str, Any]) -> None:
        target, args = self._target_and_args(message)
        invocation_id = message.get("invocationId")
        if not isinstance(invocation_id, str):
            raise P.ProtocolViolation("Invalid stream invocation: 'invocationId' is required.")
        self.hubs.stats.invocations[target] += 1
        if invocation_id in self.streams:
            in_use = f"Invocation ID '{invocation_id}' is already in use."
            self.outbox.put(P.completion_frame(invocation_id, error=in_use))
            return
        method = find_method(self.spec.streams, target)
        error: str | None = None
        if method is None:
            plain = find_method(self.spec.invocations, target) is not None
            error = _missing_method_error(target, "non-streaming" if plain else None)
        elif not method.min_args <= len(args) <= method.max_args:
            error = _arity_error(target, len(args), method)
        if error is None and method is not None:
            try:
                source = method.handler(self, args)
            except HubMethodError as exc:
                error = f"An unexpected error occurred invoking '{target}' on the server. HubException: {exc}"
        if error is not None:
            self.outbox.put(P.completion_frame(invocation_id, error=error))
            return
        record = StreamRecord(self.id, invocation_id, target, list(args), source.feed)
        self.hubs.stats.streams.append(record)
        limit: int | None = None
        complete = self.faults.complete_stream
        if complete is not None and re.search(str(complete["stream"]), target):
            self.faults.complete_stream = None  # one stream per armed fault
            limit = int(complete["after_items"])
        task = asyncio.create_task(self._stream(invocation_id, source.feed, source.cursor, record, limit))
        self.streams[invocation_id] = (task, record)

    def _cancel(self, invocation_id: Any) -> None:
        entry = self.streams.get(invocation_id) if isinstance(invocation_id, str) else None
        if entry is not None:
            self._cancelled_by_client.add(invocation_id)
            entry[0].cancel()

    # ------------------------------------------------------------------ outbound

    def push_event(self, target: str, arguments_json: str) -> None:
        self.outbox.put(P.invocation_frame(target, arguments_json))

    def start_event_pump(self, target: str, feed: str, cursor: Cursor, leading_args: str = "") -> None:
        """Push ``target(*leading_args, item)`` for every item of ``feed`` the cursor renders (once per target).

        ``leading_args``: JSON text of the arguments before the item, with its trailing comma (v1 ``onTick``)."""
        if target in self._event_tasks or self.closed:
            return
        prefix = f'{{"type":1,"target":{P.dumps(target)},"arguments":[{leading_args}'
        self._event_tasks[target] = asyncio.create_task(self._pump(feed, cursor, prefix, "]}" + P.RS, None))

    def subscribe_ticks(self, symbol: int) -> None:
        self.tick_filter.add(symbol)
        self.start_event_pump(ON_TICK, TICKS, self.feeds.ticks.cursor(self.tick_filter))

    def unsubscribe_ticks(self, symbol: int) -> None:
        self.tick_filter.discard(symbol)

    async def _stream(
        self, invocation_id: str, feed: str, cursor: Cursor, record: StreamRecord, limit: int | None = None
    ) -> None:
        try:
            await self._pump(feed, cursor, P.stream_item_prefix(invocation_id), "}" + P.RS, record, limit)
            if limit is not None and not self.closed:
                # complete_stream fault: the server ends the stream early with an empty completion.
                record.state = "completed"
                self.streams.pop(invocation_id, None)
                self.outbox.put(P.completion_frame(invocation_id))
        except asyncio.CancelledError:
            if invocation_id in self._cancelled_by_client:
                self._cancelled_by_client.discard(invocation_id)
                record.state = "cancelled"
                self.streams.pop(invocation_id, None)
                # ASP.NET answers a cancelled stream with an empty completion after its last item.
                if not self.closed:
                    self.outbox.put(P.completion_frame(invocation_id))
                return
            raise

    async def _pump(
        self,
        feed: str,
        cursor: Cursor,
        prefix: str,
        suffix: str,
        record: StreamRecord | None,
        limit: int | None = None,
    ) -> None:
        """Follow the feed clock: every due event goes out, batched per wake-up (live: starts at the next event).

        With ``limit`` (a stream record needed) it returns once that many items were sent."""
        if limit is not None and (record is None or limit <= 0):
            return
        clocks = self.feeds.clocks
        settings = self.settings
        outbox = self.outbox
        next_index = clocks[feed].index_at(now_ticks()) + 1
        while not self.closed:
            clock = clocks[feed]  # re-read: the control API may retime the feed
            last = clock.index_at(now_ticks())
            if last >= next_index:
                # Under a limit one index at a time, so the stream ends exactly after its last allowed item.
                stop = next_index + 1 if limit is not None else min(last + 1, next_index + settings.max_batch_frames)
                rendered = cursor.render(next_index, stop, clock)
                next_index = stop
                if rendered.items:
                    await outbox.wait_room()
                    if self.closed:
                        return
                    outbox.put_many([prefix + item + suffix for item in rendered.items])
                    if record is not None:
                        record.items += len(rendered.items)
                        if record.first_index is None:
                            record.first_index = rendered.first
                        record.last_index = rendered.last
                        if limit is not None and record.items >= limit:
                            return
                if stop <= last:
                    await asyncio.sleep(0)  # catching up: let the writer and other pumps run
                    continue
            if clock.rate <= 0:
                await asyncio.sleep(0.05)
                continue
            delay = (clock.ticks_of(next_index) - now_ticks()) / TICKS_PER_S
            await asyncio.sleep(max(delay, settings.batch_interval_s))

    # ------------------------------------------------------------------ faults on the way out

    @staticmethod
    def _messages(frames: list[str]) -> int:
        return len(frames) - sum(1 for f in frames if f in _NOT_MESSAGES) if frames else 0

    @staticmethod
    def _split(frames: list[str], messages: int) -> int:
        """Smallest prefix holding ``messages`` hub messages, extended over trailing pings/handshake frames."""
        k = 0
        count = 0
        n = len(frames)
        while k < n and count < messages:
            if frames[k] not in _NOT_MESSAGES:
                count += 1
            k += 1
        while k < n and frames[k] in _NOT_MESSAGES:
            k += 1
        return k

    def apply_faults(self, frames: list[str]) -> tuple[list[str], str | None, float]:
        """``(frames to write now, action, stall seconds)``; action is None, ``"stall"`` or ``"drop"``."""
        f = self.faults
        if f.stall is None and f.drop is None and f.malformed is None and (f.corrupt_item is None or self._corrupted):
            self.messages_sent += self._messages(frames)
            return frames, None, 0.0
        out = frames
        action: str | None = None
        delay = 0.0
        if f.stall is not None and not self._stall_done:
            due = int(f.stall["after_messages"]) - self.messages_sent
            if due <= self._messages(frames):
                k = self._split(frames, max(due, 0))
                self.outbox.requeue(frames[k:])
                out = frames[:k]
                action, delay = "stall", float(f.stall["delay_s"])
                self._stall_done = True
        if f.drop is not None:
            due = int(f.drop["after_messages"]) - self.messages_sent
            if due <= self._messages(out):
                out = out[: self._split(out, max(due, 0))]
                action = "drop"
        sent_now = self._messages(out)
        if f.malformed is not None and not self._malformed_sent:
            due = int(f.malformed["after_messages"]) - self.messages_sent
            if due <= sent_now:
                k = self._split(out, max(due, 0))
                out = [*out[:k], str(f.malformed["frame"]), *out[k:]]
                self._malformed_sent = True
        if f.corrupt_item is not None and not self._corrupted:
            due = int(f.corrupt_item["after_messages"]) - self.messages_sent
            if due <= sent_now:
                out = self._corrupt(out, self._split(out, max(due, 0)), f.corrupt_item)
        self.messages_sent += sent_now
        return out, action, delay

    def _corrupt(self, frames: list[str], start: int, options: dict[str, Any]) -> list[str]:
        """The first stream item from ``start`` on that has ``field`` gets ``value`` there (one item, once)."""
        name = str(options["field"])
        for k in range(start, len(frames)):
            if not frames[k].startswith('{"type":2,'):
                continue
            message = json.loads(frames[k].rstrip(P.RS))
            item = message.get("item")
            if isinstance(item, dict) and name in item:
                item[name] = options["value"]
                self._corrupted = True
                return [*frames[:k], P.dumps(message) + P.RS, *frames[k + 1 :]]
        return frames

    def record_batch(self, frames: int, chars: int) -> None:
        stats = self.hubs.stats
        stats.batches_sent += 1
        stats.frames_sent += frames
        stats.chars_sent += chars
