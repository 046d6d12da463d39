"""Sensor: the trade platform answers a ping."""

from __future__ import annotations

from airflow.sdk import Context

from airflow_provider_cplugin.sensors.base import BaseConditionSensor
from airflow_provider_cplugin.sensors.conditions import Condition


class PlatformReachableSensor(BaseConditionSensor):
    """Succeeds once ``GET /api/TradePlatforms/{id}/Ping`` answers (a ``NoConnect`` or 5xx answer means "not
    yet"; bad credentials or an unknown platform fail the task at once)."""

    def condition(self, context: Context) -> Condition:
        trade_platform, platform_type = self.resolved_platform()
        return Condition("platform_reachable", trade_platform, platform_type)
