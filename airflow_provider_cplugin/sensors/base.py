"""Base of the CPlugin sensors: one :class:`Condition`, poked in ``poke``/``reschedule`` mode or deferred."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.platforms import resolve_platform
from airflow_provider_cplugin.results import ConditionEvent
from airflow_provider_cplugin.sensors.conditions import Condition
from airflow_provider_cplugin.triggers.condition import ConditionTrigger


class BaseConditionSensor(BaseSensorOperator):
    """Waits for a condition on a trade platform.

    :param deferrable: free the worker slot while waiting (the triggerer polls with the async hook); defaults to
        Airflow's ``[operators] default_deferrable``. ``mode="reschedule"`` is the other slot-free option.
    """

    template_fields: Sequence[str] = ("trade_platform", "platform_type")

    def __init__(
        self,
        *,
        cplugin_conn_id: str = CPluginWebApiHook.default_conn_name,
        trade_platform: str | None = None,
        platform_type: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.platform_type = platform_type
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    def resolved_platform(self) -> tuple[str, str]:
        platform = resolve_platform(self.hook, self.trade_platform, self.platform_type)
        return platform.trade_platform, platform.platform_type

    def condition(self, context: Context) -> Condition:
        raise NotImplementedError

    def poke(self, context: Context) -> bool:
        condition = self.condition(context)
        try:
            data = self.hook.get(condition.path())
            zone = self.hook.get(condition.zone_path()) if condition.needs_zone(data) else None
            verdict = condition.judge(data, zone)
        except CPluginApiError as err:
            verdict = condition.judge_error(err)
        self.log.info("%s: %s", condition.name, verdict.detail)
        return verdict.met

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        condition = self.condition(context)
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.defer(
            trigger=ConditionTrigger(
                cplugin_conn_id=self.cplugin_conn_id,
                condition=condition.serialize(),
                poke_interval=float(
                    self.poke_interval.total_seconds()
                    if isinstance(self.poke_interval, timedelta)
                    else self.poke_interval
                ),
                deadline=time.time() + timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: ConditionEvent) -> None:
        status = event.get("status")
        if status == "success":
            self.log.info("Condition met: %s", event.get("message"))
            return
        if status == "timeout" and self.soft_fail:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"Timed out waiting: {event.get('message')}")
        if status == "timeout":
            # Like a poking sensor's timeout: fails the task without retries (another try would wait again).
            raise AirflowSensorTimeout(f"{self.task_id}: timed out: {event.get('message')}")
        raise AirflowException(f"{self.task_id}: {status}: {event.get('message')}")
