"""The conditions the sensors wait for, as small pure pieces shared by ``poke`` (sync) and the trigger (async).

A condition knows which API path to read and how to judge the answer; the sync sensor and the async trigger only
differ in how they fetch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginError

ConditionName = Literal["platform_reachable", "server_time_after"]

# Codes meaning "the platform is not there right now" (worth waiting for), not a broken request: envelope codes,
# plus the hook's own "Transport" (network failure after the last retry) and "Timeout" (deadline passed).
NOT_READY_CODES = frozenset({"NoConnect", "Timeout", "Busy", "Internal", "Transport"})

# Where the platform tells its time zone, and the unit of ``timeZone`` there (reference §6.2/§6.3, SDK types):
# MT4Common.timeZone is hours from UTC (DST-adjusted), MT5Time.timeZone minutes from GMT.
ZONE_METHODS: dict[str, tuple[str, timedelta, str]] = {
    "MT4": ("ManagerCommon", timedelta(hours=1), "hours"),
    "MT5": ("TimeGet", timedelta(minutes=1), "minutes"),
}
_LARGEST_OFFSET = timedelta(hours=14)


@dataclass(frozen=True)
class Verdict:
    met: bool
    detail: str


def v2_path(platform_type: str, trade_platform: str, method: str) -> str:
    return f"/api/v2/{platform_type}/{trade_platform}/{method}"


@dataclass(frozen=True)
class Condition:
    """``platform_reachable``: the trade platform answers ``Ping``.
    ``server_time_after``: the platform's clock has reached ``target`` (history up to it is complete).

    ``ServerTime`` may come without an offset, in server-local time (the reference leaves the format unverified).
    Read as UTC it would be hours ahead on a UTC+N server and fire early, so such a value is read in the
    platform's own zone: ask :meth:`needs_zone`, fetch :meth:`zone_path` and pass its answer to :meth:`judge`.
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

    def needs_zone(self, data: Any) -> bool:
        """Whether judging ``data`` (the answer of :meth:`path`) needs the platform's time zone."""
        return self.name == "server_time_after" and _parse_server_time(data).tzinfo is None

    def zone_path(self) -> str:
        method, _, _ = self._zone_method()
        return v2_path(self.platform_type, self.trade_platform, method)

    def judge(self, data: Any, zone: Any = None) -> Verdict:
        """``zone``: the answer of :meth:`zone_path`, needed when :meth:`needs_zone` says so."""
        if self.name == "platform_reachable":
            if data is False:
                return Verdict(False, "ping answered false")
            return Verdict(True, f"trade platform {self.trade_platform} answered ping")
        if self.target is None:
            raise ValueError("server_time_after needs a target")
        server_now = _parse_server_time(data)
        if server_now.tzinfo is None:
            if zone is None:
                raise ValueError("ServerTime has no offset: judge() needs the platform's time zone")
            server_now = server_now.replace(tzinfo=timezone(self.zone_offset(zone)))
        server_now = server_now.astimezone(UTC)
        target = _parse_target(self.target)
        if server_now >= target:
            return Verdict(True, f"server time {server_now.isoformat()} >= {target.isoformat()}")
        return Verdict(False, f"server time {server_now.isoformat()} < {target.isoformat()}")

    def zone_offset(self, zone: Any) -> timedelta:
        """The platform's UTC offset from a ``ManagerCommon`` (MT4) / ``TimeGet`` (MT5) answer."""
        method, unit, unit_name = self._zone_method()
        value = zone.get("timeZone") if isinstance(zone, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value * unit) > _LARGEST_OFFSET:
            raise CPluginError(
                f"{method} of trade platform {self.trade_platform}: timeZone {value!r} is not a UTC offset in "
                f"{unit_name}; cannot read its offset-less ServerTime"
            )
        return value * unit

    def _zone_method(self) -> tuple[str, timedelta, str]:
        try:
            return ZONE_METHODS[self.platform_type.upper()]
        except KeyError:
            raise CPluginError(f"no time zone method for platform type {self.platform_type!r}") from None

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


def _parse_server_time(data: Any) -> datetime:
    """ServerTime as sent: aware when it carries an offset, naive (server-local) when not."""
    if isinstance(data, str):
        try:
            # fromisoformat takes "Z", offsets and .NET's 7 fractional digits (Python >= 3.11).
            return datetime.fromisoformat(data)
        except ValueError:
            pass
    raise CPluginError(f"ServerTime answered {data!r}, not an ISO-8601 datetime")


def _parse_target(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    # Targets are ours (UTC, from the data interval); a naive override is taken as UTC.
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
