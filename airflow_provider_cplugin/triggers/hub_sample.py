"""Deferrable trigger that samples realtime hub streams into Parquet batches (see :mod:`..realtime.sampler`).

The triggerer imports this module and builds the trigger on its event loop, so it imports only the light
:mod:`..realtime.sample_request`; the sampler (pyarrow, aiohttp, hooks) is imported in a thread when it runs.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.realtime.sample_request import SampleRequest

SAMPLER_MODULE = "airflow_provider_cplugin.realtime.sampler"


class HubSampleTrigger(BaseTrigger):
    """Samples hub events until the window ends (or ``max_events``) and yields **one** event with the landed
    batch paths, counts, gaps, rejects and what was received but not landed (never the events themselves).

    Serialized kwargs are the :class:`SampleRequest` fields: connection ids, stream names, the absolute window
    end and the landing location; the triggerer reads the secret from the connection itself. A trigger
    re-created after a triggerer restart continues the same window, batch numbering and connection count, and
    records the outage as a ``restart`` gap. A provider error (hub refused, auth, config) yields one
    ``{"status": "error", "error_type", "message"}`` event that fails the task on the worker (what landed stays,
    and a retry continues the run); any other exception propagates. Cancelling the trigger closes the hub
    connection and lands what was collected.
    """

    def __init__(self, **request: Any) -> None:
        super().__init__()
        self.request = SampleRequest(**request)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self.request.to_dict()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        sampler = await asyncio.to_thread(importlib.import_module, SAMPLER_MODULE)
        try:
            summary = await sampler.HubSampler(self.request).run()
        except CPluginError as err:
            # An expected failure (hub refused, auth, config) becomes an error event, so the task fails on the
            # worker with the message in its own log; a bug (any other exception) propagates as it is.
            self.log.error("Hub sample %s failed: %s", self.request.run_name, err)
            yield TriggerEvent(
                {"status": "error", "error_type": type(err).__name__, "message": str(err),
                 "run_name": self.request.run_name}
            )  # fmt: skip
            return
        self.log.info(
            "Hub sample %s: %d events in %d batch file(s), %d gap(s), %d rejected",
            self.request.run_name, summary["total_events"], len(summary["files"]), len(summary["gaps"]),
            summary["rejects"]["total"],
        )  # fmt: skip
        yield TriggerEvent(summary)
