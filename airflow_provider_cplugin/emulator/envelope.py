"""v2 response envelope ``{data, error, meta}``, activity ids, query parsing and cursor paging.

Handlers raise :class:`EnvelopeError` for handled failures; the envelope middleware turns it into HTTP 200 with
``data: null``, like the real "JSON-pure" service. List responses go through :func:`send_rows`, which serialises
rows in batches (one ``json`` call per batch) and streams large bodies, so an unlimited read of 1M users keeps
memory flat.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any, overload

from aiohttp import web

# Compact separators and no circular check: the rows are plain dicts we just built.
_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
JSON_CONTENT_TYPE = "application/json"
BATCH_ROWS = 5000

# WebApiErrorCode values (SDK 0.2.1).
NO_CONNECT = "NoConnect"
VALIDATION = "Validation"
MT4_ERROR = "MT4Error"
FORBIDDEN = "Forbidden"
NOT_FOUND = "NotFound"
MT5_ERROR = "MT5Error"
INTERNAL = "Internal"


class EnvelopeError(Exception):
    """A handled failure, answered as HTTP 200 + ``{data: null, error: {...}}``."""

    def __init__(self, code: str, message: str, manager_code: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.manager_code = manager_code

    def to_error(self) -> dict[str, Any]:
        return {"code": self.code, "managerCode": self.manager_code, "message": self.message}


def dumps(obj: Any) -> str:
    return _encode(obj)


def activity_id() -> str:
    """W3C trace id: 32 lowercase hex chars."""
    return os.urandom(16).hex()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encode(obj).encode(), status=status, content_type=JSON_CONTENT_TYPE, charset="utf-8", headers=headers
    )


def _meta(paging: Page | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"activityId": activity_id()}
    if paging is not None:
        meta["paging"] = paging.meta()
    return meta


def ok(data: Any) -> web.Response:
    """Success envelope for a non-paged payload."""
    return json_response({"data": data, "error": None, "meta": _meta(None)})


def error_envelope(error: dict[str, Any], status: int = 200) -> web.Response:
    return json_response({"data": None, "error": error, "meta": _meta(None)}, status=status)


# --------------------------------------------------------------------------- paging


def encode_cursor(key: int) -> str:
    """Opaque cursor = base64 of the last sort key served (reference §5)."""
    return base64.b64encode(str(key).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor.encode(), validate=True).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise EnvelopeError(VALIDATION, f"Invalid cursor '{cursor[:64]}'") from None


def index_after(cursor_key: int | None, base: int) -> int:
    """First index to serve for ids ``base + index`` after a cursor (0 without one)."""
    return 0 if cursor_key is None else max(cursor_key - base + 1, 0)


class Page:
    """Lazily yields rows for ascending sort keys, stopping after ``limit`` and remembering the next cursor.

    ``keys`` yields sort keys strictly after the request cursor; ``build`` turns a key into a row. Only one key
    beyond the page is looked at, to decide ``hasMore`` - so ``hasMore == (nextCursor is not None)`` by design.
    """

    def __init__(self, keys: Iterable[int], limit: int | None, build: Callable[[int], dict[str, Any]]) -> None:
        self._keys = keys
        self._limit = limit
        self._build = build
        self.next_cursor: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        build = self._build
        limit = self._limit
        last = 0
        for n, key in enumerate(self._keys):
            if limit is not None and n >= limit:
                self.next_cursor = encode_cursor(last)
                return
            yield build(key)
            last = key

    def meta(self) -> dict[str, Any]:
        return {"nextCursor": self.next_cursor, "hasMore": self.next_cursor is not None}


# Set on a request by the ``truncate`` fault: a streamed answer stops after its first chunk (see faults.py).
TRUNCATE_KEY = web.RequestKey("cplugin.truncate", bool)


async def send_rows(request: web.Request, rows: Iterable[dict[str, Any]]) -> web.StreamResponse:
    """Success envelope for a list. ``meta.paging`` is added when ``rows`` is a :class:`Page`.

    Up to two batches are answered with a plain Content-Length body; beyond that the body is streamed in
    chunks so memory stays bounded by one batch, yielding to the event loop between batches (hubs share it).
    """
    page = rows if isinstance(rows, Page) else None
    it = iter(rows)
    first = list(islice(it, BATCH_ROWS))
    second = list(islice(it, BATCH_ROWS)) if len(first) == BATCH_ROWS else []
    if len(second) < BATCH_ROWS:
        first.extend(second)
        return json_response({"data": first, "error": None, "meta": _meta(page)})
    resp = web.StreamResponse(headers={"Content-Type": f"{JSON_CONTENT_TYPE}; charset=utf-8"})
    await resp.prepare(request)
    await resp.write(b'{"data":[' + _encode(first)[1:-1].encode())
    if request.get(TRUNCATE_KEY):
        if request.transport is not None:
            request.transport.abort()
        return resp
    await resp.write(b"," + _encode(second)[1:-1].encode())
    while batch := list(islice(it, BATCH_ROWS)):
        await asyncio.sleep(0)
        await resp.write(b"," + _encode(batch)[1:-1].encode())
    await resp.write(b'],"error":null,"meta":' + _encode(_meta(page)).encode() + b"}")
    await resp.write_eof()
    return resp


# --------------------------------------------------------------------------- query parsing


def _present(value: str | None) -> str | None:
    # SDK 0.2.1 sends null query values as the literal string "null"; treat it like an omitted parameter.
    if value is None or value == "" or value == "null":
        return None
    return value


def query_str(request: web.Request, name: str) -> str | None:
    return _present(request.query.get(name))


@overload
def query_int(request: web.Request, name: str, default: int) -> int: ...
@overload
def query_int(request: web.Request, name: str, default: None = None) -> int | None: ...
def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = query_str(request, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise EnvelopeError(VALIDATION, f"The value '{raw[:64]}' is not valid for {name}.") from None


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise EnvelopeError(VALIDATION, f"The value '{raw[:64]}' is not valid for {name}.") from None


def query_ints(request: web.Request, name: str) -> list[int]:
    """Array parameter: accepts repeated keys (``?a=1&a=2``) and comma-joined values (``?a=1,2``)."""
    out: list[int] = []
    for raw in request.query.getall(name, []):
        for part in raw.split(","):
            part = part.strip()
            if not part or part == "null":
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise EnvelopeError(VALIDATION, f"The value '{part[:64]}' is not valid for {name}.") from None
    return out


def parse_datetime(raw: str, name: str) -> int:
    """ISO-8601 -> unix seconds; naive values are UTC (the API documents UTC)."""
    text = raw.strip()
    if "T" in text:
        # An unencoded '+' of an offset arrives as a space after query-string decoding.
        text = text.replace(" ", "+")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise EnvelopeError(VALIDATION, f"The value '{raw[:64]}' is not valid for {name}.") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def query_datetime(request: web.Request, name: str) -> int | None:
    raw = query_str(request, name)
    return None if raw is None else parse_datetime(raw, name)


def query_limit(request: web.Request, maximum: int) -> int | None:
    """``limit`` of paged endpoints: omitted -> everything; otherwise 1..maximum."""
    limit = query_int(request, "limit")
    if limit is not None and not 1 <= limit <= maximum:
        raise EnvelopeError(VALIDATION, f"limit must be between 1 and {maximum}.")
    return limit


def query_cursor(request: web.Request) -> int | None:
    raw = query_str(request, "cursor")
    return None if raw is None else decode_cursor(raw)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`EnvelopeError` raised anywhere below into the error envelope."""
    try:
        return await handler(request)
    except EnvelopeError as exc:
        return error_envelope(exc.to_error())
