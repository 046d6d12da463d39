"""Transport-independent pieces shared by the sync and async hooks.

- envelope decoding with the SDK's rules (reference §3) → :class:`ApiResponse` or :class:`CPluginApiError`;
- the retry policy (reference §4) expressed as tenacity ``stop``/``wait``/``retry`` callables, so the sync hook
  (``tenacity.Retrying``) and the async hook (``tenacity.AsyncRetrying``) make identical decisions;
- query-string and path encoding, pagination bookkeeping.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import orjson  # ~2x faster than json.loads on API pages: decoding bounds a snapshot (benchmarks/)
from tenacity import RetryCallState, wait_exponential

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.connection import Secret
from airflow_provider_cplugin.hooks.oauth2 import Reply
from airflow_provider_cplugin.platforms import check_platform_type

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
MAX_PAGE_LIMIT = 5000
TRADE_PLATFORMS_PATH = "/api/TradePlatforms"
EXCERPT_CHARS = 200
# Synthetic error codes for failures that never reached a WebAPI answer (not WebApiErrorCode values).
TIMEOUT_CODE = "Timeout"  # the overall deadline passed (same name the newer servers use for a safe timeout)
TRANSPORT_CODE = "Transport"  # connection refused/reset, DNS, TLS... after the allowed attempts


@dataclass(frozen=True)
class RetryPolicy:
    """The SDK defaults: 3 attempts, 0.5 s x 2^n capped at 10 s, ±25 % jitter."""

    max_attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.25


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
class Page:
    """One page of a cursor-paged list (``number`` starts at 1)."""

    items: list[dict[str, Any]]
    number: int
    next_cursor: str | None
    activity_id: str | None


class TransientTransportError(Exception):
    """A network failure of one attempt (connection refused/reset...): retried for idempotent methods only."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(f"{type(cause).__name__}: {cause}")


def is_idempotent(method: str) -> bool:
    return method.upper() in IDEMPOTENT_METHODS


def code_for_http_status(status: int) -> str:
    if status in (401, 403):
        return "Forbidden"
    if status == 404:
        return "NotFound"
    return "Internal"


