"""Cursor paging, shared by both hooks: :class:`PageTracker` (every paging decision and refusal) and the one
fetch-ahead mechanism (:func:`paginate_ahead` in a thread for the sync hook, :func:`apaginate_ahead` as a task for the
async hook): page n+1 is requested with the cursor peeked from body n while body n is decoded; the decoded page
decides, and a wrong guess only costs a re-sent request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.call import Call
from airflow_provider_cplugin.hooks.envelope import ApiResponse, DataDecoder
from airflow_provider_cplugin.hooks.reply import Reply

MAX_PAGE_LIMIT = 5000


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paged list (``number`` starts at 1).

    ``items`` is the page's ``data``: a list of dicts, or with a :class:`DataDecoder` the decoder's form (an Arrow
    record batch of the entity); ``rows`` counts it either way.
    """

    items: Any
    number: int
    next_cursor: str | None
    activity_id: str | None
    rows: int = 0


def check_page_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"limit must be an integer within 1..{MAX_PAGE_LIMIT}, got {limit!r}")
    return limit


# Consecutive empty pages that still hand out a cursor before paging gives up. A server that filters rows after
# reading a window may legitimately answer an empty page with a cursor, but not many in a row: a long run is a
# server walking nowhere (each new cursor defeats the repeated-cursor guard), so it is bounded like a loop.
MAX_EMPTY_PAGES = 20


def api_method_of(path: str) -> str:
    """``UsersRequest`` for ``/api/v2/MT4/{tp}/UsersRequest``, ``OrderByGroup`` for ``.../OrderByGroup/*``."""
    parts = path.split("?")[0].strip("/").split("/")
    return parts[4] if len(parts) > 4 and parts[:2] == ["api", "v2"] else path


def _shape(data: Any) -> tuple[int, tuple[Any, Any] | None] | None:
    """(rows, (first row, last row)) of a page's data, or None when it is no list of rows."""
    if isinstance(data, list):
        return len(data), ((data[0], data[-1]) if data else None)
    rows = getattr(data, "num_rows", None)
    if isinstance(rows, int) and hasattr(data, "slice"):  # an Arrow batch from a DataDecoder
        # Compared as one-row batches (RecordBatch == is value equality): turning them into Python would make
        # pyarrow import pandas (~45 MB) for its timestamps.
        return rows, ((data.slice(0, 1), data.slice(rows - 1)) if rows else None)
    return None


class PageTracker:
    """The paging decisions of both hooks: builds :class:`Page` objects and refuses every answer that would land
    a partial or duplicated list quietly.

    Refused (:class:`CPluginApiError` naming the API method and the page number): ``hasMore: true`` without a
    ``nextCursor`` (taking it as the end drops the rest of the list), ``data: null`` on a page that announces more
    (``hasMore`` or a cursor), data that is not a list, more rows than the ``limit`` sent (a real server never
    does it; the extra rows would come again on the next page), a cursor handed out twice, a page identical to the
    previous one, more than :data:`MAX_EMPTY_PAGES` empty pages with cursors in a row, and more than
    ``max_pages`` pages. ``hasMore: false`` ends the list even with a cursor (the SDK's rule).
    """

    def __init__(self, method: str, path: str, limit: int, max_pages: int | None = None) -> None:
        self.method = method
        self.path = path
        self.api_method = api_method_of(path)
        self.limit = check_page_limit(limit)
        if max_pages is not None and (isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1):
            raise ValueError(f"max_pages must be a positive integer or None, got {max_pages!r}")
        self.max_pages = max_pages
        self.number = 0
        self.cursor: str | None = None
        self._seen: set[str] = set()
        self._empty_run = 0
        self._previous: tuple[Any, ...] | None = None  # (rows, first, last) of the previous page
        self.done = False

    def page(self, response: ApiResponse) -> Page:
        self.number += 1
        data, next_cursor, has_more = response.data, response.next_cursor, response.has_more
        shape: tuple[int, tuple[Any, Any] | None] | None
        if has_more and next_cursor is None:
            raise self._error(
                response, "meta.paging.hasMore is true but nextCursor is missing; taking it as the last page would "
                "silently drop the rest of the list",
            )  # fmt: skip
        if data is None:
            if has_more or next_cursor is not None:
                raise self._error(
                    response, f"data is null but meta.paging announces more (hasMore={has_more}, "
                    f"nextCursor={next_cursor!r}); an empty page would be a guess",
                )  # fmt: skip
            data, shape = [], (0, None)
        else:
            shape = _shape(data)
            if shape is None:
                raise self._error(response, f"paged response data is a {type(data).__name__}, not a list")
        rows, ends = shape
        if rows > self.limit:
            raise self._error(
                response, f"{rows} rows for limit={self.limit}: the server ignored the page size, so the "
                "rows past the limit would come again on the next page",
            )  # fmt: skip
        if not has_more:
            next_cursor = None  # hasMore decides (SDK): a cursor with hasMore false is ignored
        if next_cursor is not None:
            self._check_progress(response, rows, ends, next_cursor)
        self.done = next_cursor is None
        self.cursor = next_cursor
        return Page(data, self.number, next_cursor, response.activity_id, rows)

    def _check_progress(self, response: ApiResponse, rows: int, ends: tuple[Any, Any] | None, next_cursor: str) -> None:
        """Raise when paging on would loop, walk nowhere or run past ``max_pages``; remember the cursor."""
        if next_cursor in self._seen:
            raise self._error(response, f"returned cursor {next_cursor!r} again; stopping instead of looping forever")
        fingerprint = (rows, *ends) if ends is not None else None
        if fingerprint is not None and fingerprint == self._previous:
            raise self._error(
                response, f"repeats page {self.number - 1} row for row under a new cursor; stopping instead of "
                "looping forever",
            )  # fmt: skip
        self._empty_run = 0 if rows else self._empty_run + 1
        if self._empty_run > MAX_EMPTY_PAGES:
            raise self._error(
                response, f"{self._empty_run} empty pages in a row that still hand out a cursor (at most "
                f"{MAX_EMPTY_PAGES} are tolerated); the server is not making progress",
            )  # fmt: skip
        if self.max_pages is not None and self.number >= self.max_pages:
            raise self._error(
                response, f"announces more pages but max_pages={self.max_pages} were read; raise max_pages if "
                "the list is really that long",
            )  # fmt: skip
        self._seen.add(next_cursor)
        self._previous = fingerprint

    def _error(self, response: ApiResponse, description: str) -> CPluginApiError:
        return CPluginApiError(
            "Internal",
            f"{self.api_method} page {self.number}: {description}",
            activity_id=response.activity_id,
            status=response.status,
            method=self.method,
            path=self.path,
        )

    def params(self, params: Mapping[str, Any] | None, cursor: str | None = None) -> dict[str, Any]:
        """Query of the next page: ``params`` plus ``limit`` and the tracked cursor (or ``cursor``, a guess)."""
        query = {k: v for k, v in (params or {}).items() if k not in ("limit", "cursor")}
        query["limit"] = self.limit
        cursor = cursor if cursor is not None else self.cursor
        if cursor is not None:
            query["cursor"] = cursor
        return query


