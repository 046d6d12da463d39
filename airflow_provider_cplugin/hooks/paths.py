"""Request building: query-string and path encoding, v2 method paths, and the platform endpoints' paths and
payload check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.envelope import ApiResponse
from airflow_provider_cplugin.platforms import check_platform_type

TRADE_PLATFORMS_PATH = "/api/TradePlatforms"


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def encode_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query pairs: lists/tuples/sets as repeated keys (what the server documents), None values dropped."""
    pairs: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            pairs.extend((key, _param_value(v)) for v in value if v is not None)
        else:
            pairs.append((key, _param_value(value)))
    return pairs


def quote_segment(value: Any) -> str:
    """``encodeURIComponent`` (the SDK's path-param encoding): ``real\\*`` → ``real%5C*``."""
    return quote(str(value), safe="!~*'()")


def build_v2_path(platform_type: str, trade_platform: str, method: str, path_params: Iterable[Any] = ()) -> str:
    """``/api/v2/{MT4|MT5}/{tp}/{method}[/{param}...]``; each segment of ``method`` and every param encoded."""
    platform_type = check_platform_type(platform_type)
    segments = [quote_segment(s) for s in method.strip("/").split("/")]
    segments += [quote_segment(p) for p in path_params]
    return f"/api/v2/{platform_type}/{quote_segment(trade_platform)}/" + "/".join(segments)


def ping_path(trade_platform: str) -> str:
    return f"/api/TradePlatforms/{quote_segment(trade_platform)}/Ping"


def platforms_from(response: ApiResponse) -> list[dict[str, Any]]:
    """``/api/TradePlatforms`` must be a bare array (the SDK rejects anything else as ``Internal``)."""
    if not isinstance(response.data, list):
        raise CPluginApiError(
            "Internal",
            "GET /api/TradePlatforms returned an invalid payload (not an array)",
            status=response.status,
            method="GET",
            path=TRADE_PLATFORMS_PATH,
        )
    return [p for p in response.data if isinstance(p, dict)]
