"""Trade platforms and their type (MT4/MT5): the one place that decides which platform a call is for.

Every caller (the hooks' path helpers, the snapshot operators, the hub sampler operator, the sensors) resolves the
trade platform and its type here, so the same rules and the same errors apply everywhere:

* the trade platform is the task's argument, else the connection's ``trade_platform`` extra, else an error naming
  ``extra.trade_platform``;
* the type is the task's ``platform_type`` argument (``MT4``/``MT5``, any case; anything else is an error naming
  ``platform_type``), else the connection's ``platform_type`` extra when the platform is the connection's own,
  else the ``type`` of the platform in ``GET /api/TradePlatforms`` (an unreadable type or an invisible platform
  is an error naming the extra to set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.exceptions import CPluginConfigError

if TYPE_CHECKING:
    from airflow_provider_cplugin.hooks.connection import WebApiConnectionConfig
    from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
    from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

PLATFORM_TYPES = ("MT4", "MT5")

# TradePlatform ``type`` spellings (``string | number`` in the SDK, no enum published).
_PLATFORM_NAMES = {
    "MT4": "MT4",
    "METATRADER4": "MT4",
    "METATRADER 4": "MT4",
    "MT5": "MT5",
    "METATRADER5": "MT5",
    "METATRADER 5": "MT5",
    "4": "MT4",
    "5": "MT5",
}


@dataclass(frozen=True)
class Platform:
    """A resolved trade platform: its GUID as given and its type (``MT4``/``MT5``)."""

    trade_platform: str
    platform_type: str


def check_platform_type(value: Any, field: str = "platform_type", *, conn_id: str | None = None) -> str:
    """``MT4``/``MT5`` from a user-given value (any case, surrounding blanks ignored); anything else names
    ``field``."""
    text = str(value).strip().upper()
    if text not in PLATFORM_TYPES:
        raise CPluginConfigError(field, f"must be MT4 or MT5, got {value!r}", conn_id=conn_id)
    return text


def platform_type_from(value: Any) -> str | None:
    """``MT4``/``MT5`` from a TradePlatform ``type`` as the API sends it.

    Names map case-insensitively; numbers only when they spell the version (4, 5). Ordinals (0/1/2...) are
    ambiguous without a published enum, so they give None and the caller asks for ``extra.platform_type``.
    """
    if isinstance(value, bool) or value is None:
        return None
    return _PLATFORM_NAMES.get(str(value).strip().upper())


def same_guid(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def platform_type_in(platforms: Sequence[dict[str, Any]], trade_platform: str, conn_id: str | None) -> str:
    """``MT4``/``MT5`` of ``trade_platform`` in a ``/api/TradePlatforms`` list."""
    for platform in platforms:
        if same_guid(str(platform.get("id")), trade_platform):
            kind = platform_type_from(platform.get("type"))
            if kind is None:
                raise CPluginConfigError(
                    "extra.platform_type",
                    f"trade platform {trade_platform} has type {platform.get('type')!r}, which does not name MT4 "
                    "or MT5; set platform_type in the connection extras (or on the task)",
                    conn_id=conn_id,
                )
            return kind
    visible = ", ".join(str(p.get("id")) for p in platforms) or "none"
    raise CPluginConfigError(
        "extra.trade_platform",
        f"trade platform {trade_platform} is not visible to this client (visible: {visible})",
        conn_id=conn_id,
    )


def configured_platform_type(config: WebApiConnectionConfig, trade_platform: str | None) -> str | None:
    """The connection's ``platform_type`` extra, which describes the connection's own trade platform only."""
    if config.platform_type and (trade_platform is None or same_guid(trade_platform, config.trade_platform)):
        return config.platform_type
    return None


def require_trade_platform(config: WebApiConnectionConfig, trade_platform: str | None) -> str:
    """The given trade platform, else the connection's; neither is an error naming ``extra.trade_platform``."""
    tp = trade_platform or config.trade_platform
    if not tp:
        raise CPluginConfigError(
            "extra.trade_platform",
            "no trade platform given: set the task's trade_platform or the connection extra",
            conn_id=config.conn_id,
        )
    return tp


def resolve_platform(hook: CPluginWebApiHook, trade_platform: str | None, platform_type: str | None) -> Platform:
    """The trade platform and its type for a task (see the module docstring for the rules)."""
    tp = require_trade_platform(hook.config, trade_platform)
    if platform_type:
        return Platform(tp, check_platform_type(platform_type))
    return Platform(tp, hook.platform_type_of(tp))


async def aresolve_platform(
    hook: CPluginWebApiAsyncHook, trade_platform: str | None, platform_type: str | None
) -> Platform:
    """:func:`resolve_platform` with the async hook (triggers)."""
    tp = require_trade_platform(await hook.get_config(), trade_platform)
    if platform_type:
        return Platform(tp, check_platform_type(platform_type))
    return Platform(tp, await hook.platform_type_of(tp))
