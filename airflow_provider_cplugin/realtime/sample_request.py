"""What a hub sample is asked to do (the trigger's kwargs), validated without importing anything heavy.

Kept apart from :mod:`.sampler` on purpose: the triggerer imports the trigger class and builds the trigger on its
event loop, so this module (all the trigger module needs) imports neither pyarrow, aiohttp nor the hooks. Every
argument is checked here, on the worker before deferring, and again when a trigger is re-created.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime.catalogue import MAX_ARGS

TRANSPORTS = ("WebSockets", "LongPolling")
DEFAULT_FLUSH_INTERVAL = 10.0
"""Seconds between time cuts of every stream's pending events: the most received data a killed triggerer loses."""


@dataclass(frozen=True)
class StreamSpec:
    """One hub stream to sample: ``StreamTicks`` with ``args=("EURUSD",)``, ``StreamMarginCallUpdates``..."""

    method: str
    args: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any) -> StreamSpec:
        """``"StreamTicks:EURUSD"``, ``"StreamTrades"`` or ``{"method": ..., "args": [...]}``."""
        if isinstance(value, StreamSpec):
            spec = value
        elif isinstance(value, dict):
            unknown = set(value) - {"method", "args"}
            if unknown:
                raise CPluginConfigError("streams", f"unknown keys {sorted(unknown)} in {value!r}")
            method, args = value.get("method"), value.get("args") or []
            if not isinstance(method, str) or not method.strip():
                raise CPluginConfigError("streams", f"'method' must be a non-empty string, got {method!r}")
            if not isinstance(args, list | tuple) or not all(isinstance(a, str) and a.strip() for a in args):
                raise CPluginConfigError(
                    "streams", f"{method}: 'args' must be a list of non-empty strings, got {args!r}"
                )
            spec = cls(method.strip(), tuple(a.strip() for a in args))
        elif isinstance(value, str):
            method, _, arg = value.partition(":")
            spec = cls(method.strip(), (arg.strip(),) if arg.strip() else ())
            if not spec.method:
                raise CPluginConfigError("streams", f"{value!r} names no stream method")
        else:
            raise CPluginConfigError(
                "streams", f"a stream is 'Method', 'Method:arg' or {{'method', 'args'}}, got {type(value).__name__}"
            )
        limit = MAX_ARGS.get(spec.method, 0)
        if len(spec.args) > limit:
            raise CPluginConfigError(
                "streams", f"{spec.method} takes at most {limit} argument(s), got {list(spec.args)}"
            )
        return spec

    @property
    def channel(self) -> str:
        return f"{self.method}({','.join(map(str, self.args))})" if self.args else self.method

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "args": list(self.args)}


def parse_streams(streams: Any) -> list[StreamSpec]:
    """Validated, distinct specs: an empty list, a bare string or a stream listed twice is a config error."""
    if isinstance(streams, str | bytes | dict) or not isinstance(streams, list | tuple) or not streams:
        raise CPluginConfigError("streams", f"must be a non-empty list of streams, got {streams!r}")
    specs = [StreamSpec.parse(s) for s in streams]
    seen: set[StreamSpec] = set()
    for spec in specs:
        if spec in seen:
            # Two subscriptions of one stream would land every event twice (and one copy was never drained).
            raise CPluginConfigError("streams", f"{spec.channel} is listed twice")
        seen.add(spec)
    return specs


def sample_specs(streams: Any) -> list[dict[str, Any]]:
    """Normalise user input (``"StreamTicks:EURUSD"``...) to the serializable form."""
    return [s.to_dict() for s in parse_streams(streams)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CPluginConfigError(name, f"must be an integer >= {minimum}, got {value!r}")


def check_window(window: Any) -> float:
    """The operator's ``window`` (seconds, maybe a rendered template string) as a number > 0."""
    try:
        seconds = float(window)
    except (TypeError, ValueError):
        raise CPluginConfigError("window", f"must be a number of seconds, got {window!r}") from None
    if isinstance(window, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise CPluginConfigError("window", f"must be a number of seconds > 0, got {window!r}")
    return seconds


@dataclass(frozen=True)
class SampleRequest:
    """Everything a sample needs, JSON-serializable (a trigger's kwargs): connection ids, never a secret."""

    cplugin_conn_id: str
    trade_platform: str
    platform_type: str
    streams: list[dict[str, Any]]
    window_end: float
    """Unix seconds when sampling stops (absolute: a re-created trigger keeps the same window)."""
    output_path: str
    run_name: str
    """Deterministic prefix of the batch files (``<dag>__<task>__<logical date>``)."""
    partition_date: str
    max_events: int | None = None
    batch_rows: int = 50_000
    batch_bytes: int = 64 * 1024 * 1024
    transports: list[str] = field(default_factory=lambda: list(TRANSPORTS))
    reconnect_delays: list[float] | None = None
    output_conn_id: str | None = None
    """Storage connection of ``output_path`` (``landing_root``); None = the URL's default credentials."""
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    sequences: str | None = None
    """``"module:function"`` returning a sequence function per stream (see :mod:`.sampler`); None = unknown."""

    def __post_init__(self) -> None:
        parse_streams(self.streams)
        for name in ("cplugin_conn_id", "trade_platform", "platform_type", "output_path", "run_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise CPluginConfigError(name, f"must be a non-empty string, got {value!r}")
        if not _is_number(self.window_end):
            raise CPluginConfigError("window_end", f"must be a finite number of unix seconds, got {self.window_end!r}")
        _check_int("batch_rows", self.batch_rows, 1)
        _check_int("batch_bytes", self.batch_bytes, 1)
        if self.max_events is not None:
            _check_int("max_events", self.max_events, 0)
        if not _is_number(self.flush_interval) or self.flush_interval <= 0:
            raise CPluginConfigError("flush_interval", f"must be a number of seconds > 0, got {self.flush_interval!r}")
        transports = self.transports
        if not isinstance(transports, list | tuple) or not transports or any(t not in TRANSPORTS for t in transports):
            raise CPluginConfigError(
                "transports", f"must be a non-empty subset of {list(TRANSPORTS)}, got {transports!r}"
            )
        delays = self.reconnect_delays
        if delays is not None and (
            not isinstance(delays, list | tuple) or not all(_is_number(d) and d >= 0 for d in delays)
        ):
            raise CPluginConfigError("reconnect_delays", f"must be a list of seconds >= 0, got {delays!r}")
        if self.sequences is not None and (not isinstance(self.sequences, str) or ":" not in self.sequences):
            raise CPluginConfigError("sequences", f"must be 'module:function', got {self.sequences!r}")

    def specs(self) -> list[StreamSpec]:
        return parse_streams(self.streams)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
