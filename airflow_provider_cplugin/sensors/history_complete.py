"""Sensor: the trade platform's clock is past the end of the data interval, so its history is complete."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.sensors.base import BaseConditionSensor
from airflow_provider_cplugin.sensors.conditions import Condition


class HistoryCompleteSensor(BaseConditionSensor):
    """Succeeds once the platform's ``ServerTime`` is at or past ``data_interval_end + settle``.

    Gate an incremental history load on it, so a run never reads an interval the server is still writing to
    (the server clock, not the Airflow worker's, decides). A ``ServerTime`` without offset is server-local time and
    is read in the platform's zone (MT4 ``ManagerCommon.timeZone``, MT5 ``TimeGet.timeZone``), never as UTC, so a
    server east of UTC cannot make the sensor fire early.

    :param settle: extra wait after the interval end (late trade closes, clock skew).
    :param target: override of the moment to wait for (templated ISO string).
    """

    template_fields: Sequence[str] = (*BaseConditionSensor.template_fields, "target")

    def __init__(self, *, settle: timedelta = timedelta(0), target: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settle = settle
        self.target = target

    def condition(self, context: Context) -> Condition:
        trade_platform, platform_type = self.resolved_platform()
        if self.target:
            target = self.target
        else:
            end = context.get("data_interval_end")
            if end is None:
                raise CPluginConfigError("target", "the run has no data interval; pass target (an ISO instant)")
            target = pendulum.instance(end + self.settle).in_timezone("UTC").isoformat()
        return Condition("server_time_after", trade_platform, platform_type, target)
