"""Constants and helpers shared by the hook tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from airflow_provider_cplugin.emulator.process import EmulatorProcess

API = "https://api.example.test"
AUTH = "https://auth.example.test"
TOKEN_URL = AUTH + "/connect/token"
TP = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
SECRET = "s3cret-client-value"
TOKEN = "tok-abcdef-0123456789"
SERVER_TIME_ROUTE = "GET /api/v2/MT4/{tradePlatform}/ServerTime"


def conn_dict(**extra: Any) -> dict[str, Any]:
    """An Airflow JSON connection for the requests-mock API (extras overridable)."""
    extras: dict[str, Any] = {"env": "custom", "auth_url": AUTH, "trade_platform": TP, "platform_type": "MT4"}
    extras.update(extra)
    return {"conn_type": "cplugin", "host": API, "login": "client-1", "password": SECRET, "extra": extras}


def envelope(data: Any, *, activity: str = "a" * 32, paging: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"activityId": activity}
    if paging is not None:
        meta["paging"] = paging
    return {"data": data, "error": None, "meta": meta}


def v2(method: str) -> str:
    return f"{API}/api/v2/MT4/{TP}/{method}"


def counters(emu: EmulatorProcess) -> dict[str, int]:
    """Emulator counters the tests compare before/after."""
    stats = emu.stats()
    return {
        "token": stats["token_requests"],
        "discovery": stats["requests"].get("GET /.well-known/openid-configuration", 0),
        "unauthorized": stats["unauthorized"],
        "time": stats["requests"].get(SERVER_TIME_ROUTE, 0),
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}
