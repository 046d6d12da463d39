"""What a caller holds on to: server streams, server-event listeners and re-invoked subscriptions.

All three survive reconnects: the client re-invokes streams (new invocation id, unless ``resume=False``) and
subscription methods (e.g. ``SubscribeToTicks``) on every new connection, and listeners keep receiving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.realtime.events import (
    DEFAULT_BUFFER_SIZE,
    EventBuffer,
    HubEvent,
    RawItemBuffer,
    RawItems,
)
from airflow_provider_cplugin.realtime.gaps import GapLedger, SequenceFn, SequenceTracker

if TYPE_CHECKING:
    from airflow_provider_cplugin.realtime.client import HubClient


def channel_name(target: str, args: list[Any]) -> str:
    return f"{target}({','.join(map(str, args))})" if args else target


class _Channel:
    """Common part: name, buffer, optional sequence tracking, counters."""

    def __init__(
        self,
        client: HubClient,
        name: str,
        buffer: EventBuffer | None,
        sequence: SequenceFn | None,
        maxsize: int,
        raw: bool = False,
    ) -> None:
        self._client = client
        self.name = name
        self.own_buffer = buffer is None
        if raw and buffer is not None:
            raise ValueError("a raw stream has its own buffer of RawItems; it cannot share an EventBuffer")
        self.raw = raw
        self.buffer: EventBuffer | RawItemBuffer = (
            RawItemBuffer(maxsize) if raw else buffer if buffer is not None else EventBuffer(maxsize)
        )
        self.buffer.attach()
        self.tracker = SequenceTracker(name, sequence) if sequence is not None else None
        self.received = 0  # items that arrived (duplicates included)
        self.delivered = 0  # items handed to the buffer
        self.active = True
        self.ended = asyncio.Event()

    @property
    def duplicates(self) -> int:
        return self.tracker.duplicates if self.tracker else 0

    @property
    def missed(self) -> int | None:
        """Events known to be missing (from sequences); None without a sequence function."""
        return self.tracker.missed if self.tracker else None

    def _deliver(self, payload: Any, now: float, connection: int, ledger: GapLedger) -> bool:
        """Hand one payload to the buffer; True when the buffer is now full (the reader should pause)."""
        self.received += 1
        seq: tuple[Hashable, int] | None = None
        if self.tracker is not None:
            deliver, seq = self.tracker.observe(payload, connection, ledger, now)
            if not deliver:
                return False
        self.delivered += 1
        return self.buffer.push(HubEvent(self.name, payload, now, connection, seq))  # type: ignore[arg-type]

    def _deliver_raw(self, items: RawItems) -> bool:
        """Hand a run of undecoded items to a raw stream's buffer; True when it is now full."""
        self.received += items.count
        self.delivered += items.count  # duplicates are only known once the consumer decoded them
        return self.buffer.push(items)  # type: ignore[arg-type]

    def observe(self, payload: Any, connection: int, received_at: float) -> tuple[bool, tuple[Hashable, int] | None]:
        """Sequence tracking of a raw stream's item, done by its consumer in arrival order (any one thread at a
        time): ``(deliver?, sequence)`` as the client does for decoded streams (duplicates are not delivered,
        jumps are booked in the client's gaps). Without a sequence function: ``(True, None)``."""
        if self.tracker is None:
            return True, None
        return self.tracker.observe(payload, connection, self._client._ledger, received_at)

    def _end(self, error: BaseException | None = None) -> None:
        if self.active:
            self.active = False
            self.buffer.detach(error)
            self.ended.set()

    def __aiter__(self) -> EventBuffer | RawItemBuffer:
        if not self.own_buffer:
            raise TypeError(f"{self.name} delivers into a shared EventBuffer: iterate that buffer instead")
        return self.buffer

    async def get_batch(self, max_items: int = 10_000, wait_s: float | None = None) -> list[HubEvent]:
        if self.raw:
            raise TypeError(f"{self.name} is a raw stream: use get_raw()")
        return await self.buffer.get_batch(max_items, wait_s)  # type: ignore[return-value]

    async def get_raw(self, max_items: int = 10_000, wait_s: float | None = None) -> list[RawItems]:
        """Runs of up to ``max_items`` items in all (at least one run) of a stream opened with ``raw=True``;
        ``[]`` after ``wait_s`` without any, or at the end (the failure that ended the stream is raised)."""
        if not self.raw:
            raise TypeError(f"{self.name} is not a raw stream: use get_batch()")
        return await self.buffer.get_batch(max_items, wait_s)  # type: ignore[return-value]


