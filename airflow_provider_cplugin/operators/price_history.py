"""Ticks and chart bars (MT4) of the run's data interval, for P&L revaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import Context

from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.operators.dataset_support import (
    Records,
    choice,
    run_interval,
    symbols,
)
from airflow_provider_cplugin.operators.row_filters import interval_filter
from airflow_provider_cplugin.parquet.schemas import MT4_CHART_BAR, MT4_TICK

TICK_FLAGS = ("All", "Normal", "Raw")
CHART_PERIODS = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "Mn1")


def _iso_z(moment: datetime) -> str:
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class _PriceHistoryOperator(BaseSnapshotOperator):
    template_fields: Sequence[str] = (
        *BaseSnapshotOperator.template_fields,
        "symbols",
        "interval_start",
        "interval_end",
    )

    def __init__(
        self,
        *,
        symbols: Sequence[str] | str,
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.symbols = symbols
        self.interval_start = interval_start
        self.interval_end = interval_end


class TickHistoryOperator(_PriceHistoryOperator):
    """Land the MT4 ticks of ``symbols`` with time in ``[data_interval_start, data_interval_end)`` →
    ``mt4_ticks`` (one file per run, ``symbol`` a column), key ``(symbol, time, seq)``.

    ``TicksRequest/{symbol}`` per symbol and per ``request_hours`` slice of the interval (bounded answers; each
    slice is cut to its half-open range, so a tick on a slice boundary lands once). ``flags``: ``All`` (API
    default), ``Normal`` or ``Raw``. ``seq`` numbers the ticks of one second in the order served (MT4 tick times
    have second precision). MT5 has no tick history in the API: :class:`NotOfferedByApiError`.
    """

    entities = (MT4_TICK,)

    def __init__(self, *, flags: str = "All", request_hours: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flags = flags
        self.request_hours = request_hours

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("tick history", platform_type)
        start, end = run_interval(context, self.interval_start, self.interval_end)
        names = symbols(self.symbols)
        flags = choice(self.flags, "flags", TICK_FLAGS)
        step = timedelta(hours=arguments.whole_number(self.request_hours, "request_hours"))

        def pages() -> Iterator[Records]:
            for symbol in names:
                path = self.hook.v2_path("TicksRequest", symbol, trade_platform=trade_platform, platform_type="MT4")
                lo = start
                while lo < end:
                    hi = min(lo + step, end)
                    ticks = self.hook.get(path, params={"start": _iso_z(lo), "end": _iso_z(hi), "flags": flags}) or []
                    yield _numbered(symbol, ticks, lo, hi)
                    lo = hi

        keep = interval_filter("time", start, end)
        return [SnapshotPart(MT4_TICK, pages, keep)]


def _numbered(symbol: str, ticks: Records, lo: datetime, hi: datetime) -> Records:
    """Ticks of ``[lo, hi)`` with ``symbol`` and ``seq`` (0, 1, ... within one second, as served)."""
    lo_text, hi_text = _iso_z(lo), _iso_z(hi)
    out: Records = []
    previous, seq = None, 0
    for tick in ticks:
        when = tick.get("time")
        # ISO-8601 UTC text of one format compares in time order; other spellings go to the Arrow filter.
        if isinstance(when, str) and when.endswith("Z") and len(when) == 20 and not lo_text <= when < hi_text:
            continue
        seq = seq + 1 if when == previous else 0
        previous = when
        out.append({**tick, "symbol": symbol, "seq": seq})
    return out


class ChartBarsOperator(_PriceHistoryOperator):
    """Land the MT4 chart bars of ``symbols`` for each of ``periods`` whose open time is in
    ``[data_interval_start, data_interval_end)`` → ``mt4_chart_bars``, key ``(symbol, period, time)``.

    ``ChartRequest/{symbol}?period&start&end&mode=RangeIn`` (bars *opening* in the window; the rows are then cut
    to the half-open interval, whatever the server's bound handling), one call per symbol and period. A bar
    longer than the interval may still be forming when the run reads it: give D1 bars a daily schedule. MT5 has
    no chart history in the API: :class:`NotOfferedByApiError`.
    """

    entities = (MT4_CHART_BAR,)
    template_fields: Sequence[str] = (*_PriceHistoryOperator.template_fields, "periods")

    def __init__(self, *, periods: Sequence[str] | str = ("H1",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.periods = periods

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("chart bars", platform_type)
        start, end = run_interval(context, self.interval_start, self.interval_end)
        names = symbols(self.symbols)
        raw = [self.periods] if isinstance(self.periods, str) and "," not in self.periods else self.periods
        periods = [choice(p.strip(), "periods", CHART_PERIODS) for p in symbols(raw, "periods")]

        def pages() -> Iterator[Records]:
            params = {"start": _iso_z(start), "end": _iso_z(end), "mode": "RangeIn"}
            for symbol in names:
                path = self.hook.v2_path("ChartRequest", symbol, trade_platform=trade_platform, platform_type="MT4")
                for period in periods:
                    bars = self.hook.get(path, params={**params, "period": period}) or []
                    yield [{**bar, "symbol": symbol, "period": period} for bar in bars]

        keep = interval_filter("time", start, end)
        return [SnapshotPart(MT4_CHART_BAR, pages, keep)]
