"""Emulator-only control routes of the hubs (never part of the real API).

* ``GET|POST|DELETE /_emulator/hub-faults``: hub fault switches (format in :mod:`.faults`).
* ``GET|POST /_emulator/hub-config``: ``{"rates": {"ticks": 50000, ...}, "settings": {"keep_alive_s": 1, ...}}``;
  GET also returns each feed's clock (``rate``, ``base_ticks``, ``base_index``) and the data set's settings so
  clients can invert the event sequence (:func:`.feeds.sequencer`, :func:`.feeds.sample_sequences`).
* ``GET|DELETE /_emulator/hub-stats``: counters, recent stream invocations (items and index range per stream),
  live connections.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.hubs import faults as hub_faults
from airflow_provider_cplugin.emulator.hubs.state import get_hubs

PREFIX = "/_emulator"


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request) -> Any:
    text = await request.text()
    return json.loads(text) if text.strip() else {}


async def get_faults(request: web.Request) -> web.Response:
    rules = hub_faults.hub_rules(get_hubs(request).emulator.faults)
    return web.json_response({"rules": [hub_faults.spec_of(r) for r in rules]})


async def set_faults(request: web.Request) -> web.Response:
    """Body: ``{"rules": [...], "append": false}`` or a bare list of rules."""
    try:
        payload = await _json_body(request)
    except json.JSONDecodeError as exc:
        return _bad_request(f"body is not JSON: {exc}")
    append = False
    if isinstance(payload, dict):
        append = bool(payload.get("append", False))
        payload = payload.get("rules", [])
    if not isinstance(payload, list):
        return _bad_request("expected {'rules': [...]} or a list of hub faults")
    try:
        rules = [hub_faults.rule_from_spec(item) for item in payload]
    except ValueError as exc:
        return _bad_request(str(exc))
    store = get_hubs(request).emulator.faults
    hub_faults.replace_hub_rules(store, rules, append)
    return web.json_response({"rules": len(hub_faults.hub_rules(store))})


async def clear_faults(request: web.Request) -> web.Response:
    hub_faults.replace_hub_rules(get_hubs(request).emulator.faults, [], append=False)
    return web.json_response({"rules": 0})


def _config(request: web.Request) -> dict[str, Any]:
    hubs = get_hubs(request)
    dataset = asdict(hubs.emulator.config)
    for secret in ("client_id", "client_secret"):
        dataset.pop(secret, None)
    dataset["quirks"] = sorted(dataset["quirks"])  # JSON; EmulatorConfig takes any iterable back
    return {
        "settings": hubs.settings.to_dict(),
        "feeds": {name: clock.to_dict() for name, clock in hubs.feeds.clocks.items()},
        # What generates the data (seed, counts...): with the clocks, a client can rebuild every sequence.
        "dataset": dataset,
    }


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(_config(request))


async def set_config(request: web.Request) -> web.Response:
    try:
        payload = await _json_body(request)
    except json.JSONDecodeError as exc:
        return _bad_request(f"body is not JSON: {exc}")
    if not isinstance(payload, dict) or set(payload) - {"rates", "settings"}:
        return _bad_request("expected {'rates': {feed: events_per_s}, 'settings': {...}}")
    hubs = get_hubs(request)
    rates = payload.get("rates") or {}
    settings = payload.get("settings") or {}
    if not isinstance(rates, dict) or not isinstance(settings, dict):
        return _bad_request("'rates' and 'settings' must be objects")
    try:
        for name, rate in rates.items():
            if name not in hubs.feeds.clocks:
                raise ValueError(f"unknown feed {name!r}; known: {sorted(hubs.feeds.clocks)}")
            if not isinstance(rate, int | float) or isinstance(rate, bool):
                raise ValueError(f"rate of {name!r} must be a number")
        hubs.settings.update(settings)
        for name, rate in rates.items():
            hubs.feeds.set_rate(name, float(rate))
    except ValueError as exc:
        return _bad_request(str(exc))
    return web.json_response(_config(request))


async def get_stats(request: web.Request) -> web.Response:
    hubs = get_hubs(request)
    body = hubs.stats.to_dict()
    body["connections"] = [
        {
            "id": c.id,
            "hub": c.spec.path,
            "transport": c.transport,
            "handshake": c.handshake_done,
            "closed": c.closed,
            "messages_sent": c.messages_sent,
            "streams": len(c.streams),
            "faults": c.faults.names(),
        }
        for c in list(hubs.connections.values())
    ]
    return web.json_response(body)


async def reset_stats(request: web.Request) -> web.Response:
    get_hubs(request).stats.reset()
    return web.json_response({"reset": True})


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/hub-faults", get_faults)
    app.router.add_post(PREFIX + "/hub-faults", set_faults)
    app.router.add_delete(PREFIX + "/hub-faults", clear_faults)
    app.router.add_get(PREFIX + "/hub-config", get_config)
    app.router.add_post(PREFIX + "/hub-config", set_config)
    app.router.add_get(PREFIX + "/hub-stats", get_stats)
    app.router.add_delete(PREFIX + "/hub-stats", reset_stats)
