"""Operator arguments as users write them (templated text, ISO times with offsets) and the daily-report edges:
each reads as meant or fails naming the argument before any data request; every landing equals the generators."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError, CPluginError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.daily_reports import DailyReportsOperator
from airflow_provider_cplugin.operators.dataset_support import run_interval, server_tz_hours, symbols
from airflow_provider_cplugin.operators.price_history import TickHistoryOperator
from airflow_provider_cplugin.parquet.schemas import MT4_DAILY_REPORT

from .conftest import RunTask, calls, nothing_landed
from .test_datasets import INTERVAL, assert_landed, expected_daily


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00+02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        (" 2026-01-01T10:00:00Z ", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T10:00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),  # naive text is UTC
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_text_is_read_in_utc(text: str, expected: datetime) -> None:
    """Bug caught: the offset dropped (10:00+02:00 read as 10:00Z: two hours of history shifted)."""
    assert arguments.moment(text, "interval_start") == expected


@pytest.mark.parametrize("value", ["P1D", "10:00", "", "   ", 1767225600, None, "next tuesday"])
def test_a_moment_that_is_not_a_point_in_time_names_the_argument(value: Any) -> None:
    """Bugs caught: a duration or a time of day (pendulum parses both) used as an interval bound; epoch seconds
    taken without a unit."""
    with pytest.raises(CPluginConfigError) as caught:
        arguments.moment(value, "interval_end")
    assert caught.value.field == "interval_end"


@pytest.mark.parametrize("value", [{"1001": True}, 1001, 10.5])
def test_logins_that_are_not_a_list_or_text_are_refused(value: Any) -> None:
    """Bug caught: a dict's keys or a bare number accepted (a typo'd template lands another account set)."""
    with pytest.raises(CPluginConfigError) as caught:
        arguments.logins(value)
    assert caught.value.field == "logins" and "must be a list of login numbers" in str(caught.value)


def test_run_interval_overrides_and_errors() -> None:
    """Bugs caught: an override ignored for the DAG's interval; an empty or missing interval landing nothing
    quietly (or everything)."""
    context = {"data_interval_start": INTERVAL[0], "data_interval_end": INTERVAL[1]}
    assert run_interval(context) == INTERVAL
    assert run_interval(context, "2025-12-30T06:00:00+01:00") == (datetime(2025, 12, 30, 5, tzinfo=UTC), INTERVAL[1])
    with pytest.raises(CPluginConfigError) as caught:
        run_interval({})
    assert caught.value.field == "interval_start"
    with pytest.raises(CPluginConfigError) as caught:
        run_interval(context, end=INTERVAL[0])
    assert caught.value.field == "interval_end" and "empty interval" in str(caught.value)


def test_symbols_from_text_lists_or_nothing() -> None:
    """Bugs caught: order or duplicates changed (files differ between reruns); a set (unordered) accepted; no
    symbols given where they are optional read as an error, or where required as "every symbol"."""
    assert symbols("['EURUSD', 'XAUUSD', 'EURUSD']") == ["EURUSD", "XAUUSD"]
    assert symbols(("XAUUSD", " EURUSD")) == ["XAUUSD", "EURUSD"]
    assert symbols([], required=False) == [] and symbols(None, required=False) == []
    for bad, problem in (("", "give at least one symbol"), ({"EURUSD"}, "must be a list"), (["EUR USD"], "not a")):
        with pytest.raises(CPluginConfigError) as caught:
            symbols(bad)
        assert caught.value.field == "symbols" and problem in str(caught.value)


def test_ticks_need_symbols_before_any_request(run_task: RunTask, emu: EmulatorProcess, landing: str) -> None:
    with pytest.raises(CPluginConfigError) as caught:
        run_task(TickHistoryOperator(task_id="t", output_path=landing, symbols=""))
    assert caught.value.field == "symbols"
    assert calls(emu, "TickHistory") == 0 and nothing_landed(landing)


@pytest.mark.parametrize("zone", [2.5, "2", True, -13, None])
def test_a_server_zone_that_is_not_whole_hours_is_an_error(emu: EmulatorProcess, zone: Any) -> None:
    """Bug caught: daily reports and ticks placed in a zone truncated from 2.5 or parsed from text."""
    body = json.dumps({"data": {"timeZone": zone}, "error": None, "meta": {"activityId": "a" * 32}})
    emu.set_faults([{"path": "/ManagerCommon$", "status": 200, "body": body}])
    with CPluginWebApiHook() as hook, pytest.raises(CPluginError, match="not a whole number of hours"):
        server_tz_hours(hook, emu.mt4_trade_platform)
    with CPluginWebApiHook() as hook:
        assert server_tz_hours(hook, emu.mt4_trade_platform) == 2  # the emulator's zone, once the fault is used


def test_daily_reports_by_sync_for_every_login(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """A sync without ``logins`` keeps every login's report of the day (and no UsersRequest is needed).

    Bug caught: the login filter applied with an empty set (nothing landed) or the users listed anyway.
    """
    op = DailyReportsOperator(task_id="sync_all", output_path=landing, source="sync")
    result = run_task(op, logical_date=INTERVAL[0], interval=INTERVAL)
    tbl = assert_landed(result, MT4_DAILY_REPORT)
    assert tbl.drop_columns(["_extra"]).to_pylist() == expected_daily(dataset, range(3000), date(2025, 12, 30))
    assert calls(emu, "UsersRequest") == 0 and calls(emu, "DailySyncRead") == 1


def test_an_interval_holding_no_trading_day_end_requests_no_report(
    run_task: RunTask, emu: EmulatorProcess, landing: str
) -> None:
    """An hour that ends no trading day (server UTC+2: days end at 22:00Z) lands no rows and asks nothing.

    Bug caught: the day of the interval requested anyway (adjacent hourly runs then land it 24 times).
    """
    hour = (datetime(2025, 12, 30, 10, tzinfo=UTC), datetime(2025, 12, 30, 11, tzinfo=UTC))
    result = run_task(DailyReportsOperator(task_id="none", output_path=landing), logical_date=hour[0], interval=hour)
    assert result["rows"] == 0
    assert calls(emu, "DailyReportsRequest") == 0 and calls(emu, "UsersRequest") == 0
