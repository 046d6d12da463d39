"""Emulator-only control endpoints under ``/_emulator/`` (never part of the real API, never used by hooks)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.envelope import json_response
from airflow_provider_cplugin.emulator.faults import FaultRule
from airflow_provider_cplugin.emulator.state import get_state

PREFIX = "/_emulator"


def _bad_request(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


async def stats(request: web.Request) -> web.Response:
    state = get_state(request)
    ds = state.dataset
    body: dict[str, Any] = state.stats.to_dict()
    body["tokens_active"] = state.tokens.active()
    body["faults"] = [rule.to_dict() for rule in state.faults.rules()]
    body["dataset"] = {
        "seed": state.config.seed,
        "anchor": ds.anchor,
        "mt4_users": ds.mt4_user_count,
        "mt4_closed_trades": ds.mt4_closed_count,
        "mt4_open_trades": ds.mt4_open_count,
        "mt5_users": ds.mt5_user_count,
        "mt5_positions": ds.mt5_position_count,
        "mt5_orders": ds.mt5_order_count,
        "mt5_deals": ds.mt5_deal_count,
    }
    return json_response(body)


async def get_faults(request: web.Request) -> web.Response:
    return json_response([rule.to_dict() for rule in get_state(request).faults.rules()])


async def set_faults(request: web.Request) -> web.Response:
    """Body: a list of rules (replaces the current ones) or ``{"rules": [...], "append": true}``."""
    try:
        payload = json.loads(await request.text())
    except json.JSONDecodeError as exc:
        return _bad_request(f"body is not JSON: {exc}")
    append = False
    if isinstance(payload, dict):
        append = bool(payload.get("append", False))
        payload = payload.get("rules")
    if not isinstance(payload, list):
        return _bad_request("expected a list of fault rules or {'rules': [...]}")
    try:
        rules = [FaultRule.from_dict(item) for item in payload]
    except ValueError as exc:
        return _bad_request(str(exc))
    faults = get_state(request).faults
    faults.set(rules, append=append)
    return json_response({"rules": len(faults.rules())})


async def reset(request: web.Request) -> web.Response:
    get_state(request).reset()
    return json_response({"reset": True})


async def revoke_tokens(request: web.Request) -> web.Response:
    return json_response({"revoked": get_state(request).tokens.revoke_all()})


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/stats", stats)
    app.router.add_get(PREFIX + "/faults", get_faults)
    app.router.add_post(PREFIX + "/faults", set_faults)
    app.router.add_post(PREFIX + "/reset", reset)
    app.router.add_post(PREFIX + "/revoke-tokens", revoke_tokens)
