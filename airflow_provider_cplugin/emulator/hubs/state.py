"""State of the emulated hubs on one app: settings, feeds, live connections and counters."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_cplugin.emulator.hubs.feeds import Feeds
from airflow_provider_cplugin.emulator.state import EmulatorState, get_state

if TYPE_CHECKING:
    from airflow_provider_cplugin.emulator.hubs.connection import HubConnection


@dataclass
class HubSettings:
    """Timing knobs; defaults are ASP.NET Core's (keep-alive 15 s, client timeout 30 s, poll 90 s)."""

    keep_alive_s: float = 15.0
    client_timeout_s: float = 30.0
    handshake_timeout_s: float = 15.0
    poll_timeout_s: float = 90.0
    # A long-polling connection with no poll for this long is gone (the client stopped without DELETE).
    poll_disconnect_s: float = 15.0
    # A negotiated connection nobody connects to within this long is dropped.
    negotiate_ttl_s: float = 30.0
    token_check_s: float = 0.25
    # Pumps wake at most this often at high rates; every due event is sent in one batch.
    batch_interval_s: float = 0.005
    max_batch_frames: int = 8192
    outbox_high_water: int = 8_000_000

    def update(self, raw: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ValueError(f"unknown hub settings: {sorted(unknown)}")
        for key, value in raw.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"hub setting {key} must be a number > 0")
            setattr(self, key, int(value) if key in ("max_batch_frames", "outbox_high_water") else float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamRecord:
    """One stream invocation as the server saw it (exposed by ``GET /_emulator/hub-stats``)."""

    connection_id: str
    invocation_id: str
    target: str
    arguments: list[Any]
    feed: str
    items: int = 0
    first_index: int | None = None
    last_index: int | None = None
    state: str = "running"  # running | completed | cancelled | aborted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HubStats:
    negotiations: int = 0
    negotiations_refused: int = 0
    unauthorized: int = 0
    connections_opened: int = 0
    handshakes: int = 0
    handshake_errors: int = 0
    frames_sent: int = 0
    batches_sent: int = 0
    chars_sent: int = 0
    pings_received: int = 0
    transports: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    faults_applied: Counter[str] = field(default_factory=Counter)
    streams: deque[StreamRecord] = field(default_factory=lambda: deque(maxlen=2000))

    def reset(self) -> None:
        self.__dict__.update(HubStats().__dict__)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter):
                out[f.name] = dict(value)
            elif isinstance(value, deque):
                out[f.name] = [record.to_dict() for record in value]
            else:
                out[f.name] = value
        return out


@dataclass
class HubsState:
    emulator: EmulatorState
    feeds: Feeds
    settings: HubSettings = field(default_factory=HubSettings)
    stats: HubStats = field(default_factory=HubStats)
    # connection token -> connection (negotiated or connected)
    connections: dict[str, HubConnection] = field(default_factory=dict)

    @classmethod
    def create(cls, emulator: EmulatorState) -> HubsState:
        return cls(emulator=emulator, feeds=Feeds.create(emulator.dataset))


HUBS_KEY: web.AppKey[HubsState] = web.AppKey("cplugin_emulator_hubs", HubsState)


def get_hubs(app_or_request: web.Application | web.Request) -> HubsState:
    app = app_or_request.app if isinstance(app_or_request, web.Request) else app_or_request
    return app[HUBS_KEY]


def ensure_hubs(app: web.Application) -> HubsState:
    if HUBS_KEY not in app:
        app[HUBS_KEY] = HubsState.create(get_state(app))
    return app[HUBS_KEY]
