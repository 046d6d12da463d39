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
from airflow_provider_cplugin.realtime.sample_request import DEFAULT_FLUSH_INTERVAL, TRANSPORTS, SampleRequest
from airflow_provider_cplugin.results import HubSampleFailure

SAMPLER_MODULE = "airflow_provider_cplugin.realtime.sampler"


class HubSampleTrigger(BaseTrigger):
    """Samples hub events until the window ends (or ``max_events``) and yields **one** event with the landed
    batch paths, counts, gaps, rejects and what was received but not landed (never the events themselves).

    The arguments (and serialized kwargs) are the :class:`SampleRequest` fields, documented there: connection ids,
    stream names, the absolute window end and the landing location; the triggerer reads the secret from the
    connection itself. ``tune_gc`` is accepted and ignored: triggers serialized by versions that tuned the
    process's garbage collector are re-created without it. A trigger
    re-created after a triggerer restart continues the same window, batch numbering and connection count, and
    records the outage as a ``restart`` gap. A provider error (hub refused, auth, config) yields one
    ``{"status": "error", "error_type", "message"}`` event that fails the task on the worker (what landed stays,
    and a retry continues the run); any other exception propagates. Cancelling the trigger closes the hub
    connection and lands what was collected.
    """

    def __init__(
        self,
        *,
        cplugin_conn_id: str,
        trade_platform: str,
        platform_type: str,
        streams: list[dict[str, Any]],
        window_end: float,
        output_path: str,
        run_name: str,
        partition_date: str,
        max_events: int | None = None,
        batch_rows: int = SampleRequest.batch_rows,
        batch_bytes: int = SampleRequest.batch_bytes,
        transports: list[str] | None = None,
        reconnect_delays: list[float] | None = None,
        output_conn_id: str | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        sequences: str | None = None,
        tune_gc: bool | None = None,  # ignored: see the class docstring
    ) -> None:
        super().__init__()
        self.request = SampleRequest(
            cplugin_conn_id=cplugin_conn_id,
            trade_platform=trade_platform,
            platform_type=platform_type,
            streams=streams,
            window_end=window_end,
            output_path=output_path,
            run_name=run_name,
            partition_date=partition_date,
            max_events=max_events,
            batch_rows=batch_rows,
            batch_bytes=batch_bytes,
            transports=list(TRANSPORTS) if transports is None else transports,
            reconnect_delays=reconnect_delays,
            output_conn_id=output_conn_id,
            flush_interval=flush_interval,
            sequences=sequences,
        )

    @classmethod
    def from_request(cls, request: SampleRequest) -> HubSampleTrigger:
        return cls(**request.to_dict())

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
            failure: HubSampleFailure = {
                "status": "error", "error_type": type(err).__name__, "message": str(err),
                "run_name": self.request.run_name,
            }  # fmt: skip
            yield TriggerEvent(failure)
            return
        self.log.info(
            "Hub sample %s: %d events in %d batch file(s), %d gap(s), %d rejected",
            self.request.run_name, summary["total_events"], len(summary["files"]), len(summary["gaps"]),
            summary["rejects"]["total"],
        )  # fmt: skip
        yield TriggerEvent(summary)
