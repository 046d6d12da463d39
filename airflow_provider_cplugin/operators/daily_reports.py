"""End-of-day account state (MT4 daily reports) per login per server-local trading day."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.operators.dataset_support import (
    Records,
    choice,
    run_interval,
    server_tz_hours,
)
from airflow_provider_cplugin.operators.row_filters import chunked
from airflow_provider_cplugin.parquet.schemas import MT4_DAILY_REPORT

DAY = 86_400
_EPOCH = date(1970, 1, 1)


def trading_days(start: datetime, end: datetime, tz_hours: int) -> list[date]:
    """Server-local trading days whose **end** lies in ``[start, end)`` (UTC).

    A day ends at the next server-local midnight, ``tz_hours`` ahead of UTC. Taking the days that end inside the
    interval gives every day exactly once across adjacent runs, each only once it is complete (the run starts
    after ``end``), whatever the server's zone: a daily DAG at UTC midnight with a UTC+2 server lands the day
    that ended at 22:00 UTC the evening before.
    """
    offset = tz_hours * 3600
    lo, hi = int(start.timestamp()) + offset, int(end.timestamp()) + offset
    first = -(-lo // DAY) - 1  # smallest d with (d + 1) * DAY >= lo
    last = -(-hi // DAY) - 2  # largest d with (d + 1) * DAY < hi
    return [_EPOCH + timedelta(days=d) for d in range(first, last + 1)]


class DailyReportsOperator(BaseSnapshotOperator):
    """Land MT4 daily reports (balance, equity, credit, margin, deposits, closed and floating P/L) per login for
    the server-local trading days of the run → ``mt4_daily_reports``, key ``(login, trading_day)``.

    The trading day is the MT4 server's local calendar day (``ManagerCommon.timeZone``, read each run). A run
    lands the days that **end** in ``[data_interval_start, data_interval_end)``: see :func:`trading_days`.
    ``ctm`` (sent as the server-local midnight) lands as that instant in UTC, ``trading_day`` as the local date;
    a ``ctm`` that is not a local midnight fails the task (the API would have changed its time zone).

    * ``source="request"`` (default): ``DailyReportsRequest`` for ``logins`` (all users from ``UsersRequest``
      when not given), ``logins_per_request`` per call (billed as one Manager request each).
    * ``source="sync"``: ``DailySyncStart`` at the first day's local midnight + one ``DailySyncRead`` (every
      account, no login list needed). A sync session is per trade platform and the most recent start wins: run
      at most one such task per platform at a time (``max_active_runs=1`` or a pool of one slot).

    MT5 has no daily reports in the API (v2, SDK 0.2.1): :class:`NotOfferedByApiError`.
    """

    entities = (MT4_DAILY_REPORT,)
    template_fields: Sequence[str] = (
        *BaseSnapshotOperator.template_fields,
        "logins",
        "source",
        "interval_start",
        "interval_end",
    )

    def __init__(
        self,
        *,
        logins: Sequence[int] | str | None = None,
        source: str = "request",
        logins_per_request: int = 200,
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.logins = logins
        self.source = source
        self.logins_per_request = logins_per_request
        self.interval_start = interval_start
        self.interval_end = interval_end

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("daily reports", platform_type)
        start, end = run_interval(context, self.interval_start, self.interval_end)
        choice(self.source, "source", ("request", "sync"))
        logins = arguments.logins(self.logins)
        per_request = arguments.whole_number(self.logins_per_request, "logins_per_request")
        tz = server_tz_hours(self.hook, trade_platform)
        days = trading_days(start, end, tz)
        self.log.info(
            "Trading days (server UTC%+d) ending in [%s, %s): %s", tz, start.isoformat(), end.isoformat(),
            [d.isoformat() for d in days] or "none",
        )  # fmt: skip

        def pages() -> Iterator[Records]:
            if not days:
                return
            if self.source == "sync":
                yield from self._synced(trade_platform, days, tz, set(logins))
            else:
                yield from self._requested(trade_platform, days, tz, logins, per_request)

        return [SnapshotPart(MT4_DAILY_REPORT, pages)]

    def _login_batches(self, trade_platform: str, logins: list[int], per_request: int) -> Iterator[list[int]]:
        if logins:
            yield from chunked(logins, per_request)
            return
        for page in self.paged("UsersRequest", "MT4", trade_platform)():
            yield from chunked([u["login"] for u in page], per_request)

    def _requested(
        self, trade_platform: str, days: list[date], tz: int, logins: list[int], per_request: int
    ) -> Iterator[Records]:
        path = self.hook.v2_path("DailyReportsRequest", trade_platform=trade_platform, platform_type="MT4")
        # `from`/`to` are the server's wall clock (ctm is local). `to` is the last day's 23:59:59, so the last day
        # is in whether the server's bound is inclusive or exclusive, and the next day is not.
        params = {"from": f"{days[0].isoformat()}T00:00:00", "to": f"{days[-1].isoformat()}T23:59:59"}
        for batch in self._login_batches(trade_platform, logins, per_request):
            rows = self.hook.get(path, params={**params, "logins": batch}) or []
            yield self._landable(rows, days, tz)

    def _synced(self, trade_platform: str, days: list[date], tz: int, logins: set[int]) -> Iterator[Records]:
        start = self.hook.v2_path("DailySyncStart", trade_platform=trade_platform, platform_type="MT4")
        read = self.hook.v2_path("DailySyncRead", trade_platform=trade_platform, platform_type="MT4")
        # int32 unix seconds of the server's wall clock: the first day's local midnight (reports are written
        # when their day ends, so every wanted day is at/after it; later days are dropped below).
        timestamp = (days[0] - _EPOCH).days * DAY
        self.hook.request("POST", start, params={"timestamp": timestamp})
        rows = self.hook.request("POST", read).data or []
        if logins:
            rows = [r for r in rows if r.get("login") in logins]
        yield self._landable(rows, days, tz)

    def _landable(self, rows: Records, days: list[date], tz: int) -> Records:
        """Rows of the wanted days with ``ctm`` in UTC and ``tradingDay``, by (login, day) for stable files."""
        wanted = set(days)
        out = []
        for row in rows:
            day, ctm_utc = _local_midnight(row.get("ctm"), tz)
            if day in wanted:
                out.append({**row, "tradingDay": day, "ctm": ctm_utc})
        dropped = len(rows) - len(out)
        if dropped:
            self.log.info("%d daily report(s) of other days than the run's were not landed", dropped)
        return sorted(out, key=lambda r: (r.get("login") or 0, r["tradingDay"]))


def _local_midnight(ctm: Any, tz: int) -> tuple[date, str]:
    """``ctm`` (server-local wall clock; any suffix ignored, as the SDK says it is local time) → (local date,
    the same instant as UTC ISO)."""
    text = ctm if isinstance(ctm, str) else ""
    try:
        wall = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise CPluginError(f"mt4_daily_reports.ctm: {ctm!r} is not an ISO-8601 datetime") from None
    if (wall.tm_hour, wall.tm_min, wall.tm_sec) != (0, 0, 0):
        raise CPluginError(
            f"mt4_daily_reports.ctm: {ctm!r} is not a server-local midnight (server UTC{tz:+d}); the API may have "
            "changed the time zone of ctm, nothing was landed"
        )
    day = date(wall.tm_year, wall.tm_mon, wall.tm_mday)
    instant = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=tz)
    return day, instant.strftime("%Y-%m-%dT%H:%M:%SZ")
