"""History at a cost that follows the new rows: MT4 through one trades sync session per run, MT5 deals resumed
from checkpoints. Every landing is compared with the emulator's generators, every cost with its request counts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from airflow_provider_cplugin.emulator.data import MT5_DEAL_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.history_checkpoint import DealCheckpoint
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator

from .conftest import ANCHOR, CONFIG, RunTask, calls
from .test_trade_history import expected_mt4_trades, landed_trade

HOUR = timedelta(hours=1)
LAST_HOUR = datetime.fromtimestamp(ANCHOR, UTC) - HOUR


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return pq.read_table(result["path"].removeprefix("file://")).to_pylist()


def expected_deals(ds: Dataset, start: datetime, end: datetime) -> list[int]:
    return [
        MT5_DEAL_BASE + k
        for k in range(ds.mt5_deal_count)
        if start.timestamp() <= ds.mt5_deal_time(k) < end.timestamp()
    ]


def deals_op(landing: str, **kwargs: Any) -> TradeHistoryOperator:
    return TradeHistoryOperator(
        task_id="deals", cplugin_conn_id="cplugin_mt5", output_path=landing, page_size=200, **kwargs
    )


def checkpoint_file(landing: str) -> Path:
    root = Path(landing.removeprefix("file://")) / "_checkpoints" / "entity=mt5_deals"
    (found,) = root.rglob("*.json")
    return found


def saved(landing: str) -> list[DealCheckpoint]:
    return [DealCheckpoint.from_dict(c) for c in json.loads(checkpoint_file(landing).read_text())["checkpoints"]]


# ---------------------------------------------------------------------------------------------- MT4 sync


@pytest.fixture
def fresh_emulator(snapshot_emulator: EmulatorProcess) -> EmulatorProcess:
    snapshot_emulator.reset()
    return snapshot_emulator


def test_mt4_sync_session_lands_the_interval_in_3_plus_reads_calls(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    start, end = LAST_HOUR - 2 * HOUR, LAST_HOUR - HOUR
    limit = 7
    op = TradeHistoryOperator(task_id="history", output_path=landing, sync_limit=limit)
    result = run_task(op, start, (start, end))

    expected = expected_mt4_trades(dataset, start, end)
    assert expected, "the hour should hold trades"
    assert sorted(rows_of(result), key=lambda r: r["order"]) == [landed_trade(t) for t in expected]
    # Truth of what the session holds: trades modified since start - 1 h (closed by close time, open by open time).
    since = int(start.timestamp()) - 3600
    changed = (dataset.mt4_closed_count - dataset.mt4_closed_index_at(since)) + (
        dataset.mt4_open_count - dataset.mt4_open_index_at(since)
    )
    reads = calls(fresh_emulator, "TradesSyncRead")
    assert reads == math.ceil(changed / limit) + 1  # the last read answers []
    total = calls(fresh_emulator, "ManagerCommon") + calls(fresh_emulator, "TradesSyncStart") + reads
    assert total == 3 + math.ceil(changed / limit)
    v2 = {route: n for route, n in fresh_emulator.stats()["requests"].items() if "/api/v2/" in route}
    assert sum(v2.values()) == total, v2  # no UsersRequest, no ReportsRequest


def test_mt4_sync_and_reports_land_the_same_rows(
    run_task: RunTask, fresh_emulator: EmulatorProcess, landing: str
) -> None:
    start = LAST_HOUR - 30 * HOUR
    sync = rows_of(run_task(TradeHistoryOperator(task_id="a", output_path=landing), start, (start, start + HOUR)))
    reports = TradeHistoryOperator(task_id="b", output_path=landing, method="reports", logins_per_request=500)
    fresh_emulator.reset()
    old = rows_of(run_task(reports, start, (start, start + HOUR)))
    assert (
        calls(fresh_emulator, "ReportsRequest") == CONFIG.mt4_users // 500
        and calls(fresh_emulator, "TradesSyncStart") == 0
    )
    assert sorted(sync, key=lambda r: r["order"]) == sorted(old, key=lambda r: r["order"]) and sync


def test_mt4_sync_start_is_server_local(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The session starts at the interval start minus the margin, in the server's zone (emulator: UTC+2, from
    ManagerCommon): one row per read counts exactly the rows the session held, so a start taken as UTC (two hours
    early) or shifted the wrong way shows as a different count."""
    assert CONFIG.server_tz_offset_hours == 2
    start = LAST_HOUR - 5 * HOUR
    op = TradeHistoryOperator(task_id="h", output_path=landing, sync_margin=timedelta(0), sync_limit=1)
    rows = rows_of(run_task(op, start, (start, start + HOUR)))
    assert [r["order"] for r in rows] == [t["order"] for t in expected_mt4_trades(dataset, start, start + HOUR)]
    since = int(start.timestamp())
    held = (dataset.mt4_closed_count - dataset.mt4_closed_index_at(since)) + (
        dataset.mt4_open_count - dataset.mt4_open_index_at(since)
    )
    assert calls(fresh_emulator, "TradesSyncRead") == held + 1


