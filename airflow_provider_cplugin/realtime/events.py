"""What the hub client delivers: :class:`HubEvent` objects in :class:`EventBuffer` async iterators."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Any

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


class EventBuffer:
    """Bounded FIFO of events with an async iterator; shared by several subscriptions to merge them.

    When full, the client stops reading the socket until the consumer catches up (TCP backpressure slows the
    server) instead of dropping events. Iteration ends when every attached subscription ended (or the client
    stopped); a failure is raised after the events received before it have been handed out.
    """

    def __init__(self, maxsize: int = DEFAULT_BUFFER_SIZE) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: deque[HubEvent] = deque()
        self._nonempty = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._attached = 0
        self._ever_attached = False
        self._closed = False
        self._error: BaseException | None = None
        self._signalled = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def attach(self) -> None:
        self._attached += 1
        self._ever_attached = True

    def detach(self, error: BaseException | None = None) -> None:
        self._attached = max(self._attached - 1, 0)
        if error is not None:
            self.close(error)
        elif self._attached == 0 and self._ever_attached:
            self.close()

    def push(self, event: HubEvent) -> bool:
        """Append ``event`` (dropped once closed); True when the buffer is now full (the reader should pause)."""
        if self._closed:
            return False
        items = self._items
        items.append(event)
        if not self._signalled:
            self._wake()
        if len(items) >= self.maxsize:
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

    def _popped(self) -> None:
        if not self._room.is_set() and len(self._items) < self.maxsize // 2 + 1:
            self._room.set()

    async def _wait(self) -> None:
        self._signalled = False
        self._nonempty.clear()
        await self._nonempty.wait()

    async def get(self) -> HubEvent:
        """Next event; raises StopAsyncIteration at the end, or the failure that ended the buffer."""
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._wait()
        event = self._items.popleft()
        self._popped()
        return event

    async def get_batch(self, max_items: int = 10_000, wait_s: float | None = None) -> list[HubEvent]:
        """Up to ``max_items`` events, waiting at most ``wait_s`` for the first (``[]`` on timeout).

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
        n = min(max_items, len(self._items))
        batch = [self._items.popleft() for _ in range(n)]
        self._popped()
        return batch

    def __aiter__(self) -> EventBuffer:
        return self

    async def __anext__(self) -> HubEvent:
        return await self.get()
