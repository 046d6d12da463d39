"""Retry decisions of one request (reference §4), as tenacity ``stop``/``wait``/``retry`` callables, so the sync hook
(``tenacity.Retrying``) and the async hook (``tenacity.AsyncRetrying``) decide identically."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from tenacity import RetryCallState, wait_exponential

from airflow_provider_cplugin.hooks.reply import Reply

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """The SDK defaults: 3 attempts, 0.5 s x 2^n capped at 10 s, ±25 % jitter."""

    max_attempts: int = 3
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    jitter: float = 0.25


class TransientTransportError(Exception):
    """A network failure of one attempt (connection refused/reset...): retried for idempotent methods only."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(f"{type(cause).__name__}: {cause}")


def is_idempotent(method: str) -> bool:
    return method.upper() in IDEMPOTENT_METHODS


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
