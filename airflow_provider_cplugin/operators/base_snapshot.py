"""Shared machinery of the snapshot operators: pages from the hook → Arrow batches → atomic Parquet files.

A subclass says *what* to fetch for the trade platform's type (:meth:`BaseSnapshotOperator.snapshot_parts`);
this base resolves the trade platform and its type (MT4/MT5), stages each part in its hive partition, commits all
parts together (a run's files appear all or none), logs progress and returns small metadata to XCom, so every
snapshot behaves the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginConfigError, CPluginError
from airflow_provider_cplugin.hooks.connection import PLATFORM_TYPES
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.parquet.landing import commit_staged, partition_dir, run_file_name
from airflow_provider_cplugin.parquet.location import check_output_path, default_landing_path, landing_root
from airflow_provider_cplugin.parquet.schemas import EntitySchema
from airflow_provider_cplugin.parquet.stream import BatchFilter, StagedPages, log_landed, stage_pages

__all__ = ["BaseSnapshotOperator", "SnapshotPart", "default_landing_path", "entity_asset"]

Records = list[dict[str, Any]]


class NotOfferedByApiError(CPluginError):
    """The WebAPI (v2, SDK 0.2.1 surface) has no endpoint for this on the given platform type."""


def entity_asset(output_path: str | None, entity: EntitySchema) -> Asset | None:
    """The Asset downstream DAGs schedule on: the entity's directory in the landing zone.

    ``None`` when the path is only known at run time (a Jinja template). A relative path or one climbing out
    with ``..`` is a :class:`CPluginConfigError` here already.
    """
    base = output_path or default_landing_path()
    if "{{" in base or "{%" in base:
        return None
    return Asset(uri=str(partition_dir(ObjectStoragePath(check_output_path(base)), entity.name, {})))


@dataclass(frozen=True)
class SnapshotPart:
    """One entity to land: where its pages come from and an optional row filter (e.g. a time interval)."""

    entity: EntitySchema
    pages: Callable[[], Iterable[Records]]
    keep: BatchFilter | None = None


class BaseSnapshotOperator(BaseOperator):
    """Streams entities from the WebAPI into Parquet files under ``output_path`` and returns their metadata.

    :param cplugin_conn_id: Airflow connection of type ``cplugin_webapi``.
    :param trade_platform: trade platform GUID; defaults to the connection's ``trade_platform`` extra.
    :param platform_type: ``MT4`` or ``MT5``; by default taken from the trade platforms list (cached per hook).
    :param output_path: base URL of the landing zone (any ``ObjectStoragePath``: ``file://``, ``s3://``...);
        defaults to ``$CPLUGIN_LANDING_PATH`` or ``$AIRFLOW_HOME/data/cplugin``. Must be absolute, without ``..``.
    :param output_conn_id: Airflow connection of the storage (e.g. an ``aws`` connection for ``s3://``), as
        common.io's transfer operators take it; overrides a ``conn_id@`` in the URL. Without either, the
        filesystem's own default credentials are used (for S3: boto3's chain, not ``aws_default``).
    :param page_size: records per API page (the API caps it at 5000).
    :param row_group_rows: rows per Parquet row group (memory use is bounded by about one row group).

    Every part is staged (written completely, its declared key checked) before any is committed; the parts are
    then committed together, so a failure anywhere leaves none of this run's new files visible and the previous
    files untouched. Rows repeating exactly (same key and contents) are dropped with a warning and counted;
    rows sharing a key with different contents fail the task (``DuplicateKeyError``).

    Returns (XCom) ``{trade_platform, platform_type, rows, duplicates_dropped, files: [{path, rows, bytes,
    row_groups, entity, schema, duplicates_dropped, pages, records_read}]}``; operators with a single part also
    put that file's ``path``, ``entity`` and ``schema`` at the top level.
    """

    entities: tuple[EntitySchema, ...] = ()
    """Every entity this operator may land (declared as Asset outlets)."""
    template_fields: Sequence[str] = ("trade_platform", "platform_type", "output_path", "output_conn_id", "page_size")
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        cplugin_conn_id: str = CPluginWebApiHook.default_conn_name,
        trade_platform: str | None = None,
        platform_type: str | None = None,
        output_path: str | None = None,
        output_conn_id: str | None = None,
        page_size: int = 5000,
        row_group_rows: int = 100_000,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs:
            assets = [entity_asset(output_path, entity) for entity in self.entities]
            kwargs["outlets"] = [a for a in assets if a is not None]
        super().__init__(**kwargs)
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.platform_type = platform_type
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.page_size = page_size
        self.row_group_rows = row_group_rows

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    # -- what to fetch (subclasses) -------------------------------------------------------------------------

    def snapshot_parts(self, context: Any, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        raise NotImplementedError

    def paged(
        self,
        method: str,
        platform_type: str,
        trade_platform: str,
        params: dict[str, Any] | None = None,
        path_params: Sequence[Any] = (),
        *,
        cursor_paged: bool = True,
    ) -> Callable[[], Iterable[Records]]:
        """A part's page source for a v2 method (``path_params`` are percent-encoded).

        Cursor-paged methods yield one list per API page; others (``cursor_paged=False``) yield their whole
        answer as one page.
        """
        limit = arguments.page_size(self.page_size)  # here, not in pages(): a bad value fails before any landing

        def pages() -> Iterable[Records]:
            path = self.hook.v2_path(method, *path_params, trade_platform=trade_platform, platform_type=platform_type)
            if not cursor_paged:
                yield list(self.hook.get(path, params=params) or [])
                return
            for page in self.hook.paginate(path, params=params, limit=limit):
                yield page.items

        return pages

    def not_offered(self, what: str, platform_type: str) -> NotOfferedByApiError:
        return NotOfferedByApiError(
            f"{type(self).__name__}: the CPlugin WebAPI v2 offers no {what} for {platform_type} trade platforms"
        )

    # -- landing (shared) -----------------------------------------------------------------------------------

    def partitions(self, context: Any, trade_platform: str) -> dict[str, str]:
        # GUIDs compare case-insensitively (same_guid): one spelling per platform, so reruns replace, not add.
        return {"trade_platform": trade_platform.strip().lower(), "date": run_date(context).strftime("%Y-%m-%d")}

    def landing_root(self) -> ObjectStoragePath:
        """The validated landing root bound to ``output_conn_id`` (a config error names the bad field)."""
        return landing_root(self.output_path, self.output_conn_id or None)

    def target_path(self, context: Any, entity: EntitySchema, trade_platform: str) -> ObjectStoragePath:
        base = self.landing_root()
        ti = context["ti"]
        name = run_file_name(ti.dag_id, ti.task_id, run_key(context), map_index=getattr(ti, "map_index", -1))
        return partition_dir(base, entity.name, self.partitions(context, trade_platform)) / name

    def resolve_trade_platform(self) -> str:
        trade_platform = self.trade_platform or self.hook.config.trade_platform
        if not trade_platform:
            raise CPluginConfigError(
                "extra.trade_platform",
                "no trade platform given: set the operator's trade_platform or the connection extra",
                conn_id=self.cplugin_conn_id,
            )
        return trade_platform

    def resolve_platform_type(self, trade_platform: str) -> str:
        platform_type = (self.platform_type or self.hook.platform_type_of(trade_platform)).upper()
        if platform_type not in PLATFORM_TYPES:
            raise CPluginConfigError("platform_type", f"must be one of {PLATFORM_TYPES}, got {platform_type!r}")
        return platform_type

    def stage(self, context: Any, part: SnapshotPart, trade_platform: str) -> StagedPages:
        """Write one part completely to its temporary; nothing is visible until :meth:`commit`."""
        target = self.target_path(context, part.entity, trade_platform)
        self.log.info("Landing %s from trade platform %s → %s", part.entity.name, trade_platform, target)
        attempt = getattr(context["ti"], "try_number", None)
        return stage_pages(
            part.pages(), part.entity, target, keep=part.keep, row_group_rows=self.row_group_rows, logger=self.log,
            attempt=attempt if isinstance(attempt, int) else 0,
        )  # fmt: skip

    def commit(self, staged: list[StagedPages]) -> list[dict[str, Any]]:
        """Make every staged part visible together (all or none)."""
        commit_staged([s.lander for s in staged])
        results = [s.result() for s in staged]
        for result in results:
            log_landed(self.log, result)
        return [r.to_dict() for r in results]

    def execute(self, context: Any) -> dict[str, Any]:
        self.landing_root()  # a bad output_path fails before any API call
        trade_platform = self.resolve_trade_platform()
        platform_type = self.resolve_platform_type(trade_platform)
        staged: list[StagedPages] = []
        try:
            for part in self.snapshot_parts(context, platform_type, trade_platform):
                staged.append(self.stage(context, part, trade_platform))
            files = self.commit(staged)
        except BaseException:
            for part_staged in staged:
                part_staged.lander.abort()  # no-op for the committed or already aborted
            raise
        result: dict[str, Any] = {
            "trade_platform": trade_platform,
            "platform_type": platform_type,
            "rows": sum(f["rows"] for f in files),
            "duplicates_dropped": sum(f["duplicates_dropped"] for f in files),
            "files": files,
        }
        if len(files) == 1:
            result.update(path=files[0]["path"], entity=files[0]["entity"], schema=files[0]["schema"])
        return result


def run_key(context: Any) -> datetime | str:
    """What makes one run's file name unique: the logical date, or the run id for runs without one."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date
    return str(context["run_id"])


def run_date(context: Any) -> datetime:
    """Date of the ``date=`` partition: start of the data interval, else the logical date, else run_after."""
    for key in ("data_interval_start", "logical_date"):
        value = context.get(key)
        if value is not None:
            return value
    return context["dag_run"].run_after
