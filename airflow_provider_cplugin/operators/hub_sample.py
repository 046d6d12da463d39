"""Sample realtime hub streams for a window and land them as Parquet batches, deferring while it waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators.base_snapshot import entity_asset, run_date, run_key
from airflow_provider_cplugin.parquet.landing import run_file_name
from airflow_provider_cplugin.parquet.location import check_output_path
from airflow_provider_cplugin.realtime.sample_request import DEFAULT_FLUSH_INTERVAL, check_window, parse_streams
from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest, entity_for, validate_request
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger


class HubSampleOperator(BaseOperator):
    """Sample hub streams (``"StreamTicks:EURUSD"``, ``"StreamMarginCallUpdates"``...) for ``window`` seconds.

    With ``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``) the worker slot is freed
    while :class:`HubSampleTrigger` samples in the triggerer; otherwise the same sampler runs inline.
    Returns (XCom) the sample summary: batch files with rows, events per stream, gaps.

    :param streams: hub stream methods of the platform's hub, ``"Method"`` or ``"Method:arg"``.
    :param window: sampling window in seconds.
    :param max_events: stop earlier after this many events in total.
    :param batch_rows: rows per Parquet batch file; ``batch_bytes`` cuts earlier for wide events.
    :param flush_interval: seconds between time cuts: what is pending is landed at least that often, so a killed
        triggerer loses at most that much received data (default 10).
    :param output_conn_id: storage connection for ``output_path`` (S3, GCS...); None = the URL's defaults.
    :param sequences: ``"module:function"`` giving each stream a sequence function (counts missed events and
        drops duplicates; see ``docs/realtime.md``); None = missed counts are unknown.
    :param tune_gc: once per process before the first sample, ``gc.freeze()`` and a young-generation threshold of
        50,000 (see :mod:`airflow_provider_cplugin.realtime.sampler`); set False to leave the process's GC alone.
    """

    template_fields: Sequence[str] = ("trade_platform", "platform_type", "output_path", "streams", "window")
    ui_color = "#fdf0e2"

    def __init__(
        self,
        *,
        streams: Sequence[str | dict[str, Any]],
        window: float = 60.0,
        cplugin_conn_id: str = CPluginWebApiHook.default_conn_name,
        trade_platform: str | None = None,
        platform_type: str | None = None,
        output_path: str | None = None,
        max_events: int | None = None,
        batch_rows: int = 50_000,
        batch_bytes: int = 64 * 1024 * 1024,
        transports: Sequence[str] = ("WebSockets", "LongPolling"),
        tune_gc: bool = True,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        output_conn_id: str | None = None,
        sequences: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and platform_type and not _templated(platform_type, streams, output_path):
            # Known at parse time only when not templated: outlets cannot wait for rendering.
            entities = {entity_for(platform_type, s) for s in parse_streams(streams)}
            assets = [entity_asset(output_path, e) for e in sorted(entities, key=lambda e: e.name)]
            kwargs["outlets"] = [a for a in assets if a is not None]
        super().__init__(**kwargs)
        # A bare string stays one (and is refused by parse_streams): list() would split it into characters.
        self.streams: Any = streams if isinstance(streams, str) else list(streams)
        self.window = window
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.platform_type = platform_type
        self.output_path = output_path
        self.max_events = max_events
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.transports = list(transports)
        self.tune_gc = tune_gc
        self.flush_interval = flush_interval
        self.output_conn_id = output_conn_id
        self.sequences = sequences
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    def build_request(self, context: Any) -> SampleRequest:
        trade_platform = self.trade_platform or self.hook.config.trade_platform
        if not trade_platform:
            raise CPluginConfigError("extra.trade_platform", "no trade platform given", conn_id=self.cplugin_conn_id)
        platform_type = (self.platform_type or self.hook.platform_type_of(trade_platform)).upper()
        window = check_window(self.window)
        ti = context["ti"]
        name = run_file_name(ti.dag_id, ti.task_id, run_key(context), map_index=getattr(ti, "map_index", -1))
        # Every argument is checked here, on the worker: a bad one fails before deferring, naming it.
        request = SampleRequest(
            cplugin_conn_id=self.cplugin_conn_id,
            trade_platform=trade_platform,
            platform_type=platform_type,
            streams=[s.to_dict() for s in parse_streams(self.streams)],
            window_end=time.time() + window,
            output_path=check_output_path(self.output_path),
            run_name=name.removesuffix(".parquet"),
            partition_date=run_date(context).strftime("%Y-%m-%d"),
            max_events=self.max_events,
            batch_rows=self.batch_rows,
            batch_bytes=self.batch_bytes,
            transports=self.transports,
            tune_gc=self.tune_gc,
            output_conn_id=self.output_conn_id,
            flush_interval=self.flush_interval,
            sequences=self.sequences,
        )
        validate_request(request)  # streams of this platform's hub, landing location (+ storage connection)
        return request

    def execute(self, context: Any) -> Any:
        request = self.build_request(context)
        self.log.info(
            "Sampling %s on %s %s for %.0f s → %s",
            [s["method"] for s in request.streams], request.platform_type, request.trade_platform,
            check_window(self.window), request.output_path,
        )  # fmt: skip
        if not self.deferrable:
            return self._finish(asyncio.run(HubSampler(request).run()))
        self.defer(
            trigger=HubSampleTrigger(**request.to_dict()),
            method_name="execute_complete",
            # Generous: the window plus time to connect, flush the last batches and reconnect once or twice.
            timeout=timedelta(seconds=check_window(self.window) + 300),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return self._finish(event)

    def _finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        if summary.get("status") != "success":
            raise AirflowException(f"{self.task_id}: hub sample failed: {summary.get('message')}")
        gaps = summary.get("gaps", [])
        if gaps:
            missed = {c: "unknown" if n is None else n for c, n in summary.get("missed", {}).items() if n != 0}
            self.log.warning(
                "%d gap(s) in the sample (%s); missed events per stream: %s",
                len(gaps), ", ".join(sorted({g["reason"] for g in gaps}))[:500], missed,
            )  # fmt: skip
        rejects = summary.get("rejects", {})
        if rejects.get("total"):
            self.log.warning(
                "%d event(s) did not convert and were quarantined in %s", rejects["total"], rejects.get("files")
            )
        self.log.info(
            "Landed %d events in %d batch file(s): %s",
            summary["total_events"],
            len(summary["files"]),
            summary["events"],
        )
        return summary


def _templated(*values: Any) -> bool:
    """True if any value (or a string inside a list/dict) is still a Jinja template."""
    return "{{" in json.dumps(values, default=str)
