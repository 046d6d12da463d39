"""The conditions the sensors wait for, as small pure pieces shared by ``poke`` (sync) and the trigger (async).

A condition knows which API path to read and how to judge the answer; the sync sensor and the async trigger only
differ in how they fetch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pendulum

from airflow_provider_cplugin.exceptions import CPluginApiError

ConditionName = Literal["platform_reachable", "server_time_after"]

# Codes meaning "the platform is not there right now" (worth waiting for), not a broken request: envelope codes,
# plus the hook's own "Transport" (network failure after the last retry) and "Timeout" (deadline passed).
NOT_READY_CODES = frozenset({"NoConnect", "Timeout", "Busy", "Internal", "Transport"})


@dataclass(frozen=True)
class Verdict:
    met: bool
    detail: str


def v2_path(platform_type: str, trade_platform: str, method: str) -> str:
    return f"/api/v2/{platform_type}/{trade_platform}/{method}"


@dataclass(frozen=True)
class Condition:
    """``platform_reachable``: the trade platform answers ``Ping``.
    ``server_time_after``: the platform's clock has passed ``target`` (history up to it is complete).
    """

    name: ConditionName
    trade_platform: str
    platform_type: str = "MT4"
    target: str | None = None
    """ISO datetime for ``server_time_after``."""

    def path(self) -> str:
        if self.name == "platform_reachable":
            return f"/api/TradePlatforms/{self.trade_platform}/Ping"
        return v2_path(self.platform_type, self.trade_platform, "ServerTime")

    def judge(self, data: Any) -> Verdict:
        if self.name == "platform_reachable":
            if data is False:
                return Verdict(False, "ping answered false")
            return Verdict(True, f"trade platform {self.trade_platform} answered ping")
        if self.target is None:
            raise ValueError("server_time_after needs a target")
        server_now = _parse(str(data))
        target = _parse(self.target)
        if server_now >= target:
            return Verdict(True, f"server time {server_now.isoformat()} >= {target.isoformat()}")
        return Verdict(False, f"server time {server_now.isoformat()} < {target.isoformat()}")

    def judge_error(self, err: CPluginApiError) -> Verdict:
        """A not-ready answer is a 'not yet'; anything else (auth, validation, not found) is raised."""
        if err.code in NOT_READY_CODES:
            return Verdict(False, f"{err.code}: {err.description} (activityId={err.activity_id})")
        raise err

    def serialize(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trade_platform": self.trade_platform,
            "platform_type": self.platform_type,
            "target": self.target,
        }


def _parse(text: str) -> datetime:
    parsed = pendulum.parse(text)
    if not isinstance(parsed, datetime):
        raise ValueError(f"not a datetime: {text!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=pendulum.UTC)
    return pendulum.instance(parsed).in_timezone("UTC")
