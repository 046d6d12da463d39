"""Warehouse-dataset operators against their own emulator: landed rows are exactly what the generators serve,
typed, keys unique, reruns identical, MT4/MT5 behaviour per the API surface."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from result_shapes import ShapeCheck

from airflow_provider_cplugin.emulator.data import MT4_GROUPS, MT5_GROUP_BY_NAME, SYMBOL_BY_NAME, Dataset
from airflow_provider_cplugin.exceptions import CPluginConfigError, DuplicateKeyError
from airflow_provider_cplugin.operators.base_snapshot import NotOfferedByApiError
from airflow_provider_cplugin.operators.daily_reports import DailyReportsOperator, trading_days
from airflow_provider_cplugin.operators.groups import GroupsSnapshotOperator
from airflow_provider_cplugin.operators.mt5_symbols import Mt5SymbolsSnapshotOperator
from airflow_provider_cplugin.operators.price_history import ChartBarsOperator, TickHistoryOperator
from airflow_provider_cplugin.operators.users_changes import UsersChangesOperator
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.schemas import (
    MT4_CHART_BAR,
    MT4_DAILY_REPORT,
    MT4_GROUP,
    MT4_TICK,
    MT4_USER_CHANGE,
    MT5_GROUP,
    MT5_SYMBOL,
    EntitySchema,
    snake_case,
)
from airflow_provider_cplugin.parquet.stream import land_pages
from airflow_provider_cplugin.results import SnapshotResult

from .conftest import ANCHOR, RunTask

DAY = 86_400
TZ = 2  # the emulator's default server zone (hours)
INTERVAL = (datetime(2025, 12, 30, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC))


def table(result: dict[str, Any]) -> pa.Table:
    return pq.read_table(result["path"].removeprefix("file://"))


def assert_landed(result: dict[str, Any], entity: EntitySchema) -> pa.Table:
    tbl = table(result)
    assert tbl.schema.equals(entity.arrow_schema, check_metadata=False)
    keys = tbl.select([snake_case(k) for k in entity.key]).to_pylist()
    assert len({tuple(k.values()) for k in keys}) == len(keys) == result["rows"]
    assert tbl.column("_extra").null_count == len(tbl)  # the emulator's shapes are fully declared
    return tbl


def assert_rerun_identical(run_task: RunTask, op: Any, first: dict[str, Any], **kwargs: Any) -> None:
    before = Path(first["path"].removeprefix("file://")).read_bytes()
    again = run_task(op, **kwargs)
    assert again["path"] == first["path"]
    assert Path(again["path"].removeprefix("file://")).read_bytes() == before


def wire(entity: EntitySchema, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the rows land as (same converter), without the _extra column."""
    return RecordBatchConverter(entity).convert(rows).drop_columns(["_extra"]).to_pylist()


# --------------------------------------------------------------------------- daily reports


def test_trading_days_are_the_days_ending_in_the_interval() -> None:
    assert trading_days(*INTERVAL, TZ) == [date(2025, 12, 30)]  # ends 2025-12-30T22:00Z
    assert trading_days(*INTERVAL, -5) == [date(2025, 12, 29)]  # ends 2025-12-30T05:00Z
    assert trading_days(*INTERVAL, 0) == [date(2025, 12, 29)]  # ends exactly at the start: in
    hourly = [
        trading_days(INTERVAL[0] + timedelta(hours=h), INTERVAL[0] + timedelta(hours=h + 1), TZ) for h in range(24)
    ]
    assert [d for days in hourly for d in days] == [date(2025, 12, 30)]  # exactly once across adjacent runs


def expected_daily(dataset: Dataset, users: range | list[int], day: date) -> list[dict[str, Any]]:
    d = (day - date(1970, 1, 1)).days
    rows = [r for u in users for r in dataset.mt4_daily_reports(u, [d])]
    ctm = (datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=TZ)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return wire(MT4_DAILY_REPORT, [{**r, "ctm": ctm, "tradingDay": day} for r in rows])


