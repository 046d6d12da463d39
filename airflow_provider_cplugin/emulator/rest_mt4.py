"""MT4 v2 REST surface: ``/api/v2/MT4/{tradePlatform}/...`` (the reads a data pipeline uses).

Paged endpoints (``UsersRequest``, ``OnlineGet``/``OnlineRequest``, ``TradesGet``, ``TradesRequest``) go through
:class:`Page`; batch reads silently omit unknown keys; single-record reads answer a NotFound envelope.
"""

from __future__ import annotations

import time

from aiohttp import web

from airflow_provider_cplugin.emulator.data import (
    MT4_GROUPS,
    MT4_LOGIN_BASE,
    SYMBOL_BY_NAME,
    SYMBOL_GROUPS,
    SYMBOLS,
    Dataset,
    Row,
)
from airflow_provider_cplugin.emulator.envelope import (
    NO_CONNECT,
    NOT_FOUND,
    VALIDATION,
    EnvelopeError,
    Page,
    index_after,
    ok,
    path_int,
    query_cursor,
    query_datetime,
    query_ints,
    query_limit,
    query_str,
    send_rows,
)
from airflow_provider_cplugin.emulator.rest_platforms import require_platform
from airflow_provider_cplugin.emulator.state import EmulatorState, get_state

PREFIX = "/api/v2/MT4/{tradePlatform}"
routes = web.RouteTableDef()


def mt4(request: web.Request) -> tuple[EmulatorState, Dataset]:
    require_platform(request, "MT4")
    state = get_state(request)
    return state, state.dataset


def _user_index(ds: Dataset, login: int) -> int:
    index = ds.mt4_user_index(login)
    if index is None:
        raise EnvelopeError(NOT_FOUND, f"User {login} not found.")
    return index


# --------------------------------------------------------------------------- server


