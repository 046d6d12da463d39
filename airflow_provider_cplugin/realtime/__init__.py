"""Realtime side: an asyncio SignalR hub client for the CPlugin MT4/MT5 v2 hubs (see :mod:`.client`).

Names are imported lazily (PEP 562): the triggerer imports the hub trigger's light modules on its event loop, and
importing this package must not pull aiohttp and the client in with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cplugin.realtime.client import (
        DEFAULT_RECONNECT_DELAYS,
        ConnectionState,
        HubClient,
        TokenProvider,
    )
    from airflow_provider_cplugin.realtime.errors import (
        HubAuthError,
        HubClosedError,
        HubConnectionLostError,
        HubError,
        HubHandshakeError,
        HubInvocationError,
        HubNegotiationError,
        HubProtocolError,
        HubTimeoutError,
        HubTransportError,
    )
    from airflow_provider_cplugin.realtime.events import EventBuffer, HubEvent
    from airflow_provider_cplugin.realtime.gaps import GapRecord, SequenceFn
    from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client, hub_url
    from airflow_provider_cplugin.realtime.subscriptions import HubListener, HubStream, Subscription
    from airflow_provider_cplugin.realtime.transports import LONG_POLLING, WEBSOCKETS

_LAZY = {
    "DEFAULT_RECONNECT_DELAYS": "airflow_provider_cplugin.realtime.client",
    "ConnectionState": "airflow_provider_cplugin.realtime.client",
    "HubClient": "airflow_provider_cplugin.realtime.client",
    "TokenProvider": "airflow_provider_cplugin.realtime.client",
    "HubAuthError": "airflow_provider_cplugin.realtime.errors",
    "HubClosedError": "airflow_provider_cplugin.realtime.errors",
    "HubConnectionLostError": "airflow_provider_cplugin.realtime.errors",
    "HubError": "airflow_provider_cplugin.realtime.errors",
    "HubHandshakeError": "airflow_provider_cplugin.realtime.errors",
    "HubInvocationError": "airflow_provider_cplugin.realtime.errors",
    "HubNegotiationError": "airflow_provider_cplugin.realtime.errors",
    "HubProtocolError": "airflow_provider_cplugin.realtime.errors",
    "HubTimeoutError": "airflow_provider_cplugin.realtime.errors",
    "HubTransportError": "airflow_provider_cplugin.realtime.errors",
    "EventBuffer": "airflow_provider_cplugin.realtime.events",
    "HubEvent": "airflow_provider_cplugin.realtime.events",
    "GapRecord": "airflow_provider_cplugin.realtime.gaps",
    "SequenceFn": "airflow_provider_cplugin.realtime.gaps",
    "check_stream": "airflow_provider_cplugin.realtime.hubs",
    "hub_client": "airflow_provider_cplugin.realtime.hubs",
    "hub_url": "airflow_provider_cplugin.realtime.hubs",
    "HubListener": "airflow_provider_cplugin.realtime.subscriptions",
    "HubStream": "airflow_provider_cplugin.realtime.subscriptions",
    "Subscription": "airflow_provider_cplugin.realtime.subscriptions",
    "LONG_POLLING": "airflow_provider_cplugin.realtime.transports",
    "WEBSOCKETS": "airflow_provider_cplugin.realtime.transports",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_RECONNECT_DELAYS",
    "LONG_POLLING",
    "WEBSOCKETS",
    "ConnectionState",
    "EventBuffer",
    "GapRecord",
    "HubAuthError",
    "HubClient",
    "HubClosedError",
    "HubConnectionLostError",
    "HubError",
    "HubEvent",
    "HubHandshakeError",
    "HubInvocationError",
    "HubListener",
    "HubNegotiationError",
    "HubProtocolError",
    "HubStream",
    "HubTimeoutError",
    "HubTransportError",
    "SequenceFn",
    "Subscription",
    "TokenProvider",
    "check_stream",
    "hub_client",
    "hub_url",
]