def test_daily_reports_land_every_login_for_the_trading_day(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    op = DailyReportsOperator(task_id="daily", output_path=landing, logins_per_request=500)
    result = run_task(op, logical_date=INTERVAL[0], interval=INTERVAL)
    tbl = assert_landed(result, MT4_DAILY_REPORT)
    assert tbl.drop_columns(["_extra"]).to_pylist() == expected_daily(dataset, range(3000), date(2025, 12, 30))
    assert result["rows"] == 3000 and result["files"][0]["pages"] == 6  # 3000 logins / 500 per request
    row = tbl.slice(0, 1).to_pylist()[0]
    assert row["ctm"] == datetime(2025, 12, 29, 22, tzinfo=UTC) and row["trading_day"] == date(2025, 12, 30)
    assert_rerun_identical(run_task, op, result, logical_date=INTERVAL[0], interval=INTERVAL)


def test_daily_reports_by_sync_equal_the_request(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    logins = [10_000, 10_005, 12_999]
    requested = run_task(
        DailyReportsOperator(task_id="req", output_path=landing, logins=logins),
        logical_date=INTERVAL[0],
        interval=INTERVAL,
    )
    synced = run_task(
        DailyReportsOperator(task_id="sync", output_path=landing, logins=logins, source="sync"),
        logical_date=INTERVAL[0],
        interval=INTERVAL,
    )
    assert table(requested).equals(table(synced))
    assert table(synced).drop_columns(["_extra"]).to_pylist() == expected_daily(
        dataset, [0, 5, 2999], date(2025, 12, 30)
    )


def test_daily_reports_not_offered_for_mt5_and_bad_arguments(run_task: RunTask, landing: str) -> None:
    with pytest.raises(NotOfferedByApiError):
        run_task(DailyReportsOperator(task_id="d5", cplugin_conn_id="cplugin_mt5", output_path=landing))
    with pytest.raises(CPluginConfigError, match="source"):
        run_task(DailyReportsOperator(task_id="bad", output_path=landing, source="pump"))
    assert not list(Path(landing.removeprefix("file://")).rglob("*.parquet"))


# --------------------------------------------------------------------------- groups


@pytest.mark.parametrize("source", ["cache", "live"])
def test_mt4_groups(run_task: RunTask, dataset: Dataset, landing: str, source: str) -> None:
    op = GroupsSnapshotOperator(task_id=f"groups_{source}", output_path=landing, source=source, page_size=3)
    result = run_task(op)
    tbl = assert_landed(result, MT4_GROUP)
    expected = [dataset.mt4_group(g) for g in sorted(MT4_GROUPS, key=lambda g: g.name)]
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT4_GROUP, expected)
    assert_rerun_identical(run_task, op, result)


def test_mt5_groups_of_the_position_owners(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    result = run_task(GroupsSnapshotOperator(task_id="g5", cplugin_conn_id="cplugin_mt5", output_path=landing))
    tbl = assert_landed(result, MT5_GROUP)
    owners = {dataset.mt5_owner(k) for k in range(dataset.mt5_position_count)}
    seen = sorted({dataset.mt5_user_group(u).name for u in owners})
    served = [
        {k: v for k, v in dataset.mt5_group(MT5_GROUP_BY_NAME[g]).items() if k != "reportsSMTPPass"} for g in seen
    ]
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT5_GROUP, served)
    assert "reports_smtp_pass" not in tbl.column_names  # a credential never lands
    explicit = run_task(
        GroupsSnapshotOperator(
            task_id="g5x", cplugin_conn_id="cplugin_mt5", output_path=landing, groups="real\\pro, nope"
        )
    )
    assert table(explicit).column("group").to_pylist() == ["real\\pro"]  # unknown group skipped with a warning


# --------------------------------------------------------------------------- ticks and bars

HOUR = (datetime(2025, 12, 31, 10, tzinfo=UTC), datetime(2025, 12, 31, 12, tzinfo=UTC))


def test_ticks_of_the_interval(run_task: RunTask, dataset: Dataset, landing: str, shape: ShapeCheck) -> None:
    op = TickHistoryOperator(task_id="ticks", output_path=landing, symbols="EURUSD, XAUUSD", request_hours=1)
    result = run_task(op, logical_date=HOUR[0], interval=HOUR)
    shape(result, SnapshotResult)
    tbl = assert_landed(result, MT4_TICK)
    lo, hi = int(HOUR[0].timestamp()), int(HOUR[1].timestamp())
    expected = [
        {**t, "symbol": s, "seq": 0}
        for s in ("EURUSD", "XAUUSD")
        for t in dataset.mt4_ticks(s, lo, hi - 1)  # half-open: a tick at 12:00:00 belongs to the next run
    ]
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT4_TICK, expected)
    assert result["files"][0]["pages"] == 4  # 2 symbols x 2 one-hour slices
    assert_rerun_identical(run_task, op, result, logical_date=HOUR[0], interval=HOUR)


