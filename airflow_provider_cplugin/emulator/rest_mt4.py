"""MT4 v2 REST surface: ``/api/v2/MT4/{tradePlatform}/...`` (reads used by data pipelines)."""

from __future__ import annotations

import time

from aiohttp import web

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE, Dataset, iso
from airflow_provider_cplugin.emulator.envelope import (
    NOT_FOUND,
    VALIDATION,
    EnvelopeError,
    Page,
    ok,
    query_cursor,
    query_limit,
    send_rows,
)
from airflow_provider_cplugin.emulator.rest_platforms import require_platform
from airflow_provider_cplugin.emulator.state import EmulatorState, get_state

PREFIX = "/api/v2/MT4/{tradePlatform}"
routes = web.RouteTableDef()


def _mt4(request: web.Request) -> tuple[EmulatorState, Dataset]:
    require_platform(request, "MT4")
    state = get_state(request)
    return state, state.dataset


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    try:
        return int(raw)
    except ValueError:
        raise EnvelopeError(VALIDATION, f"The value '{raw[:64]}' is not valid for {name}.") from None


def _user_index(ds: Dataset, login: int) -> int:
    index = ds.mt4_user_index(login)
    if index is None:
        raise EnvelopeError(NOT_FOUND, f"User {login} not found.")
    return index


@routes.get(PREFIX + "/ServerTime")
async def server_time(request: web.Request) -> web.Response:
    _mt4(request)
    return ok(iso(int(time.time())))


@routes.get(PREFIX + "/UserRecordGet/{login}")
@routes.get(PREFIX + "/UserRecordRequest/{login}")
async def user_record(request: web.Request) -> web.Response:
    _, ds = _mt4(request)
    return ok(ds.mt4_user(_user_index(ds, path_int(request, "login"))))


@routes.get(PREFIX + "/UsersRequest")
async def users_request(request: web.Request) -> web.StreamResponse:
    state, ds = _mt4(request)
    limit = query_limit(request, state.config.max_page_limit)
    after = query_cursor(request)
    start = 0 if after is None else max(after - MT4_LOGIN_BASE + 1, 0)
    logins = range(MT4_LOGIN_BASE + start, MT4_LOGIN_BASE + max(ds.mt4_user_count, start))
    return await send_rows(request, Page(logins, limit, lambda login: ds.mt4_user(login - MT4_LOGIN_BASE)))
