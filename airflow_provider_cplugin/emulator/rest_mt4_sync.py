"""MT4 bulk reads: ``*SyncStart``/``*SyncRead`` sessions and ``*Snapshot``.

``timestamp`` of a sync start is int32 unix seconds in **server-local** time (MT4Common.timeZone hours ahead of
UTC), not UTC. A session is server-side state per trade platform: the most recent start wins, and each read
drains the next ``limit`` rows of it until it returns ``[]``.

* Trades "modified at/after" the start are closed trades with closeTime >= since followed by open trades with
  openTime >= since - ticket ascending, found by bisection because both times are monotonic in the index.
* Users carry no modification time on the wire; ``lastDate`` stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain, islice

from aiohttp import web

from airflow_provider_cplugin.emulator.data import Dataset, Row
from airflow_provider_cplugin.emulator.envelope import (
    MT4_ERROR,
    VALIDATION,
    EnvelopeError,
    ok,
    query_int,
    send_rows,
)
from airflow_provider_cplugin.emulator.rest_mt4 import PREFIX, mt4
from airflow_provider_cplugin.emulator.state import EmulatorState, SyncSession

routes = web.RouteTableDef()

BULK_LIMIT_MAX = 1_000_000
BULK_LIMIT_DEFAULT = 100_000
INT32_MAX = 2**31 - 1


def bulk_limit(request: web.Request) -> int:
    limit = query_int(request, "limit", BULK_LIMIT_DEFAULT)
    if not 1 <= limit <= BULK_LIMIT_MAX:
        raise EnvelopeError(VALIDATION, f"limit must be between 1 and {BULK_LIMIT_MAX}.", field="limit")
    return limit


def server_local_to_utc(state: EmulatorState, timestamp: int) -> int:
    return timestamp - state.config.server_tz_offset_hours * 3600


def _start(request: web.Request, kind: str) -> web.Response:
    state, _ = mt4(request)
    # ASP.NET binds a missing int to 0, which is also "everything".
    timestamp = query_int(request, "timestamp", 0)
    if not 0 <= timestamp <= INT32_MAX:
        raise EnvelopeError(VALIDATION, "timestamp must be an int32 unix time (server-local).", field="timestamp")
    since = server_local_to_utc(state, timestamp) if timestamp else -(2**62)
    state.sync_sessions[(request.match_info["tradePlatform"].lower(), kind)] = SyncSession(since)
    return ok(True)


def _session(request: web.Request, state: EmulatorState, kind: str) -> SyncSession:
    session = state.sync_sessions.get((request.match_info["tradePlatform"].lower(), kind))
    if session is None:
        name = "TradesSyncStart" if kind == "trades" else "UsersSyncStart"
        raise EnvelopeError(MT4_ERROR, f"No sync session: call {name} first.", "Error")
    return session


def sync_trades(ds: Dataset, since: int, position: int, limit: int) -> tuple[int, Iterator[Row]]:
    """Rows ``[position, position + limit)`` of the trades-modified-since-``since`` sequence (closed trades, then
    open ones): their count, worked out arithmetically, and a lazy iterator (nothing held per request)."""
    closed_first = ds.mt4_closed_index_at(since)
    open_first = ds.mt4_open_index_at(since)
    n_closed = ds.mt4_closed_count - closed_first
    stop = min(position + limit, n_closed + ds.mt4_open_count - open_first)
    closed = range(closed_first + position, closed_first + min(stop, n_closed))
    opened = range(open_first + max(position, n_closed) - n_closed, open_first + stop - n_closed)
    return max(stop - position, 0), chain(map(ds.mt4_closed_trade, closed), map(ds.mt4_open_trade, opened))


@routes.post(PREFIX + "/TradesSyncStart")
async def trades_sync_start(request: web.Request) -> web.Response:
    return _start(request, "trades")


@routes.get(PREFIX + "/TradesSyncRead")
async def trades_sync_read(request: web.Request) -> web.StreamResponse:
    state, ds = mt4(request)
    limit = bulk_limit(request)
    session = _session(request, state, "trades")
    count, rows = sync_trades(ds, session.since_utc, session.position, limit)
    session.position += count
    return await send_rows(request, rows)


@routes.post(PREFIX + "/UsersSyncStart")
async def users_sync_start(request: web.Request) -> web.Response:
    return _start(request, "users")


@routes.get(PREFIX + "/UsersSyncRead")
async def users_sync_read(request: web.Request) -> web.StreamResponse:
    state, ds = mt4(request)
    limit = bulk_limit(request)
    session = _session(request, state, "users")
    # Here `position` is the next user index to examine (the filter makes counts useless as offsets).
    indexes = list(islice(ds.mt4_users_modified_since(session.since_utc, session.position), limit))
    session.position = indexes[-1] + 1 if indexes else ds.mt4_user_count
    return await send_rows(request, (ds.mt4_user(i) for i in indexes))


@routes.get(PREFIX + "/TradesSnapshot")
async def trades_snapshot(request: web.Request) -> web.StreamResponse:
    """All open and pending trades (up to ``limit``), ticket ascending."""
    _, ds = mt4(request)
    limit = bulk_limit(request)
    return await send_rows(request, (ds.mt4_open_trade(j) for j in range(min(limit, ds.mt4_open_count))))


@routes.get(PREFIX + "/UsersSnapshot")
async def users_snapshot(request: web.Request) -> web.StreamResponse:
    """All users (up to ``limit``), login ascending."""
    _, ds = mt4(request)
    limit = bulk_limit(request)
    return await send_rows(request, ds.mt4_users(0, limit))
