"""Shared machinery of the snapshot operators: pages from the hook → Arrow batches → atomic Parquet files.

A subclass says *what* to fetch for the trade platform's type (:meth:`BaseSnapshotOperator.snapshot_parts`);
this base resolves the trade platform and its type (MT4/MT5), stages each part in its hive partition, commits all
parts together (a run's files appear all or none), logs progress and returns small metadata to XCom, so every
snapshot behaves the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from airflow.sdk import BaseOperator, Context, ObjectStoragePath
from airflow.sdk.definitions.mappedoperator import OperatorPartial

from airflow_provider_cplugin.assets import (
    check_literal_output_path,
    emit_landed,
    entity_asset,
    landed_extras,
    with_aliases,
    with_state_inlets,
)
from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.lineage import LandingLineage, landed_files, lineage_of
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.landing import commit_staged, partition_dir, run_file_name
from airflow_provider_cplugin.parquet.location import default_landing_path, landing_root
from airflow_provider_cplugin.parquet.schemas import EntitySchema
from airflow_provider_cplugin.parquet.stream import BatchFilter, PageData, StagedPages, log_landed, stage_pages
from airflow_provider_cplugin.platforms import resolve_platform
from airflow_provider_cplugin.results import LandedFileEntry, SnapshotResult

__all__ = ["BaseSnapshotOperator", "SnapshotPart", "default_landing_path", "entity_asset"]

Records = list[dict[str, Any]]


class NotOfferedByApiError(CPluginError):
    """The WebAPI (v2, SDK 0.2.1 surface) has no endpoint for this on the given platform type."""


@dataclass(frozen=True)
class SnapshotPart:
    """One entity to land: where its pages come from and an optional row filter (e.g. a time interval)."""

    entity: EntitySchema
    pages: Callable[[], Iterable[PageData]]
    keep: BatchFilter | None = None


class BaseSnapshotOperator(BaseOperator):
    """Streams entities from the WebAPI into Parquet files under ``output_path`` and returns their metadata.

    :param cplugin_conn_id: Airflow connection of type ``cplugin``.
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

    Returns (XCom) a :class:`~airflow_provider_cplugin.results.SnapshotResult`: trade platform and type, rows,
    duplicates dropped and one entry per file; a run that landed one file also has its ``path``, ``entity`` and
    ``schema`` at the top level.

    Assets: the operator declares an ``AssetAlias("cplugin:<entity>")`` outlet per entity it may land (also when
    mapped or templated) and, once the files are committed, emits an event for the Asset of each entity it did
    land (``<landing>/entity=<name>``) with ``extra``: rows, files, trade platform and type, data interval and a
    schema fingerprint (see :mod:`airflow_provider_cplugin.assets`). Outlets given by the user are kept.
    """

    entities: tuple[EntitySchema, ...] = ()
    """Every entity this operator may land (each declared as an ``AssetAlias`` outlet)."""
    state_entities: tuple[EntitySchema, ...] = ()
    """Entities whose Asset state store the operator uses (declared as Asset inlets: no events)."""
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
        check_literal_output_path(output_path)
        kwargs["outlets"] = with_aliases(kwargs.get("outlets"), self.outlet_entities(kwargs))
        kwargs["inlets"] = with_state_inlets(kwargs.get("inlets"), output_path, (e.name for e in self.state_entities))
        super().__init__(**kwargs)
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.platform_type = platform_type
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.page_size = page_size
        self.row_group_rows = row_group_rows
        self.landing_lineage: LandingLineage | None = None

    @classmethod
    def outlet_entities(cls, arguments: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the entities whose alias to declare, from the operator's arguments known at parse time."""
        return tuple(e.name for e in cls.entities)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """``.partial(...).expand(...)`` never calls ``__init__`` at parse time: declare the same outlets (and
        state inlets) here, or a mapped task would have none and trigger nothing."""
        check_literal_output_path(kwargs.get("output_path"))
        kwargs["outlets"] = with_aliases(kwargs.get("outlets"), cls.outlet_entities(kwargs))
        kwargs["inlets"] = with_state_inlets(
            kwargs.get("inlets"), kwargs.get("output_path"), (e.name for e in cls.state_entities)
        )
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> CPluginWebApiHook:
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the API dataset read and the committed files (schema, rows), never a temporary."""
        return lineage_of(self.landing_lineage)

    # -- what to fetch (subclasses) -------------------------------------------------------------------------

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
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
        """A page source of wire records for a v2 method (``path_params`` are percent-encoded), for parts that
        transform records before landing and for reading (logins, symbols). Cursor-paged methods yield one list
        per API page; others (``cursor_paged=False``) yield their whole answer as one page."""
        return self._page_source(method, platform_type, trade_platform, params, path_params, cursor_paged, None)

    def decoded(
        self,
        entity: EntitySchema,
        method: str,
        platform_type: str,
        trade_platform: str,
        params: dict[str, Any] | None = None,
        path_params: Sequence[Any] = (),
        *,
        cursor_paged: bool = True,
    ) -> Callable[[], Iterable[PageData]]:
        """:meth:`paged` for a part landed as the API serves it: each body is decoded straight to a record batch
        of ``entity`` (:class:`~airflow_provider_cplugin.parquet.decode.PageDecoder`)."""
        return self._page_source(method, platform_type, trade_platform, params, path_params, cursor_paged, entity)

    def _page_source(
        self,
        method: str,
        platform_type: str,
        trade_platform: str,
        params: dict[str, Any] | None,
        path_params: Sequence[Any],
        cursor_paged: bool,
        entity: EntitySchema | None,
    ) -> Callable[[], Iterable[Any]]:
        limit = arguments.page_size(self.page_size)  # here, not in pages(): a bad value fails before any landing

        def pages() -> Iterable[Any]:
            path = self.hook.v2_path(method, *path_params, trade_platform=trade_platform, platform_type=platform_type)
            decoder = PageDecoder(entity) if entity is not None else None
            if not cursor_paged:
                data = self.hook.request("GET", path, params=params, data_decoder=decoder).data
                yield data if data is not None else []
                return
            for page in self.hook.paginate(path, params=params, limit=limit, data_decoder=decoder):
                yield page.items

        return pages

    def not_offered(self, what: str, platform_type: str) -> NotOfferedByApiError:
        return NotOfferedByApiError(
            f"{type(self).__name__}: the CPlugin WebAPI v2 offers no {what} for {platform_type} trade platforms"
        )

    # -- landing (shared) -----------------------------------------------------------------------------------

    def partitions(self, context: Context, trade_platform: str) -> dict[str, str]:
        # GUIDs compare case-insensitively (same_guid): one spelling per platform, so reruns replace, not add.
        return {"trade_platform": trade_platform.strip().lower(), "date": run_date(context).strftime("%Y-%m-%d")}

    def landing_root(self) -> ObjectStoragePath:
        """The validated landing root bound to ``output_conn_id`` (a config error names the bad field)."""
        return landing_root(self.output_path, self.output_conn_id or None)

    def target_path(self, context: Context, entity: EntitySchema, trade_platform: str) -> ObjectStoragePath:
        base = self.landing_root()
        ti = context["ti"]
        name = run_file_name(ti.dag_id, ti.task_id, run_key(context), map_index=getattr(ti, "map_index", -1))
        return partition_dir(base, entity.name, self.partitions(context, trade_platform)) / name

    def resolve_platform(self) -> tuple[str, str]:
        """(trade platform, MT4/MT5) by the rules of :mod:`airflow_provider_cplugin.platforms`."""
        platform = resolve_platform(self.hook, self.trade_platform, self.platform_type)
        return platform.trade_platform, platform.platform_type

    def stage(self, context: Context, part: SnapshotPart, trade_platform: str) -> StagedPages:
        """Write one part completely to its temporary; nothing is visible until :meth:`commit`."""
        target = self.target_path(context, part.entity, trade_platform)
        self.log.info("Landing %s from trade platform %s → %s", part.entity.name, trade_platform, target)
        attempt = getattr(context["ti"], "try_number", None)
        return stage_pages(
            part.pages(), part.entity, target, keep=part.keep, row_group_rows=self.row_group_rows, logger=self.log,
            attempt=attempt if isinstance(attempt, int) else 0,
        )  # fmt: skip

    def commit(self, staged: list[StagedPages]) -> list[LandedFileEntry]:
        """Make every staged part visible together (all or none)."""
        commit_staged([s.lander for s in staged])
        results = [s.result() for s in staged]
        for result in results:
            log_landed(self.log, result)
        return [cast(LandedFileEntry, r.to_dict()) for r in results]

    def execute(self, context: Context) -> SnapshotResult:
        self.landing_root()  # a bad output_path fails before any API call
        trade_platform, platform_type = self.resolve_platform()
        lineage = LandingLineage(self.hook.config.api_base_url, trade_platform, platform_type)
        self.landing_lineage = lineage
        staged: list[StagedPages] = []
        try:
            for part in self.snapshot_parts(context, platform_type, trade_platform):
                lineage.entities.append(part.entity.name)
                staged.append(self.stage(context, part, trade_platform))
            files = self.commit(staged)
        except BaseException:
            for part_staged in staged:
                part_staged.lander.abort()  # no-op for the committed or already aborted
            raise
        result: SnapshotResult = {
            "trade_platform": trade_platform,
            "platform_type": platform_type,
            "rows": sum(f["rows"] for f in files),
            "duplicates_dropped": sum(f["duplicates_dropped"] for f in files),
            "files": files,
        }
        if len(files) == 1:
            only = files[0]
            result["path"], result["entity"], result["schema"] = only["path"], only["entity"], only["schema"]
        schemas = {s.lander.entity: s.lander.schema for s in staged}
        lineage.files, lineage.schemas = landed_files(files), schemas
        extras = landed_extras(
            files, context=context, trade_platform=trade_platform, platform_type=platform_type, schemas=schemas
        )
        emit_landed(context, self.outlets, self.output_path, extras, self.log)
        return result


def run_key(context: Context) -> datetime | str:
    """What makes one run's file name unique: the logical date, or the run id for runs without one."""
    logical_date = context.get("logical_date")
    if logical_date is not None:
        return logical_date
    return str(context["run_id"])


def run_date(context: Context) -> datetime:
    """Date of the ``date=`` partition: start of the data interval, else the logical date, else run_after."""
    for value in (context.get("data_interval_start"), context.get("logical_date")):
        if value is not None:
            return value
    return context["dag_run"].run_after
