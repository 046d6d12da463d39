"""The CPlugin hub contract (reference §8): paths, event targets, and a hub URL / client builder (the streams per
platform are in :mod:`.catalogue`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.platforms import check_platform_type
from airflow_provider_cplugin.realtime.catalogue import MT4, MT5, STREAMS
from airflow_provider_cplugin.realtime.client import HubClient, TokenProvider

HUB_PATHS = {MT4: "/hubs/mt4/v2", MT5: "/hubs/mt5/v2"}

ON_CONNECTION_STATUS = "OnConnectionStatus"
ON_TICK = "OnTick"
SUBSCRIBE_TO_TICKS = "SubscribeToTicks"
UNSUBSCRIBE_FROM_TICKS = "UnsubscribeFromTicks"

__all__ = ["HUB_PATHS", "MT4", "MT5", "STREAMS", "check_stream", "hub_client", "hub_url"]


def _platform(platform_type: str) -> str:
    return check_platform_type(platform_type)  # the rules every caller shares (platforms.py)


def hub_url(api_base_url: str, platform_type: str, trade_platform: str, *, override: str | None = None) -> str:
    """``{api_base_url}/hubs/mt4/v2?tradePlatform=<guid>`` (``override`` replaces the default hub URL)."""
    if not trade_platform:
        raise CPluginConfigError("trade_platform", "a hub binds one trade platform: it is required")
    base = override or api_base_url.rstrip("/") + HUB_PATHS[_platform(platform_type)]
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}tradePlatform={quote(trade_platform, safe='')}"


def check_stream(platform_type: str, target: str) -> None:
    """Raise CPluginConfigError when ``target`` is not a stream of that platform's hub."""
    platform = _platform(platform_type)
    if target not in STREAMS[platform]:
        raise CPluginConfigError(
            "stream", f"{target!r} is not a {platform} hub stream; known: {sorted(STREAMS[platform])}"
        )


def hub_client(
    api_base_url: str,
    platform_type: str,
    trade_platform: str,
    token_provider: TokenProvider,
    **options: Any,
) -> HubClient:
    """A :class:`HubClient` for a platform's hub; ``options`` go to the client (``allow_insecure_loopback``...).

    With the hooks: ``hub_client(cfg.api_base_url, "MT4", cfg.trade_platform, async_hook.get_token, ...)``.
    """
    return HubClient(hub_url(api_base_url, platform_type, trade_platform), token_provider, **options)
