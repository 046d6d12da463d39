"""What the hub client delivers: :class:`HubEvent` objects in :class:`EventBuffer` async iterators, or, for a
stream opened with ``raw=True``, :class:`RawItems` (the stream item messages as received, undecoded) in a
:class:`RawItemBuffer`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

RS = "\x1e"

# Events buffered per subscription before the client stops reading the socket. Kept moderate: a deep backlog of
# live objects makes the cyclic GC (and so JSON decoding) measurably slower when the consumer falls behind.
DEFAULT_BUFFER_SIZE = 20_000


class HubEvent:
    """One stream item or server event.

    ``channel``: subscription name (``StreamTicks``, ``StreamTicks(EURUSD)``, ``OnTick``...); ``payload``: the
    item (or the single argument of an event, the argument list when there are several); ``received_at``: wall
    clock (s) when the chunk carrying it arrived; ``connection``: 1 for the first connection, +1 per reconnect;
    ``sequence``: ``(partition, index)`` from the subscription's sequence function, else None.
    """

    __slots__ = ("channel", "connection", "payload", "received_at", "sequence")

    def __init__(
        self,
        channel: str,
        payload: Any,
        received_at: float,
        connection: int,
        sequence: tuple[Hashable, int] | None = None,
    ) -> None:
        self.channel = channel
        self.payload = payload
        self.received_at = received_at
        self.connection = connection
        self.sequence = sequence

    def __repr__(self) -> str:
        return f"HubEvent({self.channel!r}, {self.payload!r:.120}, connection={self.connection}, seq={self.sequence})"


@dataclass(frozen=True, slots=True)
class RawItems:
    """A run of one stream's item messages as they arrived in one transport chunk, not decoded.

    ``text``: the SignalR messages (``{"type":2,"invocationId":...,"item":...}``) each followed by the record
    separator ``\\x1e``; ``count``: how many. The client only framed and routed them (their JSON is checked by
    whoever decodes them: a malformed one is the consumer's to quarantine). ``received_at`` and ``connection`` as
    in :class:`HubEvent`, for every item of the run.
    """

    text: str
    count: int
    received_at: float
    connection: int

    def records(self) -> list[str]:
        records = self.text.split(RS)
        records.pop()  # the text ends with a separator
        return records

    def split(self, n: int) -> tuple[RawItems, RawItems]:
        """The first ``n`` items and the rest (a Python-level split: only where a batch or a limit cuts a run)."""
        records = self.records()
        head, tail = records[:n], records[n:]
        return (
            RawItems("".join(r + RS for r in head), len(head), self.received_at, self.connection),
            RawItems("".join(r + RS for r in tail), len(tail), self.received_at, self.connection),
        )

    def messages(self) -> list[Any]:
        """The decoded messages (one C-level parse of the run; :class:`ValueError` if one is not JSON)."""
        if not self.count:
            return []
        messages: list[Any] = orjson.loads("[" + self.text[:-1].replace(RS, ",") + "]")
        if len(messages) != self.count:  # two broken records that happened to join into valid JSON
            raise ValueError("record count mismatch")
        return messages


T = TypeVar("T")


class _Bounded(Generic[T]):
    """Bounded FIFO with an async iterator; shared by several subscriptions to merge them.

    When full, the client stops reading the socket until the consumer catches up (TCP backpressure slows the
    server) instead of dropping events. Iteration ends when every attached subscription ended (or the client
    stopped); a failure is raised after the events received before it have been handed out. The bound counts
    events (:meth:`_weight` of each entry).
    """

    def __init__(self, maxsize: int = DEFAULT_BUFFER_SIZE) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._size = 0
        self._items: deque[T] = deque()
        self._nonempty = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._attached = 0
        self._ever_attached = False
        self._closed = False
        self._error: BaseException | None = None
        self._signalled = False

    def __len__(self) -> int:
        """Events buffered."""
        return self._size

    @staticmethod
    def _weight(entry: T) -> int:
        return 1

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def full(self) -> bool:
        return self._size >= self.maxsize

    def attach(self) -> None:
        self._attached += 1
        self._ever_attached = True

    def detach(self, error: BaseException | None = None) -> None:
        self._attached = max(self._attached - 1, 0)
        if error is not None:
            self.close(error)
        elif self._attached == 0 and self._ever_attached:
            self.close()

    def push(self, entry: T) -> bool:
        """Append ``entry`` (dropped once closed); True when the buffer is now full (the reader should pause)."""
        if self._closed:
            return False
        self._items.append(entry)
        self._size += self._weight(entry)
        if not self._signalled:
            self._wake()
        if self._size >= self.maxsize:
            self._room.clear()
            return True
        return False

    def close(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._room.set()
        self._wake()

    def _wake(self) -> None:
        # A plain flag mirrors the Event: push() runs per event, Event.is_set() per event showed in profiles.
        if not self._signalled:
            self._signalled = True
            self._nonempty.set()

    async def wait_room(self) -> None:
        await self._room.wait()

    def _popped(self, events: int) -> None:
        self._size -= events
        if not self._room.is_set() and self._size < self.maxsize // 2 + 1:
            self._room.set()

    async def _wait(self) -> None:
        self._signalled = False
        self._nonempty.clear()
        await self._nonempty.wait()

    async def get(self) -> T:
        """Next entry; raises StopAsyncIteration at the end, or the failure that ended the buffer."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._wait()
        entry = self._items.popleft()
        self._popped(self._weight(entry))
        return entry

    async def get_batch(self, max_items: int = 10_000, wait_s: float | None = None) -> list[T]:
        """Entries of up to ``max_items`` events (at least one entry), waiting at most ``wait_s`` for the first
        (``[]`` on timeout).

        At the end of the buffer returns ``[]`` if nothing is left, or raises the failure that ended it.
        """
        if not self._items and not self._closed:
            try:
                async with asyncio.timeout(wait_s):
                    await self._wait()
            except TimeoutError:
                return []
        if not self._items:
            if self._closed and self._error is not None:
                raise self._error
            return []
        batch, events = self._take(max_items)
        self._popped(events)
        return batch

    def _take(self, max_items: int) -> tuple[list[T], int]:
        items, weight = self._items, self._weight
        batch = [items.popleft()]
        events = weight(batch[0])
        while items and events + weight(items[0]) <= max_items:
            entry = items.popleft()
            batch.append(entry)
            events += weight(entry)
        return batch, events

    def __aiter__(self) -> _Bounded[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()


class EventBuffer(_Bounded[HubEvent]):
    """Bounded FIFO of :class:`HubEvent` (see :class:`_Bounded`)."""

    def _take(self, max_items: int) -> tuple[list[HubEvent], int]:
        n = min(max_items, len(self._items))
        return [self._items.popleft() for _ in range(n)], n


class RawItemBuffer(_Bounded[RawItems]):
    """Bounded FIFO of :class:`RawItems`; the bound counts items, not runs."""

    @staticmethod
    def _weight(entry: RawItems) -> int:
        return entry.count