# ``"nextCursor":"..."`` with unescaped quotes can only be a JSON key (quotes inside strings are escaped), so a
# match is the envelope's paging cursor unless a record carries that key too; callers verify against the decoded
# page anyway. Cursors with escapes are not guessed.
_NEXT_CURSOR = re.compile(rb'"nextCursor"\s*:\s*"([^"\\]+)"')
PEEK_CHARS = 1024


def peek_next_cursor(body: bytes | str) -> str | None:
    """The page's ``meta.paging.nextCursor`` read from the ends of the body without decoding it, or None.

    Lets a paginator send the request for page n+1 before page n is decoded (decoding a 5000-record page costs
    about a quarter of the server's time to produce one). ``meta`` is usually the envelope's last key; the head is
    tried too for servers that put it first. Only a guess: the decoded page decides.
    """
    raw = body.encode() if isinstance(body, str) else body
    for start, end in ((max(0, len(raw) - PEEK_CHARS), len(raw)), (0, min(len(raw), PEEK_CHARS))):
        matches = _NEXT_CURSOR.findall(raw, start, end)
        if matches:
            return str(matches[-1].decode("utf-8", errors="replace"))
    return None


Fetch = Callable[[dict[str, Any]], tuple[Call, Reply]]
"""Sends one page's request (its query) with the hook's retries; returns the call and its final reply."""
AFetch = Callable[[dict[str, Any]], Awaitable[tuple[Call, Reply]]]


def paginate_ahead(
    fetch: Fetch,
    tracker: PageTracker,
    params: Mapping[str, Any] | None,
    data_decoder: DataDecoder | None = None,
    *,
    ahead: bool = True,
) -> Iterator[Page]:
    """The pages of ``tracker``'s list; with ``ahead``, page n+1's request runs in a worker thread while page n is
    decoded and consumed (at most one request in flight, one body held ahead of the consumer)."""
    if not ahead:
        while not tracker.done:
            call, reply = fetch(tracker.params(params))
            yield tracker.page(call.finish(reply, data_decoder))
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cplugin-fetch-ahead")
    try:
        pending: Future[tuple[Call, Reply]] | None = pool.submit(fetch, tracker.params(params))
        while pending is not None:
            call, reply = pending.result()
            guess = peek_next_cursor(reply.raw)
            pending = pool.submit(fetch, tracker.params(params, guess)) if guess else None
            yield tracker.page(call.finish(reply, data_decoder))
            if tracker.done:
                return
            if guess != tracker.cursor:  # the guess was wrong: its reply is dropped, the decoded cursor fetched
                if pending is not None:
                    pending.cancel()
                pending = pool.submit(fetch, tracker.params(params))
    finally:
        # Not waited for: an abandoned request (a wrong guess, a consumer that stopped) ends by its own deadline.
        pool.shutdown(wait=False, cancel_futures=True)


async def apaginate_ahead(
    fetch: AFetch,
    tracker: PageTracker,
    params: Mapping[str, Any] | None,
    data_decoder: DataDecoder | None = None,
    *,
    ahead: bool = True,
) -> AsyncIterator[Page]:
    """:func:`paginate_ahead` for the async hook: the request ahead is a task of the running loop."""
    if not ahead:
        while not tracker.done:
            call, reply = await fetch(tracker.params(params))
            yield tracker.page(call.finish(reply, data_decoder))
        return
    pending: asyncio.Future[tuple[Call, Reply]] | None = _task(fetch(tracker.params(params)))
    try:
        while pending is not None:
            call, reply = await pending
            guess = peek_next_cursor(reply.raw)
            pending = _task(fetch(tracker.params(params, guess))) if guess else None
            yield tracker.page(call.finish(reply, data_decoder))
            if tracker.done:
                return
            if guess != tracker.cursor:
                if pending is not None:
                    pending.cancel()
                pending = _task(fetch(tracker.params(params)))
    finally:
        if pending is not None:
            pending.cancel()


def _task(request: Awaitable[tuple[Call, Reply]]) -> asyncio.Future[tuple[Call, Reply]]:
    task = asyncio.ensure_future(request)
    # A request dropped after a wrong guess may fail unobserved: retrieve its outcome so asyncio does not log it.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task
