"""Shared mutable state of one emulator app: config, data set, tokens, counters, fault rules, sessions."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.faults import FaultStore
from airflow_provider_cplugin.emulator.tokens import TokenStore

IDEMPOTENCY_CACHE_SIZE = 10_000


@dataclass
class Stats:
    """Counters exposed by ``GET /_emulator/stats``; ``reset`` zeroes them."""

    token_requests: int = 0
    tokens_issued: int = 0
    token_errors: int = 0
    requests_total: int = 0
    unauthorized: int = 0
    faults_applied: int = 0
    idempotent_replays: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def reset(self) -> None:
        fresh = Stats()
        self.__dict__.update(fresh.__dict__)

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "token_errors": self.token_errors,
            "requests_total": self.requests_total,
            "unauthorized": self.unauthorized,
            "faults_applied": self.faults_applied,
            "idempotent_replays": self.idempotent_replays,
            "requests": dict(self.requests),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }


@dataclass
class SyncSession:
    """A ``*SyncStart`` session: rows modified at/after ``since_utc``, drained from ``position`` on."""

    since_utc: int
    position: int = 0


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str


@dataclass
class EmulatorState:
    config: EmulatorConfig
    dataset: Dataset
    tokens: TokenStore
    faults: FaultStore = field(default_factory=FaultStore)
    stats: Stats = field(default_factory=Stats)
    started_at: float = field(default_factory=time.monotonic)
    # (trade platform, "trades" | "users") -> open sync session.
    sync_sessions: dict[tuple[str, str], SyncSession] = field(default_factory=dict)
    # (Idempotency-Key, method, path) -> first answer, replayed for repeats.
    idempotency: OrderedDict[tuple[str, str, str], StoredResponse] = field(default_factory=OrderedDict)

    @classmethod
    def create(cls, config: EmulatorConfig) -> EmulatorState:
        return cls(config=config, dataset=Dataset(config), tokens=TokenStore(config.token_lifetime))

    def remember(self, key: tuple[str, str, str], response: StoredResponse) -> None:
        self.idempotency[key] = response
        while len(self.idempotency) > IDEMPOTENCY_CACHE_SIZE:
            self.idempotency.popitem(last=False)

    def reset(self) -> None:
        """Back to a fresh start, except issued tokens (use revoke-tokens for those) and the data set."""
        self.faults.clear()
        self.stats.reset()
        self.sync_sessions.clear()
        self.idempotency.clear()


STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("cplugin_emulator_state", EmulatorState)


def get_state(app_or_request: web.Application | web.Request) -> EmulatorState:
    app = app_or_request.app if isinstance(app_or_request, web.Request) else app_or_request
    return app[STATE_KEY]
