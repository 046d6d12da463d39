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
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from itertools import islice
from typing import Any, overload

from aiohttp import web

from airflow_provider_cplugin.emulator.quirks import HTTP400_VALIDATION

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

    def __init__(
        self, code: str, message: str, manager_code: str | int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.manager_code = manager_code
        self.field = field  # the parameter at fault, for a 400 ValidationProblemDetails (quirks.py)

    def to_error(self) -> dict[str, Any]:
        return {"code": self.code, "managerCode": self.manager_code, "message": self.message}


def invalid_value(name: str, raw: str) -> EnvelopeError:
    """A parameter value that does not parse, worded as ASP.NET Core's model binding words it."""
    return EnvelopeError(VALIDATION, f"The value '{raw[:64]}' is not valid for {name}.", field=name)


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


def validation_problem(exc: EnvelopeError) -> web.Response:
    """HTTP 400 ValidationProblemDetails, as ASP.NET Core's ``[ApiController]`` answers a bad parameter."""
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": {exc.field or "request": [exc.message]},
        "traceId": f"00-{activity_id()}-{os.urandom(8).hex()}-00",
    }
    return web.Response(
        body=_encode(body).encode(), status=400, content_type="application/problem+json", charset="utf-8"
    )


# The quirks in force for a request (the emulator's, plus a matching fault rule's): set by the fault middleware.
REQUEST_QUIRKS_KEY = web.RequestKey("cplugin.quirks", frozenset)


# --------------------------------------------------------------------------- paging


def encode_cursor(key: int) -> str:
    """Opaque cursor = base64 of the last sort key served (reference §5)."""
    return base64.b64encode(str(key).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor.encode(), validate=True).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise EnvelopeError(VALIDATION, f"Invalid cursor '{cursor[:64]}'", field="cursor") from None


def index_after(cursor_key: int | None, base: int) -> int:
    """First index to serve for ids ``base + index`` after a cursor (0 without one)."""
    return 0 if cursor_key is None else max(cursor_key - base + 1, 0)


class Page:
    """Lazily yields rows for ascending sort keys, stopping after ``limit`` and remembering the next cursor.

    ``keys`` yields sort keys strictly after the request cursor; ``build`` turns a key into a row. Only one key
    beyond the page is looked at, to decide ``hasMore`` - so ``hasMore == (nextCursor is not None)`` by design.
    """

    def __init__(self, keys: Iterable[int], limit: int | None, build: Callable[[int], dict[str, Any]]) -> None:
        self.keys = keys
        self.limit = limit
        self.build = build
        self.next_cursor: str | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        build = self.build
        limit = self.limit
        last = 0
        for n, key in enumerate(self.keys):
            if limit is not None and n >= limit:
                self.next_cursor = encode_cursor(last)
                return
            yield build(key)
            last = key

    def meta(self) -> dict[str, Any]:
        return {"nextCursor": self.next_cursor, "hasMore": self.next_cursor is not None}


