"""Realtime side: an asyncio SignalR hub client for the CPlugin MT4/MT5 v2 hubs (see :mod:`.client`)."""

from __future__ import annotations

from airflow_provider_cplugin.realtime.client import DEFAULT_RECONNECT_DELAYS, ConnectionState, HubClient, TokenProvider
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
