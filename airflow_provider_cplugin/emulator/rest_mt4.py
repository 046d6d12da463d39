"""MT4 v2 REST surface: ``/api/v2/MT4/{tradePlatform}/...`` (the reads a data pipeline uses).

Paged endpoints (``UsersRequest``, ``OnlineGet``/``OnlineRequest``, ``TradesGet``, ``TradesRequest``) go through
:class:`Page`; batch reads silently omit unknown keys; single-record reads answer a NotFound envelope.
"""

from __future__ import annotations

import time

from aiohttp import web

from airflow_provider_cplugin.emulator.data import (
    CHART_PERIODS,
    DAY,
    MT4_GROUP_BY_NAME,
    MT4_GROUPS,
    MT4_LOGIN_BASE,
    SYMBOL_BY_NAME,
    SYMBOL_GROUPS,
    SYMBOLS,
    Dataset,
    Row,
)
from airflow_provider_cplugin.emulator.envelope import (
    MT4_ERROR,
    NO_CONNECT,
    NOT_FOUND,
    VALIDATION,
    EnvelopeError,
    Page,
    index_after,
    invalid_value,
    ok,
    path_int,
    query_cursor,
    query_datetime,
    query_int,
    query_ints,
    query_limit,
    query_str,
    send_rows,
)
from airflow_provider_cplugin.emulator.rest_platforms import require_platform
from airflow_provider_cplugin.emulator.state import EmulatorState, SyncSession, get_state

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
        raise EnvelopeError(VALIDATION, "'logins' must contain at least one login.", field="logins")
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


# --------------------------------------------------------------------------- datasets: groups, daily, prices


@routes.get(PREFIX + "/GroupsRequest")
async def groups_request(request: web.Request) -> web.StreamResponse:
    """Live, cursor-paged by group name (ordinal). The cursor is opaque: here base64 of the name's sort index."""
    state, ds = mt4(request)
    limit = query_limit(request, state.config.max_page_limit)
    groups = ds.mt4_groups_sorted()
    start = index_after(query_cursor(request), 0)
    return await send_rows(request, Page(range(start, len(groups)), limit, lambda k: ds.mt4_group(groups[k])))


@routes.get(PREFIX + "/GroupRecordGet/{group}")
async def group_record_get(request: web.Request) -> web.Response:
    _, ds = mt4(request)
    group = MT4_GROUP_BY_NAME.get(request.match_info["group"])  # exact, case-sensitive
    if group is None:
        raise EnvelopeError(NOT_FOUND, f"Group '{request.match_info['group'][:64]}' not found.")
    return ok(ds.mt4_group(group))


def _daily_window(request: web.Request, ds: Dataset) -> tuple[list[int], list[int]]:
    """(user indexes, server-local days) of a DailyReportsRequest: ``from``/``to`` are the server's wall clock
    (ctm is local time), both inclusive like the Manager API's time range; ``logins`` non-empty."""
    from_wall = query_datetime(request, "from")
    to_wall = query_datetime(request, "to")
    logins = query_ints(request, "logins")
    if from_wall is None or to_wall is None:
        raise EnvelopeError(VALIDATION, "Both 'from' and 'to' are required.")
    if not logins:
        raise EnvelopeError(VALIDATION, "'logins' must contain at least one login.", field="logins")
    if from_wall > to_wall:
        raise EnvelopeError(VALIDATION, "'from' must not be after 'to'.")
    days = [d for d in ds.mt4_daily_days() if from_wall <= d * DAY <= to_wall]
    users = [i for i in (ds.mt4_user_index(login) for login in dict.fromkeys(logins)) if i is not None]
    return sorted(users), days


@routes.get(PREFIX + "/DailyReportsRequest")
async def daily_reports_request(request: web.Request) -> web.StreamResponse:
    """Flat MT4DailyReport[]: by login, then day; unknown logins are omitted."""
    _, ds = mt4(request)
    users, days = _daily_window(request, ds)
    return await send_rows(request, (r for u in users for r in ds.mt4_daily_reports(u, days)))


@routes.get(PREFIX + "/DailyReportsRequestEx")
async def daily_reports_request_ex(request: web.Request) -> web.Response:
    """The same rows grouped by login: ``{"<login>": MT4DailyReport[]}`` (logins without a report omitted)."""
    _, ds = mt4(request)
    users, days = _daily_window(request, ds)
    grouped = {str(ds.mt4_login(u)): list(ds.mt4_daily_reports(u, days)) for u in users}
    return ok({login: rows for login, rows in grouped.items() if rows})


