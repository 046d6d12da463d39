"""Sample realtime hub streams for a window and land them as Parquet batches, deferring while it waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context, conf
from airflow.sdk.definitions.mappedoperator import OperatorPartial
from airflow.sdk.exceptions import AirflowException

from airflow_provider_cplugin.assets import emit_landed, landed_extras, with_aliases
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.lineage import LandingLineage, landed_files, lineage_of
from airflow_provider_cplugin.operators.base_snapshot import run_date, run_key
from airflow_provider_cplugin.parquet.hub_schemas import STREAM_ENTITIES
from airflow_provider_cplugin.parquet.landing import run_file_name
from airflow_provider_cplugin.parquet.location import check_output_path
from airflow_provider_cplugin.platforms import PLATFORM_TYPES, check_platform_type, resolve_platform
from airflow_provider_cplugin.realtime.sample_request import DEFAULT_FLUSH_INTERVAL, check_window, parse_streams
from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest, entity_for, validate_request
from airflow_provider_cplugin.results import HubSampleFailure, HubSampleSummary
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger


class HubSampleOperator(BaseOperator):
    """Sample hub streams (``"StreamTicks:EURUSD"``, ``"StreamMarginCallUpdates"``...) for ``window`` seconds.

    With ``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``) the worker slot is freed
    while :class:`HubSampleTrigger` samples in the triggerer; otherwise the same sampler runs inline.
    Returns (XCom) the sample summary (:class:`~airflow_provider_cplugin.results.HubSampleSummary`): batch files
    with rows, events per stream, gaps, rejects, what was received but not landed.

    :param streams: hub stream methods of the platform's hub, ``"Method"`` or ``"Method:arg"``.
    :param window: sampling window in seconds.
    :param max_events: stop earlier after this many events in total.
    :param batch_rows: rows per Parquet batch file; ``batch_bytes`` cuts earlier for wide events.
    :param flush_interval: seconds between time cuts: what is pending is landed at least that often, so a killed
        triggerer loses at most that much received data (default 10).
    :param output_conn_id: storage connection for ``output_path`` (S3, GCS...); None = the URL's defaults.
    :param sequences: ``"module:function"`` giving each stream a sequence function (counts missed events and
        drops duplicates; see ``docs/realtime.md``); None = missed counts are unknown.
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
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        output_conn_id: str | None = None,
        sequences: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        arguments = {"streams": streams, "platform_type": platform_type}
        kwargs["outlets"] = with_aliases(kwargs.get("outlets"), self.outlet_entities(arguments))
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
        self.flush_interval = flush_interval
        self.output_conn_id = output_conn_id
        self.sequences = sequences
        self.deferrable = deferrable

        self.landing_lineage: LandingLineage | None = None

    @classmethod
    def outlet_entities(cls, arguments: Mapping[str, Any]) -> tuple[str, ...]:
        """The entities of the streams on the platform type (a stream the type's hub lacks is refused here, naming
        ``streams``); every hub entity when the streams or the type are only known at run time (an alias that gets
        no event costs nothing)."""
        streams, platform_type = arguments.get("streams"), arguments.get("platform_type")
        if streams is None or _templated(streams, platform_type) or not isinstance(platform_type, str | None):
            return tuple(sorted({e.name for e in STREAM_ENTITIES.values()}))
        if platform_type is not None:
            kind = check_platform_type(platform_type)
            return tuple(sorted({entity_for(kind, spec).name for spec in parse_streams(streams)}))
        try:
            specs = parse_streams(streams)
        except CPluginConfigError:
            return ()  # refused, naming the field, when the task runs
        found = (STREAM_ENTITIES.get((kind, spec.method)) for kind in PLATFORM_TYPES for spec in specs)
        return tuple(sorted({entity.name for entity in found if entity is not None}))

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """Mapped tasks get the same alias outlets (``__init__`` does not run at parse time for them)."""
        kwargs["outlets"] = with_aliases(kwargs.get("outlets"), cls.outlet_entities(kwargs))
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the hub streams' entities read and the batch files landed."""
        return lineage_of(self.landing_lineage)

    def build_request(self, context: Context) -> SampleRequest:
        platform = resolve_platform(self.hook, self.trade_platform, self.platform_type)
        trade_platform, platform_type = platform.trade_platform, platform.platform_type
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
            output_conn_id=self.output_conn_id,
            flush_interval=self.flush_interval,
            sequences=self.sequences,
        )
        validate_request(request)  # streams of this platform's hub, landing location (+ storage connection)
        return request

    def execute(self, context: Context) -> HubSampleSummary:
        request = self.build_request(context)
        self.log.info(
            "Sampling %s on %s %s for %.0f s → %s",
            [s["method"] for s in request.streams], request.platform_type, request.trade_platform,
            check_window(self.window), request.output_path,
        )  # fmt: skip
        if not self.deferrable:
            return self._finish(asyncio.run(HubSampler(request).run()), context)
        self.defer(
            trigger=HubSampleTrigger.from_request(request),
            method_name="execute_complete",
            # Generous: the window plus time to connect, flush the last batches and reconnect once or twice.
            timeout=timedelta(seconds=check_window(self.window) + 300),
        )

    def execute_complete(self, context: Context, event: HubSampleSummary | HubSampleFailure) -> HubSampleSummary:
        return self._finish(event, context)

    def _finish(self, summary: HubSampleSummary | HubSampleFailure, context: Context | None = None) -> HubSampleSummary:
        if summary["status"] != "success":
            problem = summary["message"] if summary["status"] == "error" else f"status {summary['status']!r}"
            raise AirflowException(f"{self.task_id}: hub sample failed: {problem}")
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
        self._record_landed(summary, context or {})
        return summary

    def _record_landed(self, summary: HubSampleSummary, context: Context) -> None:
        """Lineage and asset events for the batch files the sample committed (one event per entity)."""
        files = list(summary.get("files", []))
        schemas = {e.name: e.arrow_schema for e in STREAM_ENTITIES.values()}
        trade_platform, platform_type = str(summary.get("trade_platform")), str(summary.get("platform_type"))
        self.landing_lineage = LandingLineage(
            self.hook.config.api_base_url, trade_platform, platform_type,
            entities=[str(f["entity"]) for f in files], files=landed_files(files), schemas=schemas,
        )  # fmt: skip
        extras = landed_extras(
            files, context=context, trade_platform=trade_platform, platform_type=platform_type, schemas=schemas
        )
        emit_landed(context, self.outlets, self.output_path, extras, self.log)


def _templated(*values: Any) -> bool:
    """True if any value (or a string inside a list/dict) is still a Jinja template."""
    return "{{" in json.dumps(values, default=str)
