"""Account-level endpoints (``/api/TradePlatforms``, bare JSON, no envelope) and trade-platform resolution."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.data import MANAGER_LOGIN
from airflow_provider_cplugin.emulator.envelope import (
    NOT_FOUND,
    VALIDATION,
    EnvelopeError,
    invalid_value,
    json_response,
)
from airflow_provider_cplugin.emulator.state import get_state

ORGANIZATION_ID = "5d1f0c3e-2b4a-4e6f-8a9b-7c6d5e4f3a2b"
ORGANIZATION_NAME = "CPlugin Emulator Org"
# Fixed creation time: platform metadata must not move between runs.
CREATED_TS = 1_704_067_200  # 2024-01-01T00:00:00Z


def trade_platforms(request: web.Request) -> list[dict[str, Any]]:
    state = get_state(request)
    config = state.config
    created = state.dataset.iso(CREATED_TS)
    organization = {"id": ORGANIZATION_ID, "name": ORGANIZATION_NAME, "created": created}
    return [
        {
            "id": platform_id,
            "name": f"Emulator {kind}",
            "type": kind,
            "login": MANAGER_LOGIN,
            "organizationId": ORGANIZATION_ID,
            "organization": organization,
            "created": created,
        }
        for platform_id, kind in (
            (config.mt4_trade_platform, "MT4"),
            (config.mt5_trade_platform, "MT5"),
        )
    ]


def platform_kind(request: web.Request, platform_id: str) -> str | None:
    """``MT4``/``MT5`` for a known platform GUID (any case), None otherwise."""
    config = get_state(request).config
    wanted = platform_id.lower()
    if wanted == config.mt4_trade_platform.lower():
        return "MT4"
    if wanted == config.mt5_trade_platform.lower():
        return "MT5"
    return None


def require_platform(request: web.Request, kind: str) -> str:
    """Validate ``{tradePlatform}`` of a v2 path.

    Malformed GUID -> Validation (model binding); unknown GUID -> NotFound; a platform of the other kind (an MT5
    GUID on an MT4 path) -> Validation: the platform exists, the request is what is wrong.
    """
    raw = request.match_info["tradePlatform"]
    try:
        uuid.UUID(raw)
    except ValueError:
        raise invalid_value("tradePlatform", raw) from None
    actual = platform_kind(request, raw)
    if actual is None:
        raise EnvelopeError(NOT_FOUND, f"Trade platform '{raw}' not found.")
    if actual != kind:
        raise EnvelopeError(VALIDATION, f"Trade platform '{raw}' is {actual}; this endpoint requires {kind}.")
    return raw


async def list_platforms(request: web.Request) -> web.Response:
    return json_response(trade_platforms(request))


async def ping(request: web.Request) -> web.Response:
    # Shape of the real answer is unverified (reference §6.1); a bare JSON `true` for a reachable platform.
    if platform_kind(request, request.match_info["id"]) is None:
        return json_response({"title": "Not Found", "status": 404}, status=404)
    return json_response(True)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/TradePlatforms", list_platforms)
    app.router.add_get("/api/TradePlatforms/{id}/Ping", ping)