class HubStream(_Channel):
    """A server-to-client stream (``StreamInvocation``); iterate it (or its shared buffer) for :class:`HubEvent`.

    With ``raw=True`` it delivers :class:`RawItems` instead (the item messages as received, undecoded; iterate it
    or call :meth:`get_raw`): the event loop then only frames and routes bytes and the consumer decodes whole runs
    (in a worker thread, into Arrow), calling :meth:`observe` per item for sequence tracking.

    Leaving ``async with`` or calling :meth:`cancel` sends ``CancelInvocation``; a bare ``break`` out of
    ``async for`` does not (Python does not tell the iterator), unlike the SDK's ``for await``. A server
    completion ends the iteration (an error completion raises :class:`HubInvocationError` after the items
    received before it).
    """

    def __init__(
        self,
        client: HubClient,
        target: str,
        args: list[Any],
        *,
        name: str | None = None,
        buffer: EventBuffer | None = None,
        sequence: SequenceFn | None = None,
        resume: bool = True,
        maxsize: int = DEFAULT_BUFFER_SIZE,
        raw: bool = False,
    ) -> None:
        super().__init__(client, name or channel_name(target, args), buffer, sequence, maxsize, raw)
        self.target = target
        self.args = args
        self.resume = resume
        self.invocation_id: str | None = None
        self.connection = 0  # number of the connection the current invocation runs on
        self.invocations = 0  # how many times it was (re-)invoked
        self.cancelling = False
        self.error: BaseException | None = None

    async def cancel(self, *, drain: bool = False, drain_s: float = 5.0) -> None:
        """Send ``CancelInvocation`` and end the stream.

        ``drain=False`` (SDK behaviour): ends at once; items still in flight are dropped. ``drain=True``: items
        the server sent before it saw the cancel are still delivered, until its completion (or ``drain_s``).
        """
        if self.active and not self.cancelling:
            await self._client._cancel_stream(self, drain, drain_s)

    async def __aenter__(self) -> HubStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cancel()


class HubListener(_Channel):
    """Server events of one target (e.g. ``OnTick``) as :class:`HubEvent` (payload = the single argument)."""

    def __init__(
        self,
        client: HubClient,
        target: str,
        *,
        name: str | None = None,
        buffer: EventBuffer | None = None,
        sequence: SequenceFn | None = None,
        maxsize: int = DEFAULT_BUFFER_SIZE,
    ) -> None:
        super().__init__(client, name or target, buffer, sequence, maxsize)
        self.target = target

    async def close(self) -> None:
        self._client._remove_listener(self)
        self._end()

    async def __aenter__(self) -> HubListener:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Subscription:
    """A hub method re-invoked after every reconnect (``SubscribeToTicks(symbol)``); ``cancel`` calls ``undo``."""

    def __init__(self, client: HubClient, target: str, args: list[Any], undo: str | None) -> None:
        self._client = client
        self.target = target
        self.args = args
        self.undo = undo
        self.active = True
        self.connection = 0  # number of the connection it was last invoked on
        self.error: BaseException | None = None  # last failure of a re-invocation after a reconnect

    async def cancel(self) -> None:
        if self.active:
            self.active = False
            await self._client._cancel_subscription(self)