@routes.get(PREFIX + "/ServerTime")
async def server_time(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok(ds.server_time(int(time.time())))


@routes.get(PREFIX + "/ManagerCommon")
async def manager_common(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok(ds.mt4_common())


# --------------------------------------------------------------------------- users


@routes.get(PREFIX + "/UserRecordGet/{login}")
@routes.get(PREFIX + "/UserRecordRequest/{login}")
async def user_record(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok(ds.mt4_user(_user_index(ds, path_int(request, "login"))))


@routes.get(PREFIX + "/UserRecordsRequest")
async def user_records(request: web.Request) -> web.StreamResponse:
    _, ds = mt4(request)
    # The wrapper answers a dictionary: duplicates collapse, unknown logins are silently omitted.
    indexes = (ds.mt4_user_index(login) for login in dict.fromkeys(query_ints(request, "logins")))
    return await send_rows(request, (ds.mt4_user(i) for i in indexes if i is not None))


@routes.get(PREFIX + "/UsersRequest")
async def users_request(request: web.Request) -> web.StreamResponse:
    state, ds = mt4(request)
    limit = query_limit(request, state.config.max_page_limit)
    start = index_after(query_cursor(request), MT4_LOGIN_BASE)
    logins = range(MT4_LOGIN_BASE + start, MT4_LOGIN_BASE + max(ds.mt4_user_count, start))
    return await send_rows(request, Page(logins, limit, lambda login: ds.mt4_user(login - MT4_LOGIN_BASE)))


async def _online(request: web.Request, state: EmulatorState, ds: Dataset) -> web.StreamResponse:
    limit = query_limit(request, state.config.max_page_limit)
    start = index_after(query_cursor(request), MT4_LOGIN_BASE)
    page = Page(ds.mt4_online_logins(start), limit, lambda login: ds.mt4_online(login - MT4_LOGIN_BASE))
    return await send_rows(request, page)


@routes.get(PREFIX + "/OnlineGet")
async def online_get(request: web.Request) -> web.StreamResponse:
    state, ds = mt4(request)
    if time.monotonic() - state.started_at < state.config.online_warmup_s:
        # Cold pump cache: NoConnect means "retry later", unlike [] which means "warm, nobody online".
        raise EnvelopeError(NO_CONNECT, "Pump cache is not warmed up yet; retry later.", "NoConnect")
    return await _online(request, state, ds)


@routes.get(PREFIX + "/OnlineRequest")
async def online_request(request: web.Request) -> web.StreamResponse:
    state, ds = mt4(request)
    return await _online(request, state, ds)


# --------------------------------------------------------------------------- open trades


async def _open_trades(request: web.Request, group: str | None) -> web.StreamResponse:
    state, ds = mt4(request)
    limit = query_limit(request, state.config.max_page_limit)
    start = index_after(query_cursor(request), ds.mt4_open_ticket_base)
    return await send_rows(request, Page(ds.mt4_open_tickets(start, group), limit, ds.mt4_open_trade_by_ticket))


@routes.get(PREFIX + "/TradesGet")
async def trades_get(request: web.Request) -> web.StreamResponse:
    return await _open_trades(request, None)


@routes.get(PREFIX + "/TradesRequest")
async def trades_request(request: web.Request) -> web.StreamResponse:
    # `group` is an exact, case-sensitive group name; an unknown group simply matches nothing.
    return await _open_trades(request, query_str(request, "group"))


@routes.get(PREFIX + "/TradesGetByLogin/{login}/{group}")
async def trades_by_login(request: web.Request) -> web.StreamResponse:
    _, ds = mt4(request)
    index = ds.mt4_user_index(path_int(request, "login"))
    # The pump keys open trades by login + group: a wrong group finds nothing, like an unknown login.
    if index is None or ds.mt4_user_group(index).name != request.match_info["group"]:
        return await send_rows(request, [])
    return await send_rows(request, (ds.mt4_open_trade(j) for j in ds.mt4_open_trade_indexes(index)))


@routes.get(PREFIX + "/TradeRecordsRequest")
async def trade_records(request: web.Request) -> web.StreamResponse:
    _, ds = mt4(request)
    trades = (ds.mt4_trade_by_ticket(ticket) for ticket in dict.fromkeys(query_ints(request, "orders")))
    return await send_rows(request, (t for t in trades if t is not None))


# --------------------------------------------------------------------------- history


def _closed_rows(ds: Dataset, user_indexes: list[int], start: int, stop: int) -> list[Row]:
    """Closed trades of the users within the closed-index window, ticket ascending."""
    indexes = sorted(i for u in user_indexes for i in ds.mt4_closed_trade_indexes(u, start, stop))
    return [ds.mt4_closed_trade(i) for i in indexes]


@routes.get(PREFIX + "/TradesUserHistory/{login}")
async def trades_user_history(request: web.Request) -> web.StreamResponse:
    _, ds = mt4(request)
    index = ds.mt4_user_index(path_int(request, "login"))
    from_ts = query_datetime(request, "fromTime")
    to_ts = query_datetime(request, "toTime")
    if index is None:
        return await send_rows(request, [])
    start = 0 if from_ts is None else ds.mt4_closed_index_at(from_ts)
    stop = ds.mt4_closed_count if to_ts is None else ds.mt4_closed_index_at(to_ts)
    return await send_rows(request, _closed_rows(ds, [index], start, stop))


@routes.get(PREFIX + "/ReportsRequest")
async def reports_request(request: web.Request) -> web.StreamResponse:
    """Closed trades of ``logins`` whose closeTime is in ``[from, to)``; all three are required."""
    _, ds = mt4(request)
    from_ts = query_datetime(request, "from")
    to_ts = query_datetime(request, "to")
    logins = query_ints(request, "logins")
    if from_ts is None or to_ts is None:
        raise EnvelopeError(VALIDATION, "Both 'from' and 'to' are required.")
    if not logins:
        raise EnvelopeError(VALIDATION, "'logins' must contain at least one login.")
    if from_ts > to_ts:
        raise EnvelopeError(VALIDATION, "'from' must not be after 'to'.")
    users = [i for i in (ds.mt4_user_index(login) for login in dict.fromkeys(logins)) if i is not None]
    start, stop = ds.mt4_closed_index_at(from_ts), ds.mt4_closed_index_at(to_ts)
    return await send_rows(request, _closed_rows(ds, users, start, stop))


# --------------------------------------------------------------------------- margins, prices, config


@routes.get(PREFIX + "/MarginsGet")
async def margins_get(request: web.Request) -> web.StreamResponse:
    _, ds = mt4(request)
    # Accounts with open trades, by login; owners of the first min(U, n_open) trade slots.
    n = min(ds.mt4_user_count, ds.mt4_open_count)
    users = sorted(ds.mt4_trade_owner(j) for j in range(n))
    levels = (ds.mt4_margin_level(u) for u in users)
    return await send_rows(request, (m for m in levels if m is not None))


@routes.get(PREFIX + "/MarginLevelGet/{login}")
async def margin_level_get(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    login = path_int(request, "login")
    level = ds.mt4_margin_level(_user_index(ds, login))
    if level is None:
        raise EnvelopeError(NOT_FOUND, f"No margin level for {login}: the account has no open trades.")
    return ok(level)


def _symbol(request: web.Request) -> str:
    name = request.match_info["symbol"]
    if name not in SYMBOL_BY_NAME:
        raise EnvelopeError(NOT_FOUND, f"Symbol '{name[:64]}' not found.")
    return name


@routes.get(PREFIX + "/TickInfoLast")
async def tick_info_last(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok([ds.tick_info(s.name) for s in SYMBOLS])


@routes.get(PREFIX + "/TickInfoLast/{symbol}")
async def tick_info_last_symbol(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok(ds.tick_info(_symbol(request)))


@routes.get(PREFIX + "/CfgRequestSymbol")
async def cfg_request_symbol(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok([ds.mt4_symbol_config(s) for s in SYMBOLS])


@routes.get(PREFIX + "/CfgRequestSymbol/{symbol}")
async def cfg_request_symbol_one(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok(ds.mt4_symbol_config(SYMBOL_BY_NAME[_symbol(request)]))


@routes.get(PREFIX + "/SymbolsGroupsGet")
async def symbols_groups_get(request: web.Request) -> web.Response:
    mt4(request)
    return ok([{"name": name, "description": description} for name, description in SYMBOL_GROUPS])


@routes.get(PREFIX + "/GroupsGet")
async def groups_get(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    return ok([ds.mt4_group(g) for g in MT4_GROUPS])