def test_mt4_sync_refuses_explicit_logins_and_bad_arguments(run_task: RunTask, landing: str) -> None:
    t0 = LAST_HOUR
    with pytest.raises(CPluginConfigError, match=r"logins.*method='reports'"):
        run_task(
            TradeHistoryOperator(task_id="h", output_path=landing, method="sync", logins=[1001]), t0, (t0, t0 + HOUR)
        )
    with pytest.raises(CPluginConfigError, match=r"method.*must be one of"):
        run_task(TradeHistoryOperator(task_id="h", output_path=landing, method="rest"), t0, (t0, t0 + HOUR))
    with pytest.raises(CPluginConfigError, match=r"sync_limit"):
        run_task(TradeHistoryOperator(task_id="h", output_path=landing, sync_limit=0), t0, (t0, t0 + HOUR))
    assert not list(Path(landing.removeprefix("file://")).rglob("*.parquet"))


def test_runs_of_the_task_are_serialized_by_default() -> None:
    assert TradeHistoryOperator(task_id="h").max_active_tis_per_dag == 1
    assert TradeHistoryOperator(task_id="h", max_active_tis_per_dag=4, pool="p").max_active_tis_per_dag == 4


# ---------------------------------------------------------------------------------------------- MT5 deals


def test_mt5_incremental_run_after_run_reads_only_the_new_deals(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    op = deals_op(landing)
    full_pages = math.ceil(dataset.mt5_deal_count / 200)
    first = LAST_HOUR - 3 * HOUR
    result = run_task(op, first, (first, first + HOUR))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, first, first + HOUR)
    assert calls(fresh_emulator, "DealByGroup") == full_pages  # no checkpoint yet: a full scan
    for k in range(1, 4):
        start = first + k * HOUR
        (checkpoint,) = [c for c in saved(landing) if c.watermark_at == start]
        new = MT5_DEAL_BASE + dataset.mt5_deal_count - 1 - checkpoint.deal  # deals after the checkpoint, by id
        fresh_emulator.reset()
        result = run_task(op, start, (start, start + HOUR))
        assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, start + HOUR)
        pages = calls(fresh_emulator, "DealByGroup")
        assert pages <= math.ceil(new / 200) + 2 and pages < full_pages
    # The checkpoint ends the id-ordered prefix of deals dated before the watermark: the last deal of the hour.
    last = saved(landing)[-1]
    assert last.deal == expected_deals(dataset, first, first + 4 * HOUR)[-1]


def test_mt5_backfill_of_an_old_interval_lands_its_deals(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    op = deals_op(landing)
    recent = LAST_HOUR - HOUR
    run_task(op, recent, (recent, recent + HOUR))
    old = LAST_HOUR - 40 * HOUR  # before every checkpoint: a full scan, and its own checkpoint
    result = run_task(op, old, (old, old + HOUR))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, old, old + HOUR)
    assert [c.watermark_at for c in saved(landing)] == [old + HOUR, recent + HOUR]
    fresh_emulator.reset()
    nxt = old + HOUR  # resumes from the backfill's checkpoint, not from the later one
    result = run_task(op, nxt, (nxt, nxt + HOUR))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, nxt, nxt + HOUR)
    assert calls(fresh_emulator, "DealByGroup") < math.ceil(dataset.mt5_deal_count / 200)


def test_mt5_non_incremental_scans_everything_and_keeps_no_checkpoint(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    op = deals_op(landing, incremental=False)
    for start in (LAST_HOUR - HOUR, LAST_HOUR):
        fresh_emulator.reset()
        result = run_task(op, start, (start, start + HOUR))
        assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, start + HOUR)
        assert calls(fresh_emulator, "DealByGroup") == math.ceil(dataset.mt5_deal_count / 200)
    assert not (Path(landing.removeprefix("file://")) / "_checkpoints").exists()


def test_mt5_unreadable_checkpoint_is_a_warning_and_a_full_scan(
    run_task: RunTask, dataset: Dataset, landing: str
) -> None:
    op = deals_op(landing)
    start = LAST_HOUR - HOUR
    run_task(op, start, (start, start + HOUR))
    checkpoint_file(landing).write_text("{not json")
    with capture_logs() as logs:
        result = run_task(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, LAST_HOUR, LAST_HOUR + HOUR)
    assert [e["log_level"] for e in logs if "unreadable deal checkpoints" in e["event"]] == ["warning"]
    assert [c.watermark_at for c in saved(landing)] == [LAST_HOUR + HOUR]


class FakeAssetStore:
    """``context["asset_state_store"]``: one accessor per outlet asset, each a small key-value store."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.values: dict[str, Any] = {}

    def __getitem__(self, asset: Any) -> FakeAssetStore:
        if asset.uri != self.uri:
            raise KeyError(asset)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))  # what the state store keeps is JSON


def test_mt5_checkpoints_go_to_the_asset_state_store_when_airflow_has_one(
    run_task: RunTask, fresh_emulator: EmulatorProcess, dataset: Dataset, landing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = deals_op(landing)
    (asset,) = [a for a in op.inlets if a.uri.endswith("entity=mt5_deals")]
    store = FakeAssetStore(asset.uri)
    original = op.execute
    monkeypatch.setattr(op, "execute", lambda context: original({**context, "asset_state_store": store}))
    start = LAST_HOUR - HOUR
    run_task(op, start, (start, start + HOUR))
    (key,) = store.values
    assert key == f"cplugin.deal_checkpoints.{fresh_emulator.mt5_trade_platform.lower()}.*"
    assert not (Path(landing.removeprefix("file://")) / "_checkpoints").exists()
    fresh_emulator.reset()
    result = run_task(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, LAST_HOUR, LAST_HOUR + HOUR)
    assert calls(fresh_emulator, "DealByGroup") <= 3
