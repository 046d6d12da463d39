"""Per-connection queue of outgoing frames, drained in batches by the transport (one socket write per batch)."""

from __future__ import annotations

import asyncio
import time

from airflow_provider_cplugin.emulator.hubs.protocol import PING_FRAME


class Outbox:
    """Producers append complete frames; the WebSocket writer or a long-poll request takes them all at once.

    ``put`` never blocks (control frames must not wait behind data); bulk producers call ``wait_room`` first so
    a slow client slows the pumps down instead of growing memory without bound.
    """

    def __init__(self, high_water: int = 8_000_000) -> None:
        self._frames: list[str] = []
        self._size = 0
        self._high_water = high_water
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False
        self.last_put = time.monotonic()

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str) -> None:
        if self.closed:
            return
        self._frames.append(frame)
        self._size += len(frame)
        self.last_put = time.monotonic()
        self._ready.set()
        if self._size >= self._high_water:
            self._room.clear()

    def put_many(self, frames: list[str]) -> None:
        if self.closed or not frames:
            return
        self._frames.extend(frames)
        self._size += sum(map(len, frames))
        self.last_put = time.monotonic()
        self._ready.set()
        if self._size >= self._high_water:
            self._room.clear()

    def put_ping(self) -> None:
        self.put(PING_FRAME)

    def requeue(self, frames: list[str]) -> None:
        """Put frames taken but not written back in front (a stalled writer sends them later)."""
        if not frames:
            return
        self._frames[:0] = frames
        self._size += sum(map(len, frames))
        self._ready.set()
        if self._size >= self._high_water:
            self._room.clear()

    async def wait_room(self) -> None:
        await self._room.wait()

    def take_now(self, max_frames: int | None = None) -> list[str]:
        if max_frames is None or len(self._frames) <= max_frames:
            frames, self._frames, self._size = self._frames, [], 0
        else:
            frames, self._frames = self._frames[:max_frames], self._frames[max_frames:]
            self._size = sum(map(len, self._frames))
        if not self._frames:
            self._ready.clear()
        if self._size < self._high_water:
            self._room.set()
        return frames

    async def take(self, wait_s: float | None = None, max_frames: int | None = None) -> list[str]:
        """Frames queued so far, waiting up to ``wait_s`` for the first; ``[]`` on timeout or once closed+empty."""
        if not self._frames and not self.closed:
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return []
        return self.take_now(max_frames)

    def close(self) -> None:
        """No new frames; frames already queued are still delivered."""
        self.closed = True
        self._ready.set()
        self._room.set()
