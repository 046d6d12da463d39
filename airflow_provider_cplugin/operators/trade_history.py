"""Closed trades (MT4) and deals (MT5) of the DAG run's data interval, loaded incrementally."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pendulum

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, Records, SnapshotPart
from airflow_provider_cplugin.operators.row_filters import chunked, interval_filter
from airflow_provider_cplugin.parquet.schemas import MT4_TRADE_HISTORY, MT5_DEAL


def _iso_z(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class TradeHistoryOperator(BaseSnapshotOperator):
    """Land the trades closed (MT4) or deals made (MT5) in ``[data_interval_start, data_interval_end)``.

    Each run takes exactly its own half-open interval and writes one file named after its logical date, so
    back-fills and reruns compose: a rerun replaces its file, adjacent runs neither overlap nor leave a gap.

    The API has **no plain time-range endpoint** for history, so this is built from the real ones:

    * MT4: ``ReportsRequest`` (closed trades of given logins in ``[from, to]``) in batches of
      ``logins_per_request`` logins; the logins are ``logins`` if given, else every user from the cursor-paged
      ``UsersRequest``. Rows are then kept only when ``closeTime`` is inside the half-open interval (the server's
      bound handling is not documented).
    * MT5: ``DealByGroup/{mask}`` has no time filter in v2, so every deal of the mask is paged through and rows
      are kept when ``time`` is inside the interval (cost grows with the full history; narrow ``group_mask``).

    :param interval_start: override of the interval start (templated; ISO string or datetime).
    :param interval_end: override of the interval end.
    """

    entities = (MT4_TRADE_HISTORY, MT5_DEAL)
    template_fields: Sequence[str] = (
        *BaseSnapshotOperator.template_fields,
        "logins",
        "group_mask",
        "interval_start",
        "interval_end",
    )

    def __init__(
        self,
        *,
        logins: Sequence[int] | str | None = None,
        group_mask: str = "*",
        logins_per_request: int = 200,
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.logins = logins
        self.group_mask = group_mask
        self.logins_per_request = logins_per_request
        self.interval_start = interval_start
        self.interval_end = interval_end

    def interval(self, context: Any) -> tuple[datetime, datetime]:
        start = _moment(self.interval_start or context.get("data_interval_start"), "interval_start")
        end = _moment(self.interval_end or context.get("data_interval_end"), "interval_end")
        if start >= end:
            raise CPluginConfigError(
                "interval_end",
                f"empty interval [{start.isoformat()}, {end.isoformat()}): schedule the DAG with a timetable that "
                "has data intervals (e.g. @hourly) or pass interval_start/interval_end",
            )
        return start, end

    def snapshot_parts(self, context: Any, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        start, end = self.interval(context)
        explicit = arguments.logins(self.logins)
        per_request = arguments.whole_number(self.logins_per_request, "logins_per_request")
        self.log.info("History interval [%s, %s)", start.isoformat(), end.isoformat())
        if platform_type == "MT5":
            deals = self.paged("DealByGroup", "MT5", trade_platform, path_params=(self.group_mask,))
            return [
                SnapshotPart(
                    MT5_DEAL,
                    deals,
                    interval_filter("time", start, end),
                )
            ]
        users = None if explicit else self.paged("UsersRequest", "MT4", trade_platform)
        return [
            SnapshotPart(
                MT4_TRADE_HISTORY,
                lambda: self._mt4_closed_trades(trade_platform, start, end, self._logins(explicit, users, per_request)),
                interval_filter("closeTime", start, end),
            )
        ]

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
        self, trade_platform: str, start: datetime, end: datetime, batches: Iterator[list[int]]
    ) -> Iterator[Records]:
        path = self.hook.v2_path("ReportsRequest", trade_platform=trade_platform, platform_type="MT4")
        for logins in batches:
            trades = self.hook.get(path, params={"from": _iso_z(start), "to": _iso_z(end), "logins": logins}) or []
            yield sorted(trades, key=lambda t: t.get("order") or 0)


def _moment(value: str | datetime | None, field: str) -> datetime:
    if value is None:
        raise CPluginConfigError(field, "the run has no data interval; pass interval_start/interval_end")
    return arguments.moment(value, field)
