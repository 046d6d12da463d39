"""``Call``: one logical API call (encoded inputs, the overall deadline, the 401-refresh flag, retry decisions, the
final decode and log line), shared by the sync and async hooks so both behave identically."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.connection import Secret
from airflow_provider_cplugin.hooks.envelope import ApiResponse, DataDecoder, decode_reply
from airflow_provider_cplugin.hooks.paths import encode_params
from airflow_provider_cplugin.hooks.reply import Reply
from airflow_provider_cplugin.hooks.retry import RetryDecisions, RetryPolicy, TransientTransportError, is_idempotent

# Synthetic error codes for failures that never reached a WebAPI answer (not WebApiErrorCode values).
TIMEOUT_CODE = "Timeout"  # the overall deadline passed (same name the newer servers use for a safe timeout)
TRANSPORT_CODE = "Transport"  # connection refused/reset, DNS, TLS... after the allowed attempts


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

    def finish(self, reply: Reply, data_decoder: DataDecoder | None = None) -> ApiResponse:
        try:
            response = decode_reply(reply, self.method, self.path, data_decoder)
        except CPluginApiError as err:
            self._log_line(reply, err.activity_id)
            raise
        self._log_line(reply, response.activity_id)
        return response

    def _log_line(self, reply: Reply, activity_id: str | None) -> None:
        # A clean first-attempt answer is DEBUG: a 2M-row snapshot makes 400 calls, and the landing's progress line
        # (every ~10 s) is what a person reads. Retried or failed calls stay visible at INFO.
        clean = 200 <= reply.status < 300 and self.attempts == 1
        self.log.log(
            logging.DEBUG if clean else logging.INFO,
            "%s %s -> HTTP %s attempts=%d activityId=%s %.0f ms",
            self.method,
            self.path,
            reply.status,
            self.attempts,
            activity_id or "-",
            ((self.answered if self.answered is not None else self.clock()) - self.started) * 1000,
        )
