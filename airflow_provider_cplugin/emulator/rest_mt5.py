"""MT5 v2 REST surface: ``/api/v2/MT5/{tradePlatform}/...`` - the small read surface of SDK 0.2.1.

No user list, online, margins, ticks or sync sessions exist for MT5 there, so none are emulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache

from aiohttp import web

from airflow_provider_cplugin.emulator.data import (
    MT5_DEAL_BASE,
    MT5_GROUP_BY_NAME,
    MT5_GROUPS,
    MT5_ORDER_BASE,
    MT5_POSITION_BASE,
    SYMBOL_BY_NAME,
    Dataset,
    Row,
)
from airflow_provider_cplugin.emulator.envelope import (
    NOT_FOUND,
    EnvelopeError,
    Page,
    index_after,
    ok,
    path_int,
    query_cursor,
    query_limit,
    send_rows,
)
from airflow_provider_cplugin.emulator.rest_platforms import require_platform
from airflow_provider_cplugin.emulator.state import EmulatorState, get_state
from airflow_provider_cplugin.group_mask import group_mask

PREFIX = "/api/v2/MT5/{tradePlatform}"
routes = web.RouteTableDef()


def mt5(request: web.Request) -> tuple[EmulatorState, Dataset]:
    require_platform(request, "MT5")
    state = get_state(request)
    return state, state.dataset


@lru_cache(maxsize=256)
def groups_matching(mask: str) -> frozenset[str] | None:
    """MT5 group mask -> matching group names (None = all groups, which skips per-row filtering)."""
    parsed = group_mask(mask)
    names = frozenset(g.name for g in MT5_GROUPS if parsed.matches(g.name))
    return None if len(names) == len(MT5_GROUPS) else names


@routes.get(PREFIX + "/ServerTime")
async def server_time(request: web.Request) -> web.Response:
    _, ds = mt5(request)
    return ok(ds.server_time(int(time.time())))


@routes.get(PREFIX + "/TimeGet")
async def time_get(request: web.Request) -> web.Response:
    _, ds = mt5(request)
    return ok(ds.mt5_time())


@routes.get(PREFIX + "/UserGet/{login}")
async def user_get(request: web.Request) -> web.Response:
    _, ds = mt5(request)
    login = path_int(request, "login")
    index = ds.mt5_user_index(login)
    if index is None:
        raise EnvelopeError(NOT_FOUND, f"User {login} not found.")
    return ok(ds.mt5_user(index))


@routes.get(PREFIX + "/SymbolGet/{symbol}")
async def symbol_get(request: web.Request) -> web.Response:
    _, ds = mt5(request)
    symbol = SYMBOL_BY_NAME.get(request.match_info["symbol"])
    if symbol is None:
        raise EnvelopeError(NOT_FOUND, f"Symbol '{request.match_info['symbol'][:64]}' not found.")
    return ok(ds.mt5_symbol(symbol))


@routes.get(PREFIX + "/GroupGet/{group}")
async def group_get(request: web.Request) -> web.Response:
    _, ds = mt5(request)
    group = MT5_GROUP_BY_NAME.get(request.match_info["group"])
    if group is None:
        raise EnvelopeError(NOT_FOUND, f"Group '{request.match_info['group'][:64]}' not found.")
    return ok(ds.mt5_group(group))


async def _by_group(request: web.Request, base: int, count: int, build: Callable[[int], Row]) -> web.StreamResponse:
    state, ds = mt5(request)
    limit = query_limit(request, state.config.max_page_limit)
    start = index_after(query_cursor(request), base)
    keys = ds.mt5_keys(base, count, start, groups_matching(request.match_info["mask"]))
    return await send_rows(request, Page(keys, limit, lambda key: build(key - base)))


@routes.get(PREFIX + "/PositionByGroup/{mask}")
async def position_by_group(request: web.Request) -> web.StreamResponse:
    ds = get_state(request).dataset
    return await _by_group(request, MT5_POSITION_BASE, ds.mt5_position_count, ds.mt5_position)


@routes.get(PREFIX + "/OrderByGroup/{mask}")
async def order_by_group(request: web.Request) -> web.StreamResponse:
    ds = get_state(request).dataset
    return await _by_group(request, MT5_ORDER_BASE, ds.mt5_order_count, ds.mt5_order)


@routes.get(PREFIX + "/DealByGroup/{mask}")
async def deal_by_group(request: web.Request) -> web.StreamResponse:
    ds = get_state(request).dataset
    return await _by_group(request, MT5_DEAL_BASE, ds.mt5_deal_count, ds.mt5_deal)
