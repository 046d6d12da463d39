from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from result_shapes import ShapeCheck

from airflow_provider_cplugin.emulator.data import Dataset, wire_instant
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.parquet.schemas import EXTRA_COLUMN, MT4_TRADE_HISTORY, MT5_DEAL, snake_case
from airflow_provider_cplugin.results import SnapshotResult

from .conftest import ANCHOR, RunTask

HOUR = timedelta(hours=1)


def landed_ids(result: dict, column: str) -> list[int]:
    return pq.read_table(result["path"].removeprefix("file://")).column(column).to_pylist()


def expected_mt4_orders(dataset: Dataset, start: datetime, end: datetime) -> set[int]:
    lo, hi = dataset.mt4_closed_index_at(int(start.timestamp())), dataset.mt4_closed_index_at(int(end.timestamp()))
    return {dataset.mt4_closed_trade(i)["order"] for i in range(lo, hi)}


def test_adjacent_intervals_have_no_gap_and_no_overlap(
    run_task: RunTask, dataset: Dataset, landing: str, shape: ShapeCheck
) -> None:
    op = TradeHistoryOperator(task_id="history", output_path=landing, logins_per_request=500)
    t0 = datetime.fromtimestamp(ANCHOR, UTC) - 30 * HOUR
    runs = [run_task(op, t0 + k * 3 * HOUR, (t0 + k * 3 * HOUR, t0 + (k + 1) * 3 * HOUR)) for k in range(3)]
    for result in runs:
        shape(result, SnapshotResult)
    per_run = [set(landed_ids(r, "order")) for r in runs]
    assert all(per_run), "each interval should hold trades"
    assert not (per_run[0] & per_run[1]) and not (per_run[1] & per_run[2])
    assert per_run[0] | per_run[1] | per_run[2] == expected_mt4_orders(dataset, t0, t0 + 9 * HOUR)
    for k, ids in enumerate(per_run):
        assert ids == expected_mt4_orders(dataset, t0 + k * 3 * HOUR, t0 + (k + 1) * 3 * HOUR)
    tbl = pq.read_table(runs[0]["path"].removeprefix("file://"))
    assert tbl.schema.equals(MT4_TRADE_HISTORY.arrow_schema, check_metadata=False)
    assert all(t0 <= t < t0 + 3 * HOUR for t in tbl.column("close_time").to_pylist())
    assert len(set(r["path"] for r in runs)) == 3  # one file per logical date


def test_rerun_of_an_interval_gives_identical_file(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    op = TradeHistoryOperator(task_id="history", output_path=landing)
    t0 = datetime.fromtimestamp(ANCHOR, UTC) - 5 * HOUR
    paths = [run_task(op, t0, (t0, t0 + HOUR))["path"].removeprefix("file://") for _ in range(2)]
    assert paths[0] == paths[1]
    first = Path(paths[0]).read_bytes()
    paths.append(run_task(op, t0, (t0, t0 + HOUR))["path"].removeprefix("file://"))
    assert Path(paths[2]).read_bytes() == first  # same rows, same order, same bytes
    assert len(list(Path(landing.removeprefix("file://")).rglob("*.parquet"))) == 1
    rows = pq.read_table(paths[0]).to_pylist()
    orders = [r["order"] for r in rows]
    assert len(orders) == len(set(orders))
    expected = expected_mt4_trades(dataset, t0, t0 + HOUR)
    assert expected, "the hour should hold trades"
    assert sorted(rows, key=lambda r: r["order"]) == [landed_trade(t) for t in expected]


def expected_mt4_trades(dataset: Dataset, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The generator's closed trades with ``start <= closeTime < end``, ticket ascending."""
    lo, hi = dataset.mt4_closed_index_at(int(start.timestamp())), dataset.mt4_closed_index_at(int(end.timestamp()))
    return [dataset.mt4_closed_trade(i) for i in range(lo, hi)]


def landed_trade(trade: dict[str, Any]) -> dict[str, Any]:
    """A generator trade as it reads back from the Parquet file (snake_case columns, UTC datetimes)."""
    landed: dict[str, Any] = {snake_case(name): trade.get(name) for name in MT4_TRADE_HISTORY.wire_names}
    for name, dtype in MT4_TRADE_HISTORY.fields:
        if pa.types.is_timestamp(dtype) and trade.get(name) is not None:
            landed[snake_case(name)] = wire_instant(trade[name])
    landed[EXTRA_COLUMN] = None
    return landed


def test_interval_includes_its_start_and_excludes_its_end(
    run_task: RunTask, snapshot_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    # Bounds taken from the generator: trade i0 closes exactly at the start, trade i1 exactly at the end.
    i0 = dataset.mt4_closed_index_at(ANCHOR - 30 * 3600)
    i1 = i0 + 25
    start = datetime.fromtimestamp(dataset.mt4_closed_time(i0), UTC)
    end = datetime.fromtimestamp(dataset.mt4_closed_time(i1), UTC)
    owners = {dataset.mt4_trade_owner(i) for i in range(i0 - 1, i1 + 1)}
    logins = sorted(dataset.mt4_login(u) for u in owners)
    served = [dataset.mt4_closed_trade(i) for i in range(i0 - 1, i1 + 1)]  # one trade either side of [i0, i1)
    expected = [landed_trade(t) for t in served[1:-1]]
    op = TradeHistoryOperator(task_id="bounds", output_path=landing, logins=logins)

    rows = pq.read_table(run_task(op, start, (start, end))["path"].removeprefix("file://")).to_pylist()
    assert rows == expected  # ticket order, the trade closing at `start` in, the one closing at `end` out
    assert rows[0]["close_time"] == start and all(r["close_time"] < end for r in rows)

    # A server that treats both bounds as inclusive (and serves one trade more before `from`) changes nothing:
    # the operator keeps the half-open interval itself.
    body = json.dumps({"data": served, "error": None, "meta": {"activityId": "e" * 32}})
    snapshot_emulator.set_faults([{"path": "ReportsRequest$", "status": 200, "body": body, "times": 1}])
    try:
        rerun = pq.read_table(run_task(op, start, (start, end))["path"].removeprefix("file://")).to_pylist()
    finally:
        snapshot_emulator.set_faults([])
    assert rerun == expected


def test_mt5_deals_by_interval(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    op = TradeHistoryOperator(task_id="deals", cplugin_conn_id="cplugin_mt5", output_path=landing, page_size=500)
    t0 = datetime.fromtimestamp(ANCHOR, UTC) - 48 * HOUR
    a = run_task(op, t0, (t0, t0 + 24 * HOUR))
    b = run_task(op, t0 + 24 * HOUR, (t0 + 24 * HOUR, t0 + 48 * HOUR))
    expected = {
        dataset.mt5_deal(k)["deal"]
        for k in range(dataset.mt5_deal_count)
        if t0.timestamp() <= dataset.mt5_deal_time(k) < (t0 + 48 * HOUR).timestamp()
    }
    got_a, got_b = set(landed_ids(a, "deal")), set(landed_ids(b, "deal"))
    assert got_a and got_b and not (got_a & got_b) and got_a | got_b == expected
    assert pq.read_table(a["path"].removeprefix("file://")).schema.equals(MT5_DEAL.arrow_schema, check_metadata=False)


def test_empty_interval_is_a_clear_error(run_task: RunTask, landing: str) -> None:
    t0 = datetime.fromtimestamp(ANCHOR, UTC)
    with pytest.raises(CPluginConfigError, match=r"interval_end.*empty interval"):
        run_task(TradeHistoryOperator(task_id="h", output_path=landing), t0, (t0, t0))
