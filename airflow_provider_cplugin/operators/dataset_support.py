"""Pieces the warehouse-dataset operators share (daily reports, groups, ticks/bars, MT5 config, user changes):
the run's interval, the server's time zone and symbol lists (keys are checked by the landing, parquet/keys.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginConfigError, CPluginError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators import arguments

Records = list[dict[str, Any]]
Page = TypeVar("Page")
_SEPARATORS = re.compile(r"[,;\s]+")
_SYMBOL = re.compile(r"[A-Za-z0-9._#\-+!&]{1,32}")


def run_interval(context: Context, start: Any = None, end: Any = None) -> tuple[datetime, datetime]:
    """``[start, end)`` of the run in UTC: the overrides if given, else the DAG run's data interval."""
    lo = start if start is not None else context.get("data_interval_start")
    hi = end if end is not None else context.get("data_interval_end")
    if lo is None or hi is None:
        raise CPluginConfigError("interval_start", "the run has no data interval; pass interval_start/interval_end")
    lo, hi = arguments.moment(lo, "interval_start"), arguments.moment(hi, "interval_end")
    if lo >= hi:
        raise CPluginConfigError(
            "interval_end", f"empty interval [{lo.isoformat()}, {hi.isoformat()}): the DAG needs data intervals"
        )
    return lo, hi


def symbols(value: Any, field: str = "symbols", *, required: bool = True) -> list[str]:
    """Symbol names from a list or text (``"EURUSD, XAUUSD"`` / ``"['EURUSD']"``), unique, in the given order."""
    if value is None or value == "" or value == []:
        if required:
            raise CPluginConfigError(field, "give at least one symbol")
        return []
    items: Iterable[Any]
    if isinstance(value, str):
        items = [p.strip("'\"") for p in _SEPARATORS.split(value.strip().removeprefix("[").removesuffix("]")) if p]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise CPluginConfigError(field, f"must be a list of symbol names or comma-separated text, got {value!r}")
    out: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str) or not _SYMBOL.fullmatch(item.strip()):
            raise CPluginConfigError(field, f"{item!r} is not a symbol name")
        out[item.strip()] = None
    return list(out)


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise CPluginConfigError(field, f"must be one of {allowed}, got {value!r}")
    return str(value)


def server_tz_hours(hook: CPluginWebApiHook, trade_platform: str) -> int:
    """MT4 server time zone, hours east of UTC (``ManagerCommon.timeZone``): what server-local times mean."""
    common = hook.get(hook.v2_path("ManagerCommon", trade_platform=trade_platform, platform_type="MT4")) or {}
    tz = common.get("timeZone")
    if isinstance(tz, bool) or not isinstance(tz, int) or not -12 <= tz <= 14:
        raise CPluginError(f"ManagerCommon.timeZone is {tz!r}, not a whole number of hours in -12..14")
    return tz


def mapped(pages: Callable[[], Iterable[Page]], change: Callable[[Page], Page]) -> Callable[[], Iterator[Page]]:
    """A page source whose pages (records or decoded batches) pass through ``change`` (derived columns, dropped
    secrets, order)."""

    def source() -> Iterator[Page]:
        for page in pages():
            yield change(page)

    return source
