"""Closed trades (MT4) and deals (MT5) of the DAG run's data interval, at a cost that follows the new rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any

import pendulum
import pyarrow as pa
import pyarrow.compute as pc
from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError, CPluginError
from airflow_provider_cplugin.hooks.retry import RetryPolicy
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import (
    BaseSnapshotOperator,
    Records,
    SnapshotPart,
    entity_asset,
)
from airflow_provider_cplugin.operators.history_checkpoint import (
    AssetCheckpointStore,
    CheckpointStore,
    DealScan,
    FileCheckpointStore,
    merged,
    select,
)
from airflow_provider_cplugin.operators.row_filters import chunked, interval_filter
from airflow_provider_cplugin.parquet.convert import parse_utc_timestamps
from airflow_provider_cplugin.parquet.location import default_landing_path
from airflow_provider_cplugin.parquet.schemas import MT4_TRADE_HISTORY, MT5_DEAL
from airflow_provider_cplugin.results import SnapshotResult

METHODS = ("auto", "sync", "reports")
SYNC_LIMIT_MAX = 1_000_000
INT32_MAX = 2**31 - 1
SYNC_CLOCK_SLACK = timedelta(hours=1)
"""How far a sync row's ``timeStamp`` may fall before the requested one without calling the session foreign:
``ManagerCommon.timeZone`` is whole standard-time hours, and a server on summer time runs one hour off it."""


class SyncSessionError(CPluginError):
    """A trades sync session answered rows that are not those of the session this run started."""


def _iso_z(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class TradeHistoryOperator(BaseSnapshotOperator):
    """Land the trades closed (MT4) or deals made (MT5) in ``[data_interval_start, data_interval_end)``.

    Each run takes exactly its own half-open interval and writes one file named after its logical date, so
    back-fills and reruns compose: a rerun replaces its file, adjacent runs neither overlap nor leave a gap.
    The API has **no plain time-range endpoint** for history (docs/history.md has the details and the costs):

    * MT4, ``method="sync"`` (``"auto"`` without ``logins``): one trades sync session per run,
      ``TradesSyncStart`` at ``interval_start - sync_margin`` in the server's local time (``ManagerCommon``),
      drained with ``TradesSyncRead`` until it answers ``[]``: ``3 + ceil(changed trades / sync_limit)`` calls
      whatever the number of accounts. A session is server-side state, one per trade platform: runs using it must
      not overlap (``max_active_tis_per_dag`` defaults to 1; share a 1-slot pool across DAGs of one platform).
      Reads are never retried (a lost answer is drained rows): a failed read fails the run, whose retry starts a
      new session.
    * MT4, ``method="reports"`` (``"auto"`` with ``logins``): ``ReportsRequest`` in batches of
      ``logins_per_request`` logins (``logins``, else every user from ``UsersRequest``): cost grows with users.
    * MT5: ``DealByGroup/{mask}`` (sorted by deal id, no time filter). With ``incremental=True`` a run resumes from
      the checkpoint of an earlier run (asset state store, else ``<landing>/_checkpoints``), checks the overlap and
      reads only the deals after it; without a usable checkpoint, or when the cursor is refused or the overlap does
      not match (a warning), it scans every deal as ``incremental=False`` always does.

    Rows are kept when ``closeTime`` (MT4) / ``time`` (MT5) is inside the half-open interval.

    :param method: MT4 source: ``auto``, ``sync`` or ``reports``.
    :param incremental: MT5: resume from checkpoints (and write them).
    :param sync_limit: rows per ``TradesSyncRead`` (1..1,000,000).
    :param sync_margin: how long before the interval start the sync session starts (default 1 h: covers a server
        clock on summer time; costs only the rows changed in that hour).
    :param interval_start: override of the interval start (templated; ISO string or datetime).
    :param interval_end: override of the interval end.
    """

    entities = (MT4_TRADE_HISTORY, MT5_DEAL)
    state_entities = (MT5_DEAL,)  # the deal checkpoints live in the deal asset's state store
    template_fields: Sequence[str] = (
        *BaseSnapshotOperator.template_fields,
        "logins",
        "group_mask",
        "interval_start",
        "interval_end",
        "method",
    )

    def __init__(
        self,
        *,
        logins: Sequence[int] | str | None = None,
        group_mask: str = "*",
        logins_per_request: int = 200,
        method: str = "auto",
        incremental: bool = True,
        sync_limit: int = 50_000,
        sync_margin: timedelta = timedelta(hours=1),
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        # Sync sessions and checkpoints want one run at a time per task; a pool spans DAGs (docs/history.md).
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        self.logins = logins
        self.group_mask = group_mask
        self.logins_per_request = logins_per_request
        self.method = method
        self.incremental = incremental
        self.sync_limit = sync_limit
        self.sync_margin = sync_margin
        self.interval_start = interval_start
        self.interval_end = interval_end
        self._after_landing: list[Callable[[], None]] = []

    def interval(self, context: Context) -> tuple[datetime, datetime]:
        start = _moment(self.interval_start or context.get("data_interval_start"), "interval_start")
        end = _moment(self.interval_end or context.get("data_interval_end"), "interval_end")
        if start >= end:
            raise CPluginConfigError(
                "interval_end",
                f"empty interval [{start.isoformat()}, {end.isoformat()}): schedule the DAG with a timetable that "
                "has data intervals (e.g. @hourly) or pass interval_start/interval_end",
            )
        return start, end

    def mt4_method(self, explicit: list[int]) -> str:
        method = str(self.method).strip().lower()
        if method not in METHODS:
            raise CPluginConfigError("method", f"must be one of {METHODS}, got {self.method!r}")
        if method == "sync" and explicit:
            raise CPluginConfigError(
                "logins", "method='sync' reads the changes of every account; use method='reports' for given logins"
            )
        if method == "auto":
            return "reports" if explicit else "sync"
        return method

    def execute(self, context: Context) -> SnapshotResult:
        self._after_landing = []
        result = super().execute(context)
        for step in self._after_landing:  # only once every file is committed
            step()
        return result

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        start, end = self.interval(context)
        explicit = arguments.logins(self.logins)
        per_request = arguments.whole_number(self.logins_per_request, "logins_per_request")
        self.log.info("History interval [%s, %s)", start.isoformat(), end.isoformat())
        if platform_type == "MT5":
            deals = self._mt5_deals(context, trade_platform, start, end)
            return [SnapshotPart(MT5_DEAL, deals, interval_filter("time", start, end))]
        method = self.mt4_method(explicit)
        pages: Callable[[], Iterable[Records]]
        if method == "sync":
            limit = arguments.whole_number(self.sync_limit, "sync_limit", maximum=SYNC_LIMIT_MAX)
            margin = self.sync_margin
            if not isinstance(margin, timedelta) or margin < timedelta(0):
                raise CPluginConfigError("sync_margin", f"must be a timedelta >= 0, got {margin!r}")
            pages = partial(self._mt4_sync_trades, trade_platform, start, margin, limit)
        else:
            users = None if explicit else self.paged("UsersRequest", "MT4", trade_platform)
            pages = partial(self._mt4_closed_trades, trade_platform, start, end, explicit, users, per_request)
        self.log.info("MT4 trade history via %s", "TradesSync session" if method == "sync" else "ReportsRequest")
        return [SnapshotPart(MT4_TRADE_HISTORY, pages, interval_filter("closeTime", start, end))]

    # -- MT4: ReportsRequest (explicit logins, or method="reports") -------------------------------------------

    @staticmethod
    def _logins(
        explicit: list[int], users: Callable[[], Iterable[Records]] | None, per_request: int
    ) -> Iterator[list[int]]:
        if users is None:
            yield from chunked(explicit, per_request)
            return
        for page in users():
            yield from chunked([u["login"] for u in page], per_request)

    def _mt4_closed_trades(
        self,
        trade_platform: str,
        start: datetime,
        end: datetime,
        explicit: list[int],
        users: Callable[[], Iterable[Records]] | None,
        per_request: int,
    ) -> Iterator[Records]:
        path = self.hook.v2_path("ReportsRequest", trade_platform=trade_platform, platform_type="MT4")
        for logins in self._logins(explicit, users, per_request):
            trades = self.hook.get(path, params={"from": _iso_z(start), "to": _iso_z(end), "logins": logins}) or []
            yield sorted(trades, key=lambda t: t.get("order") or 0)

    # -- MT4: one trades sync session --------------------------------------------------------------------------

    @cached_property
    def drain_hook(self) -> CPluginWebApiHook:
        """A hook that never repeats a request: a repeated ``TradesSyncRead`` would skip the rows the lost answer
        drained."""
        return CPluginWebApiHook(cplugin_conn_id=self.cplugin_conn_id, retry_policy=RetryPolicy(max_attempts=1))

    def _server_tz_hours(self, trade_platform: str) -> int:
        common = self.hook.get(self.hook.v2_path("ManagerCommon", trade_platform=trade_platform, platform_type="MT4"))
        tz = common.get("timeZone") if isinstance(common, dict) else None
        if isinstance(tz, bool) or not isinstance(tz, int | float) or tz != int(tz) or not -12 <= tz <= 14:
            raise CPluginApiError("Internal", f"ManagerCommon.timeZone is {tz!r}, not whole hours in -12..14")
        return int(tz)

    def _mt4_sync_trades(
        self, trade_platform: str, start: datetime, margin: timedelta, limit: int
    ) -> Iterator[Records]:
        tz = self._server_tz_hours(trade_platform)
        since = pendulum.instance(start).in_timezone("UTC") - margin
        timestamp = int(since.timestamp()) + tz * 3600  # server-local seconds (reference §6.2)
        if not 0 < timestamp <= INT32_MAX:
            raise CPluginConfigError("interval_start", f"{since.isoformat()} is outside the int32 sync timestamp range")
        path = self.hook.v2_path("TradesSyncStart", trade_platform=trade_platform, platform_type="MT4")
        started = self.hook.request("POST", path, params={"timestamp": timestamp}).data
        if started is not True:
            raise SyncSessionError(f"TradesSyncStart?timestamp={timestamp} answered {started!r}, not true")
        self.log.info("Trades sync session from %s (server-local timestamp %d, UTC%+d)", since, timestamp, tz)
        read = self.hook.v2_path("TradesSyncRead", trade_platform=trade_platform, platform_type="MT4")
        floor = since - SYNC_CLOCK_SLACK
        total = 0
        while True:
            rows = self.drain_hook.get(read, params={"limit": limit})
            if rows is None:
                rows = []
            if not isinstance(rows, list) or len(rows) > limit:
                what = f"{len(rows)} rows" if isinstance(rows, list) else type(rows).__name__
                raise SyncSessionError(f"TradesSyncRead?limit={limit} answered {what}")
            if not rows:
                self.log.info("Trades sync session drained: %d changed trades read", total)
                return
            _check_session_rows(rows, floor, timestamp)
            total += len(rows)
            yield sorted(rows, key=lambda t: t.get("order") or 0)

    # -- MT5: DealByGroup, incremental ------------------------------------------------------------------------

    def checkpoint_store(self, context: Context, trade_platform: str) -> CheckpointStore:
        guid = trade_platform.strip().lower()
        accessors = context.get("asset_state_store")
        asset = entity_asset(self.output_path, MT5_DEAL)
        if accessors is not None and asset is not None:
            try:
                return AssetCheckpointStore(accessors[asset], guid, self.group_mask, self.log)
            except (KeyError, TypeError):
                pass  # the deal asset is not an inlet of this task (templated output_path): keep them in files
        base = self.output_path or default_landing_path()
        return FileCheckpointStore(base, MT5_DEAL.name, guid, self.group_mask, self.log)

    def _mt5_deals(
        self, context: Context, trade_platform: str, start: datetime, end: datetime
    ) -> Callable[[], Iterable[Records]]:
        limit = arguments.page_size(self.page_size)
        path = self.hook.v2_path("DealByGroup", self.group_mask, trade_platform=trade_platform, platform_type="MT5")
        store = self.checkpoint_store(context, trade_platform) if self.incremental else None
        checkpoints = store.load() if store is not None else []
        resume = select(checkpoints, start)
        if store is not None and resume is None:
            self.log.info("No deal checkpoint at or before %s in %s: scanning all deals", start, store.where)

        def request(cursor: str | None) -> Any:
            params: dict[str, Any] = {"limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            return self.hook.request("GET", path, params=params)

        scan = DealScan(
            path=path, limit=limit, request=request, full_scan=lambda: self.hook.paginate(path, limit=limit),
            start=start, end=end, resume=resume, track=store is not None, log=self.log,
        )  # fmt: skip

        def after_landing() -> None:
            self.log.info("DealByGroup: %s read, %d pages", scan.mode, scan.pages_read)
            if scan.late:
                self.log.warning(
                    "%d deals with ids above those the checkpoint's run saw are dated before %s: they arrived after "
                    "the run that covered their time; rerun those intervals to land them", scan.late, start,
                )  # fmt: skip
            new = scan.checkpoint()
            if store is not None and new is not None:
                store.save(merged(store.load(), new))
                self.log.info("Deal checkpoint for %s: deal %d in %s", new.watermark, new.deal, store.where)

        self._after_landing.append(after_landing)
        return scan.pages


def _check_session_rows(rows: Records, floor: datetime, timestamp: int) -> None:
    """Every row of our session was modified at/after its start: an older one means another consumer's session
    (a later ``TradesSyncStart`` replaces ours) is being drained, and rows of ours may be missing."""
    stamps = parse_utc_timestamps(pa.array([r.get("timeStamp") for r in rows], type=pa.string()))
    older = pc.fill_null(pc.less(stamps, pa.scalar(floor, type=stamps.type)), False)
    count = int(pc.sum(older).as_py() or 0)
    if count:
        oldest = pc.min(stamps).as_py()
        raise SyncSessionError(
            f"TradesSyncRead answered {count} trades modified before this run's session start (timestamp "
            f"{timestamp}, oldest {oldest}): another TradesSyncStart replaced the session, so trades of this "
            "interval may be missing. Serialize history runs per trade platform (a 1-slot pool) and rerun"
        )


def _moment(value: str | datetime | None, field: str) -> datetime:
    if value is None:
        raise CPluginConfigError(field, "the run has no data interval; pass interval_start/interval_end")
    return arguments.moment(value, field)