def test_bars_of_the_interval(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    op = ChartBarsOperator(task_id="bars", output_path=landing, symbols=["EURUSD", "USDJPY"], periods="M15,H1")
    result = run_task(op, logical_date=HOUR[0], interval=HOUR)
    tbl = assert_landed(result, MT4_CHART_BAR)
    lo, hi = int(HOUR[0].timestamp()), int(HOUR[1].timestamp())
    expected = [
        {**dataset.mt4_chart_bar(s, p, t, n), "symbol": s, "period": p}
        for s in ("EURUSD", "USDJPY")
        for p in ("M15", "H1")
        for t, n in dataset.chart_bar_times(p, lo, hi - 1)
    ]
    assert len(expected) == 2 * (8 + 2)
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT4_CHART_BAR, expected)
    assert_rerun_identical(run_task, op, result, logical_date=HOUR[0], interval=HOUR)


def test_prices_not_offered_for_mt5_and_symbols_checked(run_task: RunTask, landing: str) -> None:
    for cls in (TickHistoryOperator, ChartBarsOperator):
        with pytest.raises(NotOfferedByApiError):
            run_task(cls(task_id="p5", cplugin_conn_id="cplugin_mt5", output_path=landing, symbols="EURUSD"))
    with pytest.raises(CPluginConfigError, match="symbols"):
        run_task(TickHistoryOperator(task_id="t", output_path=landing, symbols="EURUSD, ../x"))
    with pytest.raises(CPluginConfigError, match="periods"):
        run_task(ChartBarsOperator(task_id="b", output_path=landing, symbols="EURUSD", periods="H2"))


# --------------------------------------------------------------------------- MT5 symbols


def test_mt5_symbols_seen_in_positions(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    result = run_task(Mt5SymbolsSnapshotOperator(task_id="s5", cplugin_conn_id="cplugin_mt5", output_path=landing))
    tbl = assert_landed(result, MT5_SYMBOL)
    seen = sorted({dataset.mt5_position(k)["symbol"] for k in range(dataset.mt5_position_count)})
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(
        MT5_SYMBOL, [dataset.mt5_symbol(SYMBOL_BY_NAME[s]) for s in seen]
    )
    with pytest.raises(CPluginConfigError, match="SymbolsSnapshotOperator"):
        run_task(Mt5SymbolsSnapshotOperator(task_id="s4", output_path=landing))


# --------------------------------------------------------------------------- user changes


def test_user_changes_since_the_interval_start(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    op = UsersChangesOperator(task_id="changes", output_path=landing, read_limit=100)
    result = run_task(op, logical_date=INTERVAL[0], interval=INTERVAL)
    tbl = assert_landed(result, MT4_USER_CHANGE)
    since = int(INTERVAL[0].timestamp())
    modified = [i for i in range(dataset.mt4_user_count) if dataset.mt4_user_last_date(i) >= since]
    assert 0 < len(modified) < dataset.mt4_user_count
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT4_USER_CHANGE, [dataset.mt4_user(i) for i in modified])
    assert_rerun_identical(run_task, op, result, logical_date=INTERVAL[0], interval=INTERVAL)
    with pytest.raises(NotOfferedByApiError):
        run_task(UsersChangesOperator(task_id="c5", cplugin_conn_id="cplugin_mt5", output_path=landing))


# --------------------------------------------------------------------------- integrity


def test_a_repeated_tick_key_with_other_contents_fails_and_lands_nothing(tmp_path: Path) -> None:
    # Ticks share second-precision times: (symbol, time, seq) is the key the landing checks before commit.
    tick = {"symbol": "EURUSD", "time": "2025-12-31T10:00:00Z", "seq": 0, "bid": 1.0, "ask": 1.1}
    target = ObjectStoragePath(f"file://{tmp_path}/ticks.parquet")
    with pytest.raises(DuplicateKeyError, match="mt4_ticks"):
        land_pages([[tick], [{**tick, "bid": 1.2}]], MT4_TICK, target)
    assert list(tmp_path.iterdir()) == []


def test_daily_report_ctm_not_at_local_midnight_is_refused(
    run_task: RunTask, landing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cplugin.operators import daily_reports

    with pytest.raises(daily_reports.CPluginError, match="not a server-local midnight"):
        daily_reports._local_midnight("2025-12-29T22:00:00Z", TZ)
    assert json.dumps(daily_reports._local_midnight("2025-12-30T00:00:00", TZ), default=str)
    assert ANCHOR % DAY == 0
