"""Emulated SignalR hubs: MT4 v2 ``/hubs/mt4/v2``, MT5 v2 ``/hubs/mt5/v2``, legacy MT4 v1 ``/hubs/mt4/v1`` and a
test hub (path unverified). What matches ASP.NET Core, and how it is proven: ``docs/emulator.md``.

``install_hubs(app)`` mounts them on the emulator app (``create_app`` calls it): negotiate, WebSocket, Server-Sent
Events and Long Polling transports, the JSON hub protocol, synthetic feeds (:mod:`.feeds`), fault switches
(:mod:`.faults`) and the control routes ``/_emulator/hub-faults``, ``/_emulator/hub-config``, ``/_emulator/hub-stats``.
"""

from __future__ import annotations

from aiohttp import web

from airflow_provider_cplugin.emulator.hubs import control
from airflow_provider_cplugin.emulator.hubs.definitions import (
    HUBS,
    MT4_PATH,
    MT4_V1_PATH,
    MT5_PATH,
    TEST_EVENT,
    TEST_PATH,
)
from airflow_provider_cplugin.emulator.hubs.state import HUBS_KEY, HubsState, ensure_hubs, get_hubs
from airflow_provider_cplugin.emulator.hubs.transports import add_hub_routes

__all__ = [
    "HUBS_KEY",
    "MT4_PATH",
    "MT4_V1_PATH",
    "MT5_PATH",
    "TEST_EVENT",
    "TEST_PATH",
    "HubsState",
    "get_hubs",
    "install_hubs",
]


async def _close_connections(app: web.Application) -> None:
    # On shutdown, tell clients (allowReconnect) and stop pumps so no task outlives the app.
    for conn in list(get_hubs(app).connections.values()):
        conn.close("Server is shutting down.", True, reason="shutdown")


def install_hubs(app: web.Application) -> None:
    """Mount the hubs and their control routes; needs the emulator state already stored on ``app``."""
    ensure_hubs(app)
    for spec in HUBS:
        add_hub_routes(app, spec)
    control.add_routes(app)
    app.on_shutdown.append(_close_connections)
