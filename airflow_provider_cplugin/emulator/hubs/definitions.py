"""The emulated hubs: paths, binding, server events, invocations and streams (reference §8, SDK 0.2.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.hubs import feeds as F

if TYPE_CHECKING:
    from airflow_provider_cplugin.emulator.hubs.connection import HubConnection

MT4_PATH = "/hubs/mt4/v2"
MT5_PATH = "/hubs/mt5/v2"
# Unverified: the docs only show the demo page https://cloud.mywebapi.com/DemoSignalR/Test, not its hub path
# nor its event name. The emulator serves it at TEST_PATH and pushes TEST_EVENT(iso time) every second.
TEST_PATH = "/hubs/test"
TEST_EVENT = "ServerTime"

ON_CONNECTION_STATUS = "OnConnectionStatus"
ON_TICK = "OnTick"


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
    on_connected=_push_connected,
)

TEST_HUB = HubSpec(name="test", path=TEST_PATH, platform=None, requires_auth=False, on_connected=_start_server_time)

HUBS: tuple[HubSpec, ...] = (MT4_HUB, MT5_HUB, TEST_HUB)
