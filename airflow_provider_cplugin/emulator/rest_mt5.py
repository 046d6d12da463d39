"""MT5 v2 REST surface: ``/api/v2/MT5/{tradePlatform}/...`` (the small read surface of SDK 0.2.1)."""

from __future__ import annotations

import time

from aiohttp import web

from airflow_provider_cplugin.emulator.data import iso
from airflow_provider_cplugin.emulator.envelope import ok
from airflow_provider_cplugin.emulator.rest_platforms import require_platform

PREFIX = "/api/v2/MT5/{tradePlatform}"
routes = web.RouteTableDef()


@routes.get(PREFIX + "/ServerTime")
async def server_time(request: web.Request) -> web.Response:
    require_platform(request, "MT5")
    return ok(iso(int(time.time())))