# -- retry decisions ------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: an integer or an HTTP-date (past dates → 0); None when absent/unparseable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryDecisions:
    """tenacity ``retry``/``wait``/``stop``/``retry_error_callback`` for one request.

    Attempts return a :class:`Reply` (any status) or raise :class:`TransientTransportError`. Only idempotent
    methods are ever repeated; a retry never sleeps past ``deadline`` (monotonic seconds).
    """

    def __init__(
        self,
        method: str,
        path: str,
        policy: RetryPolicy,
        deadline: float,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.method = method.upper()
        self.path = path
        self.policy = policy
        self.deadline = deadline
        self.log = logger
        self.clock = clock
        self.rand = rand
        self._exponential = wait_exponential(multiplier=policy.base_delay, exp_base=policy.factor, max=policy.max_delay)

    def retry(self, state: RetryCallState) -> bool:
        if not is_idempotent(self.method) or state.outcome is None:
            return False
        if state.outcome.failed:
            return isinstance(state.outcome.exception(), TransientTransportError)
        reply = state.outcome.result()
        return isinstance(reply, Reply) and reply.status in RETRYABLE_STATUSES

    def wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = parse_retry_after(outcome.result().header("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self.policy.max_delay)
        base = float(self._exponential(state))
        return max(0.0, base * (1 + (self.rand() - 0.5) * 2 * self.policy.jitter))

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        # One overall deadline: don't start a sleep that would end after it.
        return self.clock() + state.upcoming_sleep >= self.deadline

    def give_up(self, state: RetryCallState) -> Any:
        """After the last attempt: the last reply is decoded normally, the last exception re-raised."""
        assert state.outcome is not None
        return state.outcome.result()

    def before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        what = f"{type(outcome.exception()).__name__}" if outcome.failed else f"HTTP {outcome.result().status}"
        self.log.warning(
            "%s %s attempt %d/%d got %s; retrying in %.2fs",
            self.method,
            self.path,
            state.attempt_number,
            self.policy.max_attempts,
            what,
            state.upcoming_sleep,
        )

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "retry": self.retry,
            "wait": self.wait,
            "stop": self.stop,
            "retry_error_callback": self.give_up,
            "before_sleep": self.before_sleep,
            "reraise": True,
        }


def remaining(deadline: float, method: str, path: str, timeout: float, clock: Callable[[], float]) -> float:
    """Seconds left before the overall deadline, or the typed timeout error when none are."""
    left = deadline - clock()
    if left <= 0:
        raise deadline_error(method, path, timeout)
    return left


def deadline_error(method: str, path: str, timeout: float) -> CPluginApiError:
    return CPluginApiError(
        TIMEOUT_CODE,
        f"no answer within the {timeout:g}s deadline (extra.timeout; token, all attempts and decoding included)",
        method=method.upper(),
        path=path,
    )


def transport_error(method: str, path: str, err: TransientTransportError, attempts: int) -> CPluginApiError:
    return CPluginApiError(
        TRANSPORT_CODE,
        f"request failed after {attempts} attempt(s): {err}",
        method=method.upper(),
        path=path,
    )


class Call:
    """One logical API call: encoded inputs, the overall deadline, the 401-refresh flag, retry decisions, and the
    final decode + log line. Shared by the sync and async hooks so both behave identically."""

    def __init__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        idempotency_key: str | None,
        timeout: float,
        policy: RetryPolicy,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if "://" in path:
            raise ValueError(f"path must be relative to the API base URL, got {path!r}")
        self.method = method.upper()
        self.path = path if path.startswith("/") else "/" + path
        self.json_body = json_body
        self.query = encode_params(params)
        # Callers never set Authorization: the hook owns the bearer token.
        self.headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        if idempotency_key is not None:
            self.headers["Idempotency-Key"] = idempotency_key
        self.timeout = timeout
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + timeout
        self.answered: float | None = None
        self.attempts = 0
        self.refreshed = False
        self.rejected: Secret | None = None
        """The token a 401 answered: never sent again by this call's later attempts, even when the forced refresh
        itself failed transiently and the cache still holds it."""
        self.log = logger
        self.decisions = RetryDecisions(self.method, self.path, policy, self.deadline, logger, clock)

    def remaining(self) -> float:
        return remaining(self.deadline, self.method, self.path, self.timeout, self.clock)

    def timed_out(self) -> CPluginApiError:
        return deadline_error(self.method, self.path, self.timeout)

    def refresh_after(self, reply: Reply, token: Secret) -> bool:
        """Reference §2.6: a 401 on an idempotent method gets one forced token refresh and one re-send."""
        if reply.status == 401:
            self.rejected = token
        if reply.status != 401 or not is_idempotent(self.method) or self.refreshed:
            return False
        self.refreshed = True
        self.log.info("%s %s got 401; refreshing the token once and re-sending", self.method, self.path)
        return True

    def failed(self, err: TransientTransportError) -> CPluginApiError:
        return transport_error(self.method, self.path, err, self.attempts)

    def arrived(self, reply: Reply) -> Reply:
        """Stamp the final reply's arrival; past the deadline it is a timeout. Checked here, not in :meth:`finish`,
        because a paginator may decode a reply fetched ahead much later: consumer time is not the server's."""
        self.answered = self.clock()
        if self.answered > self.deadline:
            raise self.timed_out()
        return reply

    def finish(self, reply: Reply) -> ApiResponse:
        try:
            response = decode_reply(reply, self.method, self.path)
        except CPluginApiError as err:
            self._log_line(reply, err.activity_id)
            raise
        self._log_line(reply, response.activity_id)
        return response

    def _log_line(self, reply: Reply, activity_id: str | None) -> None:
        self.log.info(
            "%s %s -> HTTP %s attempts=%d activityId=%s %.0f ms",
            self.method,
            self.path,
            reply.status,
            self.attempts,
            activity_id or "-",
            ((self.answered if self.answered is not None else self.clock()) - self.started) * 1000,
        )


# -- decoding -------------------------------------------------------------------------------------------------


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


def _is_envelope(body: Any) -> bool:
    return isinstance(body, dict) and "error" in body and ("data" in body or "meta" in body)


def decode_reply(reply: Reply, method: str, path: str) -> ApiResponse:
    """SDK decoding rules. ``/api/v2/...`` must answer with an envelope; other paths (``/api/TradePlatforms``,
    ``.../Ping``) may answer bare JSON, which becomes ``ApiResponse(data=<body>)``."""
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
            body = orjson.loads(reply.text)
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
    try:
        body = orjson.loads(reply.text)
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
        meta = _meta_of(body)
        paging_raw = meta.get("paging")
        paging: dict[str, Any] = paging_raw if isinstance(paging_raw, dict) else {}
        cursor = paging.get("nextCursor")
        return ApiResponse(
            data=body.get("data"),
            meta=meta,
            activity_id=_activity_id(meta),
            status=status,
            next_cursor=str(cursor) if cursor else None,
            has_more=bool(paging.get("hasMore")),
        )
    if path.startswith("/api/v2/"):
        raise CPluginApiError(
            "Internal",
            f"HTTP {status} response is not a WebAPI envelope ({{data, error, meta}}): {_excerpt(reply.text)}",
            status=status,
            method=method,
            path=path,
        )
    return ApiResponse(data=body, status=status)


# -- encoding -------------------------------------------------------------------------------------------------


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def encode_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query pairs: lists/tuples/sets as repeated keys (what the server documents), None values dropped."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            pairs.extend((key, _param_value(v)) for v in value if v is not None)
        else:
            pairs.append((key, _param_value(value)))
    return pairs


def quote_segment(value: Any) -> str:
    """``encodeURIComponent`` (the SDK's path-param encoding): ``real\\*`` → ``real%5C*``."""
    return quote(str(value), safe="!~*'()")


def build_v2_path(platform_type: str, trade_platform: str, method: str, path_params: Iterable[Any] = ()) -> str:
    """``/api/v2/{MT4|MT5}/{tp}/{method}[/{param}...]``; each segment of ``method`` and every param encoded."""
    platform_type = check_platform_type(platform_type)
    segments = [quote_segment(s) for s in method.strip("/").split("/")]
    segments += [quote_segment(p) for p in path_params]
    return f"/api/v2/{platform_type}/{quote_segment(trade_platform)}/" + "/".join(segments)


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
        self._previous: tuple[int, Any, Any] | None = None  # (rows, first, last) of the previous page
        self.done = False

    def page(self, response: ApiResponse) -> Page:
        self.number += 1
        data, next_cursor, has_more = response.data, response.next_cursor, response.has_more
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
            items: list[Any] = []
        elif isinstance(data, list):
            items = data
        else:
            raise self._error(response, f"paged response data is a {type(data).__name__}, not a list")
        if len(items) > self.limit:
            raise self._error(
                response, f"{len(items)} rows for limit={self.limit}: the server ignored the page size, so the "
                "rows past the limit would come again on the next page",
            )  # fmt: skip
        if not has_more:
            next_cursor = None  # hasMore decides (SDK): a cursor with hasMore false is ignored
        if next_cursor is not None:
            self._check_progress(response, items, next_cursor)
        self.done = next_cursor is None
        self.cursor = next_cursor
        return Page(items=items, number=self.number, next_cursor=next_cursor, activity_id=response.activity_id)

    def _check_progress(self, response: ApiResponse, items: list[Any], next_cursor: str) -> None:
        """Raise when paging on would loop, walk nowhere or run past ``max_pages``; remember the cursor."""
        if next_cursor in self._seen:
            raise self._error(response, f"returned cursor {next_cursor!r} again; stopping instead of looping forever")
        fingerprint = (len(items), items[0], items[-1]) if items else None
        if fingerprint is not None and fingerprint == self._previous:
            raise self._error(
                response, f"repeats page {self.number - 1} row for row under a new cursor; stopping instead of "
                "looping forever",
            )  # fmt: skip
        self._empty_run = 0 if items else self._empty_run + 1
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
_NEXT_CURSOR = re.compile(r'"nextCursor"\s*:\s*"([^"\\]+)"')
PEEK_CHARS = 1024


def peek_next_cursor(text: str) -> str | None:
    """The page's ``meta.paging.nextCursor`` read from the ends of the body without decoding it, or None.

    Lets a paginator send the request for page n+1 before page n is decoded (decoding a 5000-record page costs
    about a quarter of the server's time to produce one). ``meta`` is usually the envelope's last key; the head is
    tried too for servers that put it first. Only a guess: the decoded page decides.
    """
    for start, end in ((max(0, len(text) - PEEK_CHARS), len(text)), (0, min(len(text), PEEK_CHARS))):
        matches = _NEXT_CURSOR.findall(text, start, end)
        if matches:
            return str(matches[-1])
    return None


def ping_path(trade_platform: str) -> str:
    return f"/api/TradePlatforms/{quote_segment(trade_platform)}/Ping"


def platforms_from(response: ApiResponse) -> list[dict[str, Any]]:
    """``/api/TradePlatforms`` must be a bare array (the SDK rejects anything else as ``Internal``)."""
    if not isinstance(response.data, list):
        raise CPluginApiError(
            "Internal",
            "GET /api/TradePlatforms returned an invalid payload (not an array)",
            status=response.status,
            method="GET",
            path=TRADE_PLATFORMS_PATH,
        )
    return [p for p in response.data if isinstance(p, dict)]
