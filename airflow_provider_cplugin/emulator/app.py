"""``create_app(config)``: the emulator as one aiohttp application (identity server + REST + hubs)."""

from __future__ import annotations

from aiohttp import web

from airflow_provider_cplugin.emulator import auth, control, rest_mt4, rest_mt5, rest_platforms
from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.envelope import envelope_middleware
from airflow_provider_cplugin.emulator.middleware import fault_middleware, idempotency_middleware, stats_middleware
from airflow_provider_cplugin.emulator.state import STATE_KEY, EmulatorState

HUBS_MODULE = "airflow_provider_cplugin.emulator.hubs"


def _install_hubs(app: web.Application) -> None:
    """Mount the SignalR hubs when the realtime package is present (it is developed separately)."""
    try:
        from airflow_provider_cplugin.emulator.hubs import install_hubs  # type: ignore[attr-defined,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name == HUBS_MODULE:
            return
        raise  # a broken hubs package must not be silently skipped
    install_hubs(app)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    config = config or EmulatorConfig()
    app = web.Application(
        middlewares=[
            stats_middleware,
            fault_middleware,
            auth.bearer_middleware,
            idempotency_middleware,
            envelope_middleware,
        ],
        client_max_size=1024**2,
    )
    app[STATE_KEY] = EmulatorState.create(config)
    auth.add_routes(app)
    rest_platforms.add_routes(app)
    app.router.add_routes(rest_mt4.routes)
    app.router.add_routes(rest_mt5.routes)
    control.add_routes(app)
    _install_hubs(app)
    return app
