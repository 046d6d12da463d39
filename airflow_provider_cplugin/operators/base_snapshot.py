"""Shared machinery of the snapshot operators: pages from the hook → Arrow batches → one atomic Parquet file.

Subclasses say *what* to fetch (:meth:`BaseSnapshotOperator.iter_pages`) and which entity schema it is; this base
does the landing, the progress log and the XCom metadata, so every snapshot behaves the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.landing import ParquetLander, partition_dir, run_file_name
from airflow_provider_cplugin.parquet.schemas import EntitySchema

LANDING_PATH_ENV = "CPLUGIN_LANDING_PATH"


def default_landing_path() -> str:
    """``$CPLUGIN_LANDING_PATH`` or ``$AIRFLOW_HOME/data/cplugin`` (local disk), as a URL string."""
    configured = os.environ.get(LANDING_PATH_ENV)
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return f"file://{os.path.join(home, 'data', 'cplugin')}"


class BaseSnapshotOperator(BaseOperator):
    """Streams one entity from the WebAPI into a Parquet file under ``output_path`` and returns its metadata.

    :param cplugin_conn_id: Airflow connection of type ``cplugin_webapi``.
    :param trade_platform: trade platform GUID; defaults to the connection's ``trade_platform`` extra.
    :param output_path: base URL of the landing zone (any ``ObjectStoragePath``: ``file://``, ``s3://``...);
        defaults to ``$CPLUGIN_LANDING_PATH`` or ``$AIRFLOW_HOME/data/cplugin``.
    :param page_size: records per API page (the API caps it at 5000).
    :param row_group_rows: rows per Parquet row group (memory use is bounded by one row group).
    """

    entity: EntitySchema
    template_fields: Sequence[str] = ("trade_platform", "output_path", "page_size")
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        cplugin_conn_id: str = CPluginWebApiHook.default_conn_name,
        trade_platform: str | None = None,
        output_path: str | None = None,
        page_size: int = 5000,
        row_group_rows: int = 100_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.output_path = output_path
        self.page_size = page_size
        self.row_group_rows = row_group_rows

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    def iter_pages(self, context: Any, trade_platform: str) -> Iterator[list[dict[str, Any]]]:
        """Yield lists of wire records; implemented by each snapshot."""
        raise NotImplementedError

    def partitions(self, context: Any, trade_platform: str) -> dict[str, str]:
        return {"trade_platform": trade_platform, "date": run_date(context).strftime("%Y-%m-%d")}

    def target_path(self, context: Any, trade_platform: str) -> ObjectStoragePath:
        base = ObjectStoragePath(self.output_path or default_landing_path())
        ti = context["ti"]
        name = run_file_name(ti.dag_id, ti.task_id, run_key(context), map_index=getattr(ti, "map_index", -1))
        return partition_dir(base, self.entity.name, self.partitions(context, trade_platform)) / name

    def resolve_trade_platform(self) -> str:
        trade_platform = self.trade_platform or self.hook.config.trade_platform
        if not trade_platform:
            raise CPluginConfigError(
                "extra.trade_platform",
                "no trade platform given: set the operator's trade_platform or the connection extra",
                conn_id=self.cplugin_conn_id,
            )
        return trade_platform

    def execute(self, context: Any) -> dict[str, Any]:
        trade_platform = self.resolve_trade_platform()
        target = self.target_path(context, trade_platform)
        converter = RecordBatchConverter(self.entity)
        self.log.info("Snapshot of %s from trade platform %s → %s", self.entity.name, trade_platform, target)
        started = time.monotonic()
        pages = 0
        with ParquetLander(target, self.entity.arrow_schema, row_group_rows=self.row_group_rows) as lander:
            for records in self.iter_pages(context, trade_platform):
                lander.write_batch(converter.convert(records))
                pages += 1
                rows = lander.rows_received
                elapsed = max(time.monotonic() - started, 1e-9)
                self.log.info("page %d: %d rows so far (%.0f rows/s)", pages, rows, rows / elapsed)
        landed = lander.landed
        assert landed is not None  # the context manager committed
        elapsed = max(time.monotonic() - started, 1e-9)
        self.log.info(
            "Landed %s: %d rows in %d pages, %.1f s (%.0f rows/s) at %s",
            self.entity.name,
            landed.rows,
            pages,
            elapsed,
            landed.rows / elapsed,
            landed.path,
        )
        return {**landed.to_dict(), "pages": pages, "trade_platform": trade_platform}


def run_key(context: Any) -> datetime | str:
    """What makes one run's file name unique: the logical date, or the run id for runs without one."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date
    return str(context["run_id"])


def run_date(context: Any) -> datetime:
    """Date used for the ``date=`` partition: start of the data interval, else the logical date, else run_after."""
    for key in ("data_interval_start", "logical_date"):
        value = context.get(key)
        if value is not None:
            return value
    return context["dag_run"].run_after
