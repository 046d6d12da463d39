"""Deferrable trigger that samples realtime hub streams into Parquet batches (see :mod:`..realtime.sampler`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.realtime.errors import HubError
from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest


class HubSampleTrigger(BaseTrigger):
    """Samples hub events until the window ends (or ``max_events``) and yields **one** event with the landed
    batch paths, counts and gaps (never the events themselves).

    Serialized kwargs are the :class:`SampleRequest` fields: a connection id, stream names, the absolute window
    end and the landing location; the triggerer reads the secret from the connection itself. A trigger
    re-created after a triggerer restart continues the same window and the same batch numbering. Cancelling the
    trigger (task cleared, timeout) closes the hub connection and lands what was already collected.
    """

    def __init__(self, **request: Any) -> None:
        super().__init__()
        self.request = SampleRequest(**request)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self.request.to_dict()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            summary = await HubSampler(self.request).run()
        except (CPluginError, HubError) as err:
            self.log.error("Hub sample %s failed: %s", self.request.run_name, err)
            yield TriggerEvent({"status": "error", "message": str(err), "run_name": self.request.run_name})
            return
        self.log.info(
            "Hub sample %s: %d events in %d batch file(s), %d gap(s)",
            self.request.run_name, summary["total_events"], len(summary["files"]), len(summary["gaps"]),
        )  # fmt: skip
        yield TriggerEvent(summary)
