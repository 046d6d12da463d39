"""Integrity matrix, incremental history: a trades sync session another consumer took over or whose answer was
lost, and MT5 deal checkpoints the server no longer honours. Each either lands exactly the generator's rows for the
interval or fails with nothing landed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from airflow_provider_cplugin.emulator.data import MT5_DEAL_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators.trade_history import SyncSessionError, TradeHistoryOperator

from .support import ANCHOR, PINNED, Landing, connection_json, emulator_for, requests_to, run_operator

HOUR = timedelta(hours=1)
LAST_HOUR = datetime.fromtimestamp(ANCHOR, UTC) - HOUR
AREA = "incremental history"


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with emulator_for(PINNED) as process:
        yield process


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(PINNED)


@pytest.fixture(autouse=True)
def fresh(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.reset()
    clear_token_caches()
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", connection_json(emu))
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_MT5", connection_json(emu, emu.mt5_trade_platform))


@pytest.fixture
def landing(tmp_path: Any) -> Landing:
    return Landing(tmp_path / "landing")


def deals_in(ds: Dataset, start: datetime, end: datetime) -> list[int]:
    lo, hi = start.timestamp(), end.timestamp()
    return [MT5_DEAL_BASE + k for k in range(ds.mt5_deal_count) if lo <= ds.mt5_deal_time(k) < hi]


def landed_deals(result: dict[str, Any]) -> list[int]:
    return pq.read_table(result["path"].removeprefix("file://")).column("deal").to_pylist()


@pytest.mark.matrix(
    area=AREA,
    fault="trades sync session replaced by another consumer's earlier TradesSyncStart",
    expected="error naming the foreign rows, nothing landed",
)
def test_foreign_sync_session_fails_the_run(emu: EmulatorProcess, landing: Landing) -> None:
    # Another consumer's session (everything since 1970) is current, and our start does not take effect:
    # the reads drain their session.
    hook = CPluginWebApiHook()
    hook.request("POST", hook.v2_path("TradesSyncStart"), params={"timestamp": 1})
    emu.set_faults([{"path": "TradesSyncStart$", "status": 200, "body": json.dumps({"data": True, "error": None})}])
    op = TradeHistoryOperator(task_id="history", output_path=landing.url)
    with pytest.raises(SyncSessionError, match=r"modified before this run's session start"):
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    landing.assert_nothing_landed()


@pytest.mark.matrix(
    area=AREA,
    fault="TradesSyncRead answer lost (connection dropped)",
    expected="no retry (it would skip drained rows), error, nothing landed",
)
def test_lost_sync_read_is_never_retried(emu: EmulatorProcess, landing: Landing) -> None:
    emu.set_faults([{"path": "TradesSyncRead$", "drop": True, "times": 1}])
    op = TradeHistoryOperator(task_id="history", output_path=landing.url)
    with pytest.raises(CPluginApiError):
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert requests_to(emu, "TradesSyncRead") == 1
    landing.assert_nothing_landed()


def _checkpointed(ds: Dataset, landing: Landing) -> TradeHistoryOperator:
    op = TradeHistoryOperator(task_id="deals", cplugin_conn_id="cplugin_mt5", output_path=landing.url, page_size=200)
    first = LAST_HOUR - HOUR
    assert landed_deals(run_operator(op, first, (first, LAST_HOUR))) == deals_in(ds, first, LAST_HOUR)
    return op


def _fallback_lands_exactly(emu: EmulatorProcess, ds: Dataset, op: TradeHistoryOperator, reason: str) -> None:
    with capture_logs() as logs:
        result = run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert landed_deals(result) == deals_in(ds, LAST_HOUR, LAST_HOUR + HOUR)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning" and "DealByGroup" in e["event"]]
    assert len(warnings) == 1 and "scanning all deals" in warnings[0] and reason in warnings[0], warnings
    full = -(-ds.mt5_deal_count // 200)
    assert requests_to(emu, "DealByGroup") == 1 + full  # the refused/mismatched resume, then the full scan


@pytest.mark.matrix(
    area=AREA,
    fault="DealByGroup refuses the saved checkpoint cursor",
    expected="one warning, full scan, exactly the interval's deals",
)
def test_refused_checkpoint_cursor_falls_back_to_a_full_scan(
    emu: EmulatorProcess, ds: Dataset, landing: Landing
) -> None:
    op = _checkpointed(ds, landing)
    emu.reset()
    error = {"code": "Validation", "message": "Invalid cursor"}
    emu.set_faults([{"path": "DealByGroup", "envelope_error": error, "times": 1}])
    _fallback_lands_exactly(emu, ds, op, "refused the saved cursor")


@pytest.mark.matrix(
    area=AREA,
    fault="checkpoint deal missing at its cursor (gap in the deal sequence)",
    expected="one warning, full scan, exactly the interval's deals",
)
def test_checkpoint_overlap_mismatch_falls_back_to_a_full_scan(
    emu: EmulatorProcess, ds: Dataset, landing: Landing
) -> None:
    op = _checkpointed(ds, landing)
    emu.reset()
    # The page at the saved cursor starts after the checkpoint's deal: deals were removed or the cursor moved.
    checkpoint = max(k for k in range(ds.mt5_deal_count) if ds.mt5_deal_time(k) < LAST_HOUR.timestamp())
    gap = {"data": [ds.mt5_deal(k) for k in range(checkpoint + 1, ds.mt5_deal_count)], "error": None,
           "meta": {"activityId": "f" * 32, "paging": {"nextCursor": None, "hasMore": False}}}  # fmt: skip
    emu.set_faults([{"path": "DealByGroup", "status": 200, "body": json.dumps(gap), "times": 1}])
    _fallback_lands_exactly(emu, ds, op, "does not hold deal")
