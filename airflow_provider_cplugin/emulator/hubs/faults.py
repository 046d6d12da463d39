"""Hub fault switches, kept in the emulator's shared :class:`FaultStore` under ``hub.<fault>`` kinds.

Sharing the store means ``POST /_emulator/reset`` clears them and ``/_emulator/faults`` can set them as plain
rules (``{"kind": "hub.drop", "path": "/hubs/mt4", "options": {"after_messages": 100}}``).
``POST /_emulator/hub-faults`` is the friendlier front end: ``{"rules": [{"fault": "drop", "after_messages":
100, "hub": "/hubs/mt4/v2", "times": 1}], "append": false}`` (replaces only the hub rules unless ``append``).

Faults (``hub`` = regex searched in the hub path, default every hub; ``times`` = how many negotiations or
connections it hits, default 1, ``null`` = until reset):

=================== ======================================= =================================================
fault               options                                 effect
=================== ======================================= =================================================
``refuse_negotiate`` ``status`` (503), ``body``              negotiate (or a direct WebSocket connect) answers
                                                            ``status`` with ``body`` as text
``delay_negotiate``  ``delay_s``                             negotiate answers after ``delay_s``
``delay_handshake``  ``delay_s``                             the handshake response comes ``delay_s`` late
``stall``            ``after_messages`` (0), ``delay_s``     after N messages nothing (not even pings) is sent
                                                            for ``delay_s`` (trips the client's server timeout)
``drop``             ``after_messages``, ``close_message``   after N messages the transport is cut (TCP abort);
                     (false)                                with ``close_message`` a Close frame
                                                            ``{error, allowReconnect: true}`` is sent first
``malformed``        ``after_messages`` (0), ``frame``       after N messages one broken record (default:
                                                            truncated JSON) is sent, then business as usual
``expire_token``     ``after_s``                             the session's token counts as expired after
                                                            ``after_s``: Close ``{error, allowReconnect: true}``
``close_on_token_expiry`` (none)                             the server re-checks the connection's token and
                                                            closes (Close ``{error, allowReconnect: true}``)
                                                            once it expires or is revoked, like ASP.NET Core
                                                            with ``CloseOnAuthenticationExpiration = true``;
                                                            default (no rule): a live connection outlives its
                                                            token, as ASP.NET Core's default does
``complete_stream``  ``after_items`` (0), ``stream`` ("",       the first stream invocation whose target matches
                     regex on the target)                   the ``stream`` regex completes (empty Completion)
                                                            after ``after_items`` items, as a server ending a
                                                            stream early would
``corrupt_item``     ``after_messages`` (0), ``field``        the first stream item sent after N messages that
                     ("bid"), ``value`` ("abc")               has ``field`` carries ``value`` instead (still
                                                            counted as sent in the stream's record)
=================== ======================================= =================================================

"Messages" are the hub messages a connection sent after the handshake (pings excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_cplugin.emulator.faults import FaultRule, FaultStore

KIND_PREFIX = "hub."
DEFAULT_MALFORMED = '{"type":1,"target":"OnTick","arguments":[{"symbol":"EURUSD","bid":1.0' + "\x1e"

# fault -> allowed option keys and their defaults
FAULTS: dict[str, dict[str, Any]] = {
    "refuse_negotiate": {"status": 503, "body": "Service Unavailable"},
    "delay_negotiate": {"delay_s": 1.0},
    "delay_handshake": {"delay_s": 1.0},
    "stall": {"after_messages": 0, "delay_s": 5.0},
    "drop": {"after_messages": 0, "close_message": False},
    "malformed": {"after_messages": 0, "frame": DEFAULT_MALFORMED},
    "expire_token": {"after_s": 0.0},
    "close_on_token_expiry": {},
    "complete_stream": {"after_items": 0, "stream": ""},
    "corrupt_item": {"after_messages": 0, "field": "bid", "value": "abc"},
}
CONNECTION_FAULTS = (
    "stall",
    "drop",
    "malformed",
    "expire_token",
    "close_on_token_expiry",
    "complete_stream",
    "corrupt_item",
)


def rule_from_spec(raw: Any) -> FaultRule:
    """``{"fault": ..., "hub": regex, "times": n, **options}`` -> a shared-store rule."""
    if not isinstance(raw, dict):
        raise ValueError("a hub fault must be a JSON object")
    spec = dict(raw)
    fault = spec.pop("fault", None)
    if fault not in FAULTS:
        raise ValueError(f"unknown hub fault {fault!r}; known: {sorted(FAULTS)}")
    hub = spec.pop("hub", "")
    times = spec.pop("times", 1)
    if not isinstance(hub, str):
        raise ValueError("'hub' must be a path regex")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool)):
        raise ValueError("'times' must be an integer or null")
    unknown = set(spec) - set(FAULTS[fault])
    if unknown:
        raise ValueError(f"unknown options for {fault}: {sorted(unknown)}")
    options = {**FAULTS[fault], **spec}
    _check_options(fault, options)
    return FaultRule(path=hub, times=times, kind=KIND_PREFIX + fault, options=options)


def _check_options(fault: str, options: dict[str, Any]) -> None:
    for key in ("delay_s", "after_s"):
        if key in options and (not isinstance(options[key], int | float) or options[key] < 0):
            raise ValueError(f"{fault}.{key} must be a number >= 0")
    for key in ("after_messages", "after_items"):
        if key in options and (not isinstance(options[key], int) or isinstance(options[key], bool) or options[key] < 0):
            raise ValueError(f"{fault}.{key} must be an integer >= 0")
    if fault == "complete_stream" and not isinstance(options["stream"], str):
        raise ValueError("complete_stream.stream must be a regex string")
    if fault == "corrupt_item" and not isinstance(options["field"], str):
        raise ValueError("corrupt_item.field must be a string")
    if fault == "refuse_negotiate" and not (isinstance(options["status"], int) and 400 <= options["status"] <= 599):
        raise ValueError("refuse_negotiate.status must be an HTTP error status")
    if fault == "malformed" and not isinstance(options["frame"], str):
        raise ValueError("malformed.frame must be a string")


def spec_of(rule: FaultRule) -> dict[str, Any]:
    return {"fault": rule.kind[len(KIND_PREFIX) :], "hub": rule.path, "times": rule.times, **rule.options}


def hub_rules(store: FaultStore) -> list[FaultRule]:
    return [r for r in store.rules() if r.kind.startswith(KIND_PREFIX)]


def replace_hub_rules(store: FaultStore, rules: list[FaultRule], append: bool) -> None:
    others = [r for r in store.rules() if not r.kind.startswith(KIND_PREFIX)]
    current = hub_rules(store) if append else []
    store.set([*others, *current, *rules])


def take(store: FaultStore, fault: str, hub_path: str) -> dict[str, Any] | None:
    """Options of the first matching rule (one use consumed), or None."""
    rule = store.take(KIND_PREFIX + fault, "GET", hub_path)
    return dict(rule.options) if rule is not None else None


@dataclass
class ArmedFaults:
    """Connection-level faults taken from the store when a connection completes its handshake."""

    stall: dict[str, Any] | None = None
    drop: dict[str, Any] | None = None
    malformed: dict[str, Any] | None = None
    expire_token: dict[str, Any] | None = None
    close_on_token_expiry: dict[str, Any] | None = None
    complete_stream: dict[str, Any] | None = None
    corrupt_item: dict[str, Any] | None = None

    @classmethod
    def take_all(cls, store: FaultStore, hub_path: str) -> ArmedFaults:
        return cls(**{name: take(store, name, hub_path) for name in CONNECTION_FAULTS})

    def names(self) -> list[str]:
        return [name for name in CONNECTION_FAULTS if getattr(self, name) is not None]
