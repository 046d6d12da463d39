"""Fault injection: rules posted to ``/_emulator/faults`` that hijack matching requests.

A rule matches on ``kind`` (``http`` here; realtime hubs consume their own kinds from the same store),
``method`` and a ``path`` regex (``re.search`` on the decoded path), lets the first ``after`` matching requests
through (so ``after: 2`` targets the third page of a paged read), then fires ``times`` times (``null`` =
until reset). Effects, applied in this order: ``delay_s`` (sleep, then continue), ``drop`` (close the
connection without an answer), ``truncate`` (the real answer's headers and the first half of its body, then
the connection closes: a server or proxy dying mid-body), ``paging`` (the real answer of a cursor-paged call,
rewritten: see :class:`~.envelope.PageRewrite` - a cursor dropped or repeated, ``data: null``, an empty page,
rows past ``limit``, pages that overlap), ``redirect`` (3xx with ``Location``), ``envelope_error`` (HTTP 200 +
error envelope), ``status``/``body``/``retry_after``/``headers`` (raw answer). A rule with only ``delay_s``
slows the real answer down; ``quirks`` (``["http400_validation"]``, see quirks.py) plays a quirk on the real
answer of the requests it matches. ``options`` carries kind-specific settings for other consumers.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.envelope import (
    PAGE_REWRITE_KEY,
    REQUEST_QUIRKS_KEY,
    TRUNCATE_KEY,
    Handler,
    PageRewrite,
    error_envelope,
)
from airflow_provider_cplugin.emulator.quirks import PER_REQUEST_QUIRKS

HTTP_KIND = "http"
CONTROL_PREFIX = "/_emulator/"


@dataclass
class FaultRule:
    path: str
    method: str | None = None
    times: int | None = 1
    after: int = 0
    kind: str = HTTP_KIND
    status: int | None = None
    retry_after: int | str | None = None
    body: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    envelope_error: dict[str, Any] | None = None
    redirect: str | None = None
    drop: bool = False
    truncate: bool = False
    paging: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    quirks: list[str] = field(default_factory=list)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    page_rewrite: PageRewrite | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"invalid path regex {self.path!r}: {exc}") from None
        if self.method is not None:
            self.method = self.method.upper()
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or null")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be a valid HTTP status")
        if self.redirect is not None and self.status is not None and not 300 <= self.status <= 399:
            raise ValueError("a redirect needs a 3xx status")
        if self.envelope_error is not None and not isinstance(self.envelope_error.get("code"), str):
            raise ValueError("envelope_error needs a string 'code'")
        if self.delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ValueError("after must be an integer >= 0")
        if not isinstance(self.quirks, list) or not set(self.quirks) <= PER_REQUEST_QUIRKS:
            raise ValueError(f"quirks must be a list of {sorted(PER_REQUEST_QUIRKS)} (the others shape all data)")
        if self.paging is not None:
            self.page_rewrite = PageRewrite.from_dict(self.paging)
            self.paging = self.page_rewrite.to_dict()
            answers = (self.status, self.body, self.envelope_error, self.redirect)
            if self.drop or self.truncate or any(a is not None for a in answers):
                raise ValueError("paging rewrites the real answer: it cannot be combined with another answer")

    @classmethod
    def from_dict(cls, raw: Any) -> FaultRule:
        if not isinstance(raw, dict):
            raise ValueError("a fault rule must be a JSON object")
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        if not isinstance(raw.get("path"), str):
            raise ValueError("a fault rule needs a 'path' regex")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def matches(self, kind: str, method: str, path: str) -> bool:
        return (
            self.kind == kind
            and (self.method is None or self.method == method.upper())
            and self._pattern.search(path) is not None
        )


class FaultStore:
    """Ordered rules; the first matching rule fires and is used up after ``times`` hits."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()  # hubs may consult the store from other tasks/threads

    def set(self, rules: list[FaultRule], append: bool = False) -> None:
        with self._lock:
            self._rules = [*self._rules, *rules] if append else list(rules)

    def clear(self) -> None:
        self.set([])

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, kind: str, method: str, path: str) -> FaultRule | None:
        """The first matching rule done waiting (``after``), with one use consumed; None when nothing fires.

        Every matching rule still waiting counts the request, whether or not another rule fires on it, so
        ``after`` always means "the n-th matching request" (e.g. page n+1) whatever other rules do.
        """
        fired: FaultRule | None = None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(kind, method, path):
                    continue
                if rule.after > 0:
                    rule.after -= 1
                elif fired is None:
                    fired = rule
            if fired is not None and fired.times is not None:
                fired.times -= 1
                if fired.times == 0:
                    self._rules.remove(fired)
        return fired


async def apply_http_fault(request: web.Request, rule: FaultRule, handler: Handler) -> web.StreamResponse:
    if rule.quirks:
        request[REQUEST_QUIRKS_KEY] = request.get(REQUEST_QUIRKS_KEY, frozenset()) | frozenset(rule.quirks)
    if rule.delay_s:
        await asyncio.sleep(rule.delay_s)
    if rule.drop:
        if request.transport is not None:
            request.transport.abort()
        # Nobody will read this; aiohttp discards writes to an aborted transport.
        return web.Response(status=499)
    if rule.truncate:
        request[TRUNCATE_KEY] = True  # a streamed answer cuts itself (send_rows); a buffered one is cut here
        real = await handler(request)
        return real if real.prepared else await _truncated(request, real)
    if rule.page_rewrite is not None:
        request[PAGE_REWRITE_KEY] = rule.page_rewrite  # applied by send_rows to the handler's real page
        return await handler(request)
    headers = dict(rule.headers)
    if rule.retry_after is not None:
        headers["Retry-After"] = str(rule.retry_after)
    if rule.redirect is not None:
        headers["Location"] = rule.redirect
        return web.Response(status=rule.status or 302, headers=headers)
    if rule.envelope_error is not None:
        err = rule.envelope_error
        error = {"code": err["code"], "managerCode": err.get("managerCode"), "message": err.get("message")}
        resp = error_envelope(error, status=rule.status or 200)
        resp.headers.update(headers)
        return resp
    if rule.status is not None or rule.body is not None:
        return web.Response(
            status=rule.status or 200,
            body=(rule.body or "").encode(),
            headers={"Content-Type": rule.content_type, **headers},
        )
    return await handler(request)


async def _truncated(request: web.Request, real: web.StreamResponse) -> web.StreamResponse:
    """Send ``real``'s status, headers and full ``Content-Length`` but only half its body, then abort."""
    body = real.body if isinstance(real, web.Response) and isinstance(real.body, bytes) else b""
    partial = web.StreamResponse(status=real.status, headers=real.headers)
    partial.content_length = len(body)
    await partial.prepare(request)
    await partial.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return partial