@dataclass(frozen=True)
class PageRewrite:
    """What a ``paging`` fault (faults.py) does to the REAL answer of a cursor-paged call.

    Each flag models one way a server or proxy can break paging; the rest of the answer stays what the server
    would have sent, so a client is tested against exactly the rows it should (or should not) have received.
    """

    drop_cursor: bool = False  # nextCursor -> null while hasMore stays true
    repeat_cursor: bool = False  # nextCursor -> the cursor this request sent (a loop)
    null_data: bool = False  # data -> null, meta.paging kept
    empty: bool = False  # no rows, hasMore true and a fresh cursor for the SAME position: nothing is lost
    extra_rows: int = 0  # rows past ``limit``; the cursor still points after ``limit`` rows, so they repeat
    overlap: int = 0  # cursor rewound: the next page repeats this page's last ``overlap`` rows
    alter: dict[str, Any] = field(default_factory=dict)  # fields set on those ``overlap`` rows as served here

    @classmethod
    def from_dict(cls, raw: Any) -> PageRewrite:
        if not isinstance(raw, dict):
            raise ValueError("'paging' must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown 'paging' keys: {sorted(unknown)} (known: {sorted(known)})")
        for name in ("drop_cursor", "repeat_cursor", "null_data", "empty"):
            if not isinstance(raw.get(name, False), bool):
                raise ValueError(f"paging.{name} must be true or false")
        for name in ("extra_rows", "overlap"):
            value = raw.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"paging.{name} must be an integer >= 0")
        if not isinstance(raw.get("alter", {}), dict):
            raise ValueError("paging.alter must be an object of field values")
        rewrite = cls(**raw)
        if rewrite.alter and not rewrite.overlap:
            raise ValueError("paging.alter changes the rows repeated by paging.overlap: set overlap too")
        if rewrite == cls():
            raise ValueError("'paging' rewrites nothing")
        return rewrite

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def apply(self, page: Page, request_cursor: str | None) -> dict[str, Any]:
        """The rewritten envelope for ``page`` (materialised: fault answers are small and rare)."""
        if self.empty:
            return _envelope([], _fresh_cursor(request_cursor))
        limit = page.limit
        wanted = None if limit is None else limit + self.extra_rows + 1  # one more key decides hasMore
        keys = list(islice(page.keys, wanted))
        served = keys if limit is None else keys[: limit + self.extra_rows]
        more = limit is not None and len(keys) > limit
        cursor = encode_cursor(keys[limit - 1]) if more and limit is not None else None
        rows = [page.build(key) for key in served]
        if self.overlap:
            if not more or self.overlap >= len(served):
                raise EnvelopeError(INTERNAL, "emulator: paging.overlap needs a following page and fewer rows")
            cursor = encode_cursor(served[-self.overlap - 1])
            for row in rows[-self.overlap :]:
                row.update(self.alter)
        if self.repeat_cursor:
            if request_cursor is None:
                raise EnvelopeError(INTERNAL, "emulator: paging.repeat_cursor needs a request with a cursor")
            cursor = request_cursor
        body = _envelope(rows, cursor)
        if self.drop_cursor:
            body["meta"]["paging"] = {"nextCursor": None, "hasMore": True}
        if self.null_data:
            body["data"] = None
        return body


def _envelope(rows: list[dict[str, Any]], cursor: str | None) -> dict[str, Any]:
    meta = _meta(None)
    meta["paging"] = {"nextCursor": cursor, "hasMore": cursor is not None}
    return {"data": rows, "error": None, "meta": meta}


def _fresh_cursor(request_cursor: str | None) -> str:
    """Another spelling of the request's position (a leading zero more: ``int()`` reads the same key), so a
    page of nothing can hand out a new cursor without skipping a row; before the first row it is key ``0``."""
    position = "0" if request_cursor is None else base64.b64decode(request_cursor.encode()).decode()
    return base64.b64encode(("0" + position).encode()).decode()


# Set on a request by a ``paging`` fault: :func:`send_rows` answers ``rewrite.apply(page)`` instead.
PAGE_REWRITE_KEY = web.RequestKey("cplugin.page_rewrite", PageRewrite)


# Set on a request by the ``truncate`` fault: a streamed answer stops after its first chunk (see faults.py).
TRUNCATE_KEY = web.RequestKey("cplugin.truncate", bool)


async def send_rows(request: web.Request, rows: Iterable[dict[str, Any]]) -> web.StreamResponse:
    """Success envelope for a list. ``meta.paging`` is added when ``rows`` is a :class:`Page`.

    Up to two batches are answered with a plain Content-Length body; beyond that the body is streamed in
    chunks so memory stays bounded by one batch, yielding to the event loop between batches (hubs share it).
    """
    page = rows if isinstance(rows, Page) else None
    rewrite = request.get(PAGE_REWRITE_KEY)
    if rewrite is not None:
        if page is None:
            raise EnvelopeError(INTERNAL, f"emulator: a paging fault matched {request.path}, which is not paged")
        return json_response(rewrite.apply(page, query_str(request, "cursor")))
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
        raise invalid_value(name, raw) from None


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise invalid_value(name, raw) from None


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
                raise invalid_value(name, part) from None
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
        raise invalid_value(name, raw) from None
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
        raise EnvelopeError(VALIDATION, f"limit must be between 1 and {maximum}.", field="limit")
    return limit


def query_cursor(request: web.Request) -> int | None:
    raw = query_str(request, "cursor")
    return None if raw is None else decode_cursor(raw)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`EnvelopeError` raised anywhere below into the error envelope (a bad parameter into an HTTP 400
    ProblemDetails under the ``http400_validation`` quirk)."""
    try:
        return await handler(request)
    except EnvelopeError as exc:
        if exc.code == VALIDATION and HTTP400_VALIDATION in request.get(REQUEST_QUIRKS_KEY, frozenset()):
            return validation_problem(exc)
        return error_envelope(exc.to_error())
