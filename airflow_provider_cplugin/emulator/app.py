"""``create_app(config)``: the emulator as one aiohttp application (identity server + REST + hubs)."""

from __future__ import annotations

import importlib
import logging

from aiohttp import web

from airflow_provider_cplugin.emulator import auth, control, rest_mt4, rest_mt4_sync, rest_mt5, rest_platforms
from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.envelope import envelope_middleware
from airflow_provider_cplugin.emulator.middleware import (
    case_insensitive_routing_middleware,
    fault_middleware,
    idempotency_middleware,
    stats_middleware,
    unknown_route_middleware,
)
from airflow_provider_cplugin.emulator.state import STATE_KEY, EmulatorState

HUBS_MODULE = "airflow_provider_cplugin.emulator.hubs"
log = logging.getLogger(__name__)


def _install_hubs(app: web.Application) -> None:
    """Mount the SignalR hubs when the realtime package provides ``install_hubs(app)``.

    The hubs are developed separately: a missing package (or one without ``install_hubs`` yet) is skipped,
    but an error raised while importing it propagates instead of silently disabling the hubs.
    """
    try:
        hubs = importlib.import_module(HUBS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == HUBS_MODULE:
            return
        raise
    install = getattr(hubs, "install_hubs", None)
    if install is None:
        log.warning("%s has no install_hubs(app); realtime hubs are not mounted", HUBS_MODULE)
        return
    install(app)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(
        middlewares=[
            case_insensitive_routing_middleware,
            stats_middleware,
            fault_middleware,
            auth.bearer_middleware,
            idempotency_middleware,
            envelope_middleware,
            unknown_route_middleware,
        ],
        client_max_size=1024**2,
    )
    app[STATE_KEY] = EmulatorState.create(config)
    auth.add_routes(app)
    rest_platforms.add_routes(app)
    app.router.add_routes(rest_mt4.routes)
    app.router.add_routes(rest_mt4_sync.routes)
    app.router.add_routes(rest_mt5.routes)
    control.add_routes(app)
    _install_hubs(app)
    return app
