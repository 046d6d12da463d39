"""Bounded, ordered prefetch of an iterator in a background thread (used by paging and by Parquet landing)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def read_ahead(source: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead of the consumer.

    Fetching page n+1 (socket reads and JSON decoding in the thread) overlaps converting and writing page n, so
    a snapshot is bounded by the slower of the two rather than their sum; memory grows by ``depth`` items only
    (plus the one the thread holds while the queue is full).
    An error in the source is re-raised in the consumer; closing the consumer stops the thread. (Hand-written:
    ``concurrent.futures`` has no bounded, ordered prefetch of a generator.)
    """
    items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put("error", err)

    thread = threading.Thread(target=produce, name="cplugin-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        # Not joined: the thread may be inside a request nobody wants any more (a wrong cursor guess, an abandoned
        # loop); it sees ``stop`` when that returns, drops the result and ends.
        stop.set()
