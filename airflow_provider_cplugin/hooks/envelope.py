"""Envelope decoding with the SDK's rules (reference §3): a reply becomes an :class:`ApiResponse` or a
:class:`CPluginApiError`.

Paged lists pass a :class:`DataDecoder`: a 2xx body goes to it first as bytes (straight to columns, see
:mod:`airflow_provider_cplugin.parquet.decode`); a body it cannot take (an error envelope, drifted types, malformed
JSON...) goes through the general path here (orjson), whose ``data`` list the decoder then converts the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson  # ~2x faster than json.loads on bodies the columnar decoder leaves to the general path

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.reply import Reply

EXCERPT_CHARS = 200


@dataclass(frozen=True)
class ApiResponse:
    """A decoded answer: the envelope's ``data`` plus what callers need from ``meta``."""

    data: Any
    meta: dict[str, Any] = field(default_factory=dict)
    activity_id: str | None = None
    status: int = 200
    next_cursor: str | None = None
    has_more: bool = False


@dataclass(frozen=True)
class DecodedBody:
    """What a :class:`DataDecoder` read from a whole envelope body: ``data`` (None for null/absent) and ``meta``."""

    data: Any
    meta: dict[str, Any]


class DataDecoder(Protocol):
    """Turns a paged list's ``data`` into the form its consumer lands (an Arrow batch of the entity)."""

    def body(self, body: bytes) -> DecodedBody | None:
        """The success envelope ``body`` decoded whole, or None when the general path must decide."""

    def records(self, data: list[Any]) -> Any:
        """The general path's decoded ``data`` list, converted like :meth:`body` converts it."""


def code_for_http_status(status: int) -> str:
    if status in (401, 403):
        return "Forbidden"
    if status == 404:
        return "NotFound"
    return "Internal"


def _excerpt(text: str) -> str:
    return repr(text[:EXCERPT_CHARS]) + ("..." if len(text) > EXCERPT_CHARS else "")


def _meta_of(body: Any) -> dict[str, Any]:
    meta = body.get("meta") if isinstance(body, dict) else None
    return meta if isinstance(meta, dict) else {}


def _activity_id(meta: Mapping[str, Any]) -> str | None:
    value = meta.get("activityId")
    return str(value) if value else None


def _error_from_envelope(body: dict[str, Any], status: int, method: str, path: str) -> CPluginApiError:
    error = body.get("error")
    meta = _meta_of(body)
    if isinstance(error, dict):
        code = str(error.get("code") or code_for_http_status(status))
        message = error.get("message")
        manager_code = error.get("managerCode")
    else:
        code, message, manager_code = str(error), None, None
    return CPluginApiError(
        code,
        str(message) if message is not None else None,
        activity_id=_activity_id(meta),
        manager_code=manager_code if isinstance(manager_code, str | int) else None,
        status=status,
        method=method.upper(),
        path=path,
    )


def _is_envelope(body: Any) -> bool:
    return isinstance(body, dict) and "error" in body and ("data" in body or "meta" in body)


def _error_from_problem(body: dict[str, Any], method: str, path: str) -> CPluginApiError:
    """ASP.NET Core's 400 ValidationProblemDetails (``{title, status, errors: {field: [messages]}, traceId}``) is a
    bad parameter, as a ``Validation`` envelope is: same typed error, the messages naming the fields."""
    problems = "; ".join(
        f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
        for field, msgs in body["errors"].items()
    )
    trace = body.get("traceId")
    return CPluginApiError(
        "Validation",
        f"{body.get('title') or 'validation failed'} {problems}".strip(),
        activity_id=str(trace) if trace else None,
        status=400,
        method=method.upper(),
        path=path,
    )


def decode_reply(reply: Reply, method: str, path: str, data_decoder: DataDecoder | None = None) -> ApiResponse:
    """SDK decoding rules. ``/api/v2/...`` must answer with an envelope; other paths (``/api/TradePlatforms``,
    ``.../Ping``) may answer bare JSON, which becomes ``ApiResponse(data=<body>)``. With ``data_decoder`` a list
    ``data`` comes back in the decoder's form (a ``data`` that is not a list is left for the pager to refuse)."""
    status = reply.status
    method = method.upper()
    if 300 <= status < 400:
        location = reply.header("Location") or "<no Location>"
        raise CPluginApiError(
            "Internal",
            f"HTTP {status} redirect to {location} refused (the WebAPI never redirects: check the host URL)",
            status=status,
            method=method,
            path=path,
        )
    if not 200 <= status < 300:
        try:
            body = orjson.loads(reply.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error") is not None:
            raise _error_from_envelope(body, status, method, path)
        if status == 400 and isinstance(body, dict) and isinstance(body.get("errors"), dict):
            raise _error_from_problem(body, method, path)
        raise CPluginApiError(
            code_for_http_status(status),
            f"HTTP {status}",
            activity_id=_activity_id(_meta_of(body)),
            status=status,
            method=method,
            path=path,
        )
    if data_decoder is not None:
        decoded = data_decoder.body(reply.raw)
        if decoded is not None:
            return _response(decoded.data, decoded.meta, status)
    try:
        body = orjson.loads(reply.body)
    except ValueError:
        content_type = reply.header("Content-Type") or "no Content-Type"
        raise CPluginApiError(
            "Internal",
            f"malformed JSON in HTTP {status} response ({content_type}, {len(reply.text)} chars): "
            f"{_excerpt(reply.text)}",
            status=status,
            method=method,
            path=path,
        ) from None
    if _is_envelope(body):
        if body.get("error") is not None:
            raise _error_from_envelope(body, status, method, path)
        data = body.get("data")
        if data_decoder is not None and isinstance(data, list):
            data = data_decoder.records(data)
        return _response(data, _meta_of(body), status)
    if path.startswith("/api/v2/"):
        raise CPluginApiError(
            "Internal",
            f"HTTP {status} response is not a WebAPI envelope ({{data, error, meta}}): {_excerpt(reply.text)}",
            status=status,
            method=method,
            path=path,
        )
    return ApiResponse(data=body, status=status)


def _response(data: Any, meta: dict[str, Any], status: int) -> ApiResponse:
    paging_raw = meta.get("paging")
    paging: dict[str, Any] = paging_raw if isinstance(paging_raw, dict) else {}
    cursor = paging.get("nextCursor")
    return ApiResponse(
        data=data,
        meta=meta,
        activity_id=_activity_id(meta),
        status=status,
        next_cursor=str(cursor) if cursor else None,
        has_more=bool(paging.get("hasMore")),
    )