DAILY_SYNC = "daily"


@routes.post(PREFIX + "/DailySyncStart")
async def daily_sync_start(request: web.Request) -> web.Response:
    """Reserve the daily reports "modified" at/after ``timestamp`` (server-local int32 seconds; 0 = all): a
    report is written when its day ends, so those of the days ending at/after it. A second start replaces the
    first."""
    state, _ = mt4(request)
    timestamp = query_int(request, "timestamp", 0)
    if not 0 <= timestamp <= 2**31 - 1:
        raise EnvelopeError(VALIDATION, "timestamp must be an int32 unix time (server-local).", field="timestamp")
    since = timestamp - state.config.server_tz_offset_hours * 3600 if timestamp else -(2**62)
    state.sync_sessions[(request.match_info["tradePlatform"].lower(), DAILY_SYNC)] = SyncSession(since)
    return ok(True)


@routes.post(PREFIX + "/DailySyncRead")
async def daily_sync_read(request: web.Request) -> web.StreamResponse:
    """Every reserved report (by login, then day) in one answer; the session is dropped by the read, so a read
    without a start (or a second read) is the non-Ok manager answer the reference allows."""
    state, ds = mt4(request)
    session = state.sync_sessions.pop((request.match_info["tradePlatform"].lower(), DAILY_SYNC), None)
    if session is None:
        raise EnvelopeError(MT4_ERROR, "No daily sync session: call DailySyncStart first.", "Error")
    tz = ds.server_tz_seconds
    days = [d for d in ds.mt4_daily_days() if (d + 1) * DAY - tz >= session.since_utc]
    return await send_rows(request, (r for u in range(ds.mt4_user_count) for r in ds.mt4_daily_reports(u, days)))


def _time_window(request: web.Request) -> tuple[int, int]:
    start, end = query_datetime(request, "start"), query_datetime(request, "end")
    if start is None or end is None:
        raise EnvelopeError(VALIDATION, "Both 'start' and 'end' are required.")
    if start > end:
        raise EnvelopeError(VALIDATION, "'start' must not be after 'end'.")
    return start, end


TICK_FLAGS = ("All", "Normal", "Raw")


@routes.get(PREFIX + "/TicksRequest/{symbol}")
async def ticks_request(request: web.Request) -> web.StreamResponse:
    """MT4TickRecord[] with ``start <= time <= end`` (UTC), oldest first; ``flags`` All (default)/Normal/Raw."""
    _, ds = mt4(request)
    symbol = _symbol(request)
    start, end = _time_window(request)
    flags = query_str(request, "flags") or "All"
    if flags not in TICK_FLAGS:
        raise invalid_value("flags", flags)
    ticks = ds.mt4_ticks(symbol, start, end)
    return await send_rows(request, (t for t in ticks if flags == "All" or t["flags"] == flags))


CHART_MODES = ("RangeIn", "RangeOut", "RangeLast", "RangeInExcludeOutOfRage")


@routes.get(PREFIX + "/ChartRequest/{symbol}")
async def chart_request(request: web.Request) -> web.StreamResponse:
    """MT4ChartBar[] (UTC bar open times, oldest first). Modes emulated: ``RangeIn`` = bars opening in
    ``[start, end]``; ``RangeInExcludeOutOfRage`` (default) = bars wholly inside it (open >= start and close <=
    end); ``RangeLast`` = the last bar opening at or before ``end``. ``RangeOut`` is not emulated."""
    _, ds = mt4(request)
    symbol = _symbol(request)
    start, end = _time_window(request)
    period = query_str(request, "period") or "H1"
    mode = query_str(request, "mode") or "RangeInExcludeOutOfRage"
    if period not in CHART_PERIODS:
        raise invalid_value("period", period)
    if mode not in CHART_MODES or mode == "RangeOut":
        raise EnvelopeError(VALIDATION, f"The value '{mode[:32]}' is not valid for mode (emulator).", field="mode")
    if mode == "RangeLast":
        times = list(ds.chart_bar_times(period, ds.history_start, end))[-1:]
    else:
        times = [(t, n) for t, n in ds.chart_bar_times(period, start, end) if mode == "RangeIn" or n <= end]
    return await send_rows(request, (ds.mt4_chart_bar(symbol, period, t, n) for t, n in times))
