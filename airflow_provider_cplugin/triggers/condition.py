"""Polling trigger behind the deferrable sensors: evaluates a :class:`Condition` with the async hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.results import ConditionEvent
from airflow_provider_cplugin.sensors.conditions import Condition


class ConditionTrigger(BaseTrigger):
    """Polls until the condition is met, the timeout passes, or a non-retryable error occurs.

    Serialized kwargs carry the connection id and the condition's arguments, never a secret or token: the
    triggerer reads the connection itself.
    """

    def __init__(
        self,
        cplugin_conn_id: str,
        condition: dict[str, Any],
        poke_interval: float = 30.0,
        deadline: float | None = None,
    ) -> None:
        """:param deadline: Unix seconds after which the trigger reports ``timeout``. Absolute, so a trigger
        re-created after a triggerer restart keeps the sensor's time box instead of starting a new one."""
        super().__init__()
        self.cplugin_conn_id = cplugin_conn_id
        self.condition = condition
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cplugin_conn_id": self.cplugin_conn_id,
                "condition": self.condition,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    def _event(self, status: Literal["success", "timeout", "error"], message: str) -> ConditionEvent:
        return {"status": status, "message": message, "condition": self.condition}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        condition = Condition(**self.condition)
        hook = CPluginWebApiAsyncHook(cplugin_conn_id=self.cplugin_conn_id)
        try:
            while True:
                try:
                    try:
                        data = await hook.get(condition.path())
                        zone = await hook.get(condition.zone_path()) if condition.needs_zone(data) else None
                        verdict = condition.judge(data, zone)
                    except CPluginApiError as err:
                        verdict = condition.judge_error(err)  # re-raises what is not a "not yet"
                except CPluginError as err:
                    yield TriggerEvent(self._event("error", str(err)))
                    return
                self.log.info("%s: %s", condition.name, verdict.detail)
                if verdict.met:
                    yield TriggerEvent(self._event("success", verdict.detail))
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield TriggerEvent(self._event("timeout", verdict.detail))
                    return
                await asyncio.sleep(self.poke_interval)
        finally:
            await hook.close()


# Earlier versions' name: triggers deferred by them are stored (metadata DB) under this classpath and are re-created
# from it after an upgrade.
CPluginConditionTrigger = ConditionTrigger
