"""The emulated hubs: paths, binding, server events, invocations and streams (reference §8, SDK 0.2.1, v1 docs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.hubs import feeds as F
from airflow_provider_cplugin.emulator.hubs import protocol as P

if TYPE_CHECKING:
    from airflow_provider_cplugin.emulator.hubs.connection import HubConnection

MT4_PATH = "/hubs/mt4/v2"
MT5_PATH = "/hubs/mt5/v2"
# Legacy MT4 hub of the docs' example (confluence "MT4 Hub"): no binding, the GUID is every call's first argument.
MT4_V1_PATH = "/hubs/mt4/v1"
# Unverified: the docs only show the demo page https://cloud.mywebapi.com/DemoSignalR/Test, not its hub path
# nor its event name. The emulator serves it at TEST_PATH and pushes TEST_EVENT(iso time) every second.
TEST_PATH = "/hubs/test"
TEST_EVENT = "ServerTime"

ON_CONNECTION_STATUS = "OnConnectionStatus"
ON_TICK = "OnTick"
ON_MARGIN_CALL = "OnMarginCall"  # MT5 v2 callback of the vendor's .NET SDK; payload = a margin-call stream item
V1_ON_TICK = "onTick"


class HubMethodError(Exception):
    """A hub method failed; the client gets a Completion with this message (HubException text)."""


@dataclass(frozen=True)
class StreamSource:
    feed: str
    cursor: F.Cursor


InvocationHandler = Callable[["HubConnection", list[Any]], Any]
StreamHandler = Callable[["HubConnection", list[Any]], StreamSource]


@dataclass(frozen=True)
class Method:
    handler: Callable[..., Any]
    min_args: int
    max_args: int


def find_method(methods: dict[str, Method], target: str) -> Method | None:
    """Hub method names are matched case-insensitively, as ASP.NET Core does (OrdinalIgnoreCase)."""
    method = methods.get(target)
    if method is None:
        folded = target.lower()
        method = next((m for name, m in methods.items() if name.lower() == folded), None)
    return method


@dataclass(frozen=True)
class HubSpec:
    name: str
    path: str
    # Trade platform the hub binds (``?tradePlatform=``), None = no binding (test hub).
    platform: Callable[[EmulatorConfig], str] | None
    requires_auth: bool
    invocations: dict[str, Method] = field(default_factory=dict)
    streams: dict[str, Method] = field(default_factory=dict)
    on_connected: Callable[[HubConnection], None] | None = None


def _symbol_arg(value: Any, method: str) -> str:
    if not isinstance(value, str):
        raise HubMethodError(f"{method}: symbol must be a string")
    if value not in F.SYMBOL_INDEX:
        raise HubMethodError(f"Unknown symbol '{value}'")
    return value


def _subscribe_to_ticks(conn: HubConnection, args: list[Any]) -> None:
    conn.subscribe_ticks(F.SYMBOL_INDEX[_symbol_arg(args[0], "SubscribeToTicks")])


def _unsubscribe_from_ticks(conn: HubConnection, args: list[Any]) -> None:
    conn.unsubscribe_ticks(F.SYMBOL_INDEX[_symbol_arg(args[0], "UnsubscribeFromTicks")])


def _stream_ticks(conn: HubConnection, args: list[Any]) -> StreamSource:
    symbol = args[0] if args else None
    only = None if symbol is None else frozenset({F.SYMBOL_INDEX[_symbol_arg(symbol, "StreamTicks")]})
    return StreamSource(F.TICKS, conn.feeds.ticks.cursor(only))


def _row_stream(feed: str, attr: str) -> Callable[[HubConnection, list[Any]], StreamSource]:
    def handler(conn: HubConnection, args: list[Any]) -> StreamSource:
        cursor = getattr(conn.feeds, attr).cursor()
        if cursor is None:
            raise HubMethodError("No accounts to stream on this trade platform")
        return StreamSource(feed, cursor)

    return handler


def _push_connected(conn: HubConnection) -> None:
    conn.push_event(ON_CONNECTION_STATUS, '[{"connected":true}]')


def _mt5_connected(conn: HubConnection) -> None:
    _push_connected(conn)
    cursor = conn.feeds.mt5_margin_calls.cursor()
    if cursor is not None:
        conn.start_event_pump(ON_MARGIN_CALL, F.MT5_MARGIN_CALLS, cursor)


def _v1_platform(conn: HubConnection, value: Any, method: str) -> str:
    """The v1 hub's ``Guid tradePlatform`` argument: must be the emulator's MT4 platform (canonical form)."""
    try:
        platform = str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        platform = None
    if platform is None:
        raise HubMethodError(f"{method}: tradePlatform must be a GUID string")
    if platform != str(uuid.UUID(conn.hubs.emulator.config.mt4_trade_platform)):
        raise HubMethodError(f"Trade platform {platform} is not an MT4 platform of this account")
    return platform


def _v1_connect(conn: HubConnection, args: list[Any]) -> bool:
    _v1_platform(conn, args[0], "Connect")
    return True  # the pump is up


def _v1_ping(conn: HubConnection, args: list[Any]) -> bool:
    _v1_platform(conn, args[0], "Ping")
    return True


def _v1_subscribe(conn: HubConnection, args: list[Any]) -> bool:
    platform = _v1_platform(conn, args[0], "SubscribeToTicks")
    conn.tick_filter.add(F.SYMBOL_INDEX[_symbol_arg(args[1], "SubscribeToTicks")])
    cursor = conn.feeds.ticks.cursor(conn.tick_filter, legacy=True)
    conn.start_event_pump(V1_ON_TICK, F.TICKS, cursor, leading_args=P.dumps(platform) + ",")
    return True


def _v1_unsubscribe(conn: HubConnection, args: list[Any]) -> bool:
    _v1_platform(conn, args[0], "UnsubscribeFromTicks")
    conn.tick_filter.discard(F.SYMBOL_INDEX[_symbol_arg(args[1], "UnsubscribeFromTicks")])
    return True


def _start_server_time(conn: HubConnection) -> None:
    conn.start_event_pump(TEST_EVENT, F.SERVER_TIME, conn.feeds.server_time.cursor())


MT4_HUB = HubSpec(
    name="mt4",
    path=MT4_PATH,
    platform=lambda c: c.mt4_trade_platform,
    requires_auth=True,
    invocations={
        "SubscribeToTicks": Method(_subscribe_to_ticks, 1, 1),
        "UnsubscribeFromTicks": Method(_unsubscribe_from_ticks, 1, 1),
    },
    streams={
        "StreamTicks": Method(_stream_ticks, 0, 1),
        "StreamMarginCallUpdates": Method(_row_stream(F.MARGIN_CALLS, "margin_calls"), 0, 0),
        "StreamTrades": Method(_row_stream(F.TRADES, "trades"), 0, 0),
        "StreamUserUpdates": Method(_row_stream(F.USERS, "users"), 0, 0),
        "StreamSymbolUpdates": Method(_row_stream(F.SYMBOL_UPDATES, "symbols"), 0, 0),
    },
    on_connected=_push_connected,
)

# MT5 v2: reduced scope; ticks/trades/users/symbols are "deferred server-side" (not callable).
MT5_HUB = HubSpec(
    name="mt5",
    path=MT5_PATH,
    platform=lambda c: c.mt5_trade_platform,
    requires_auth=True,
    streams={"StreamMarginCallUpdates": Method(_row_stream(F.MT5_MARGIN_CALLS, "mt5_margin_calls"), 0, 0)},
    on_connected=_mt5_connected,
)

MT4_V1_HUB = HubSpec(
    name="mt4v1",
    path=MT4_V1_PATH,
    platform=None,
    requires_auth=True,
    invocations={
        "Connect": Method(_v1_connect, 1, 1),
        "Ping": Method(_v1_ping, 1, 1),
        "SubscribeToTicks": Method(_v1_subscribe, 2, 2),
        "UnsubscribeFromTicks": Method(_v1_unsubscribe, 2, 2),
    },
)

TEST_HUB = HubSpec(name="test", path=TEST_PATH, platform=None, requires_auth=False, on_connected=_start_server_time)

HUBS: tuple[HubSpec, ...] = (MT4_HUB, MT5_HUB, MT4_V1_HUB, TEST_HUB)
