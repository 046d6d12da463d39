"""MT4 trade history through a sync session, at the edges of its inputs: a server zone that is not whole hours, an
interval outside the int32 session timestamp, no data interval at all, and the session's end spelled ``null``.
Each either lands exactly the generator's trades or fails naming the problem before the session starts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator

from .conftest import RunTask, calls, nothing_landed
from .test_history_incremental import HOUR, LAST_HOUR, rows_of
from .test_trade_history import expected_mt4_trades, landed_trade


@pytest.mark.parametrize("zone", [2.5, "2", True, 15, -13, None])
def test_a_server_zone_that_is_not_whole_hours_fails_before_the_session(
    run_task: RunTask, emu: EmulatorProcess, landing: str, zone: Any
) -> None:
    """Bugs caught: a fractional or text zone truncated/parsed (the session starts at the wrong server-local
    second and trades at the interval's edge are lost); ``True`` taken as UTC+1; an out-of-range zone used."""
    body = json.dumps({"data": {"timeZone": zone}, "error": None, "meta": {"activityId": "a" * 32}})
    emu.set_faults([{"path": "/ManagerCommon$", "status": 200, "body": body}])
    with pytest.raises(CPluginApiError) as caught:
        run_task(TradeHistoryOperator(task_id="h", output_path=landing), LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert caught.value.code == "Internal" and f"timeZone is {zone!r}" in str(caught.value)
    assert calls(emu, "TradesSyncStart") == 0 and nothing_landed(landing)


@pytest.mark.parametrize(
    "start", [datetime(1969, 12, 31, 22, tzinfo=UTC), datetime(2038, 1, 19, 3, tzinfo=UTC)], ids=["pre-epoch", "y2038"]
)
def test_an_interval_outside_the_int32_session_timestamp_is_refused(
    run_task: RunTask, emu: EmulatorProcess, landing: str, start: datetime
) -> None:
    """The session timestamp is int32 server-local seconds of ``start - sync_margin``.

    Bugs caught: a negative or wrapped timestamp sent (the server starts the session at another time and the run
    lands another interval); the check done in UTC instead of server-local seconds (2038-01-19T03:00Z + 2 h is
    past the int32 range).
    """
    with pytest.raises(CPluginConfigError) as caught:
        run_task(TradeHistoryOperator(task_id="h", output_path=landing), start, (start, start + HOUR))
    assert caught.value.field == "interval_start" and "int32" in str(caught.value)
    assert calls(emu, "TradesSyncStart") == 0 and nothing_landed(landing)


def test_no_data_interval_names_interval_start(emu: EmulatorProcess, landing: str) -> None:
    """A run without a data interval (``schedule=None``) and no ``interval_start``/``interval_end``.

    Bug caught: the logical date taken as a one-day interval, or a TypeError from ``None`` (not an error telling
    what to pass).
    """
    context = {"ti": SimpleNamespace(dag_id="d", task_id="h", map_index=-1), "run_id": "manual"}
    with pytest.raises(CPluginConfigError) as caught:
        TradeHistoryOperator(task_id="h", output_path=landing).execute(context)
    assert caught.value.field == "interval_start" and "interval_start/interval_end" in str(caught.value)
    assert calls(emu, "ManagerCommon") == 0 and nothing_landed(landing)


def test_a_session_ending_with_null_instead_of_an_empty_list_lands_everything(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The last ``TradesSyncRead`` answers ``data: null`` where the emulator would answer ``[]``.

    Bugs caught: ``null`` taken for a malformed answer (a complete session failed) or read again (a request the
    drained session answers with nothing new, or a loop).
    """
    start, end = LAST_HOUR - 2 * HOUR, LAST_HOUR - HOUR
    limit = 7
    since = int(start.timestamp()) - 3600  # the default margin: one hour
    changed = (dataset.mt4_closed_count - dataset.mt4_closed_index_at(since)) + (
        dataset.mt4_open_count - dataset.mt4_open_index_at(since)
    )
    full_reads = math.ceil(changed / limit)
    null = json.dumps({"data": None, "error": None, "meta": {"activityId": "b" * 32}})
    emu.set_faults([{"path": "/TradesSyncRead$", "after": full_reads, "status": 200, "body": null}])
    result = run_task(TradeHistoryOperator(task_id="h", output_path=landing, sync_limit=limit), start, (start, end))
    expected = expected_mt4_trades(dataset, start, end)
    assert expected and sorted(rows_of(result), key=lambda r: r["order"]) == [landed_trade(t) for t in expected]
    assert calls(emu, "TradesSyncRead") == full_reads + 1 and emu.stats()["faults"] == []
