"""Polling trigger behind the deferrable sensors: evaluates a :class:`Condition` with the async hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.sensors.conditions import Condition


class CPluginConditionTrigger(BaseTrigger):
    """Polls until the condition is met, the timeout passes, or a non-retryable error occurs.

    Serialized kwargs carry the connection id and the condition's arguments, never a secret or token: the
    triggerer reads the connection itself.
    """

    def __init__(
        self,
        cplugin_conn_id: str,
        condition: dict[str, Any],
        poke_interval: float = 30.0,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.cplugin_conn_id = cplugin_conn_id
        self.condition = condition
        self.poke_interval = poke_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cplugin_conn_id": self.cplugin_conn_id,
                "condition": self.condition,
                "poke_interval": self.poke_interval,
                "timeout": self.timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        condition = Condition(**self.condition)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        hook = CPluginWebApiAsyncHook(cplugin_conn_id=self.cplugin_conn_id)
        try:
            while True:
                try:
                    verdict = condition.judge(await hook.get(condition.path()))
                except CPluginApiError as err:
                    try:
                        verdict = condition.judge_error(err)
                    except CPluginError:
                        yield TriggerEvent({"status": "error", "message": str(err), "condition": self.condition})
                        return
                except CPluginError as err:
                    yield TriggerEvent({"status": "error", "message": str(err), "condition": self.condition})
                    return
                self.log.info("%s: %s", condition.name, verdict.detail)
                if verdict.met:
                    yield TriggerEvent({"status": "success", "message": verdict.detail, "condition": self.condition})
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    yield TriggerEvent({"status": "timeout", "message": verdict.detail, "condition": self.condition})
                    return
                await asyncio.sleep(self.poke_interval)
        finally:
            await hook.close()
