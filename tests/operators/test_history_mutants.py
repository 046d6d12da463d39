"""History behaviours a plausible bug would break unseen by the other history tests (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from integrity.support import ANCHOR, PINNED, Landing, connection_json, emulator_for, run_operator

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches
from airflow_provider_cplugin.operators.history_checkpoint import DealCheckpoint, DealScan
from airflow_provider_cplugin.operators.trade_history import SyncSessionError, TradeHistoryOperator

HOUR = timedelta(hours=1)
LAST_HOUR = datetime.fromtimestamp(ANCHOR, UTC) - HOUR


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with emulator_for(PINNED) as process:
        yield process


@pytest.fixture(autouse=True)
def fresh(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.reset()
    clear_token_caches()
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", connection_json(emu))


def _trade(order: int, modified: datetime) -> dict[str, Any]:
    stamp = modified.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"order": order, "login": 1001, "closeTime": stamp, "timeStamp": stamp}


def test_a_foreign_row_after_a_row_of_our_session_fails_the_run(emu: EmulatorProcess, tmp_path: Any) -> None:
    """Every row of a sync page is checked, not only the first: a page may start with rows of our session."""
    page = [_trade(1, LAST_HOUR), _trade(2, LAST_HOUR), _trade(3, datetime(2000, 1, 1, tzinfo=UTC))]
    body = json.dumps({"data": page, "error": None, "meta": {}})
    emu.set_faults([{"path": "TradesSyncRead$", "status": 200, "body": body, "times": 1}])
    landing = Landing(tmp_path / "landing")
    op = TradeHistoryOperator(task_id="history", output_path=landing.url)
    with pytest.raises(SyncSessionError, match=r"answered 1 trades modified before this run's session start"):
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    landing.assert_nothing_landed()


def test_a_sync_read_answering_more_rows_than_the_limit_fails(emu: EmulatorProcess, tmp_path: Any) -> None:
    page = [_trade(n, LAST_HOUR) for n in range(1, 4)]
    body = json.dumps({"data": page, "error": None, "meta": {}})
    emu.set_faults([{"path": "TradesSyncRead$", "status": 200, "body": body, "times": 1}])
    landing = Landing(tmp_path / "landing")
    op = TradeHistoryOperator(task_id="history", output_path=landing.url, sync_limit=2)
    with pytest.raises(SyncSessionError, match=r"TradesSyncRead\?limit=2 answered 3 rows"):
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    landing.assert_nothing_landed()


@pytest.mark.parametrize("answer", [None, "ok", 1, False])
def test_a_sync_start_not_answering_true_fails(emu: EmulatorProcess, tmp_path: Any, answer: Any) -> None:
    body = json.dumps({"data": answer, "error": None, "meta": {}})
    emu.set_faults([{"path": "TradesSyncStart$", "status": 200, "body": body, "times": 1}])
    landing = Landing(tmp_path / "landing")
    op = TradeHistoryOperator(task_id="history", output_path=landing.url)
    with pytest.raises(SyncSessionError, match=r"TradesSyncStart\?timestamp=\d+ answered .*, not true"):
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    landing.assert_nothing_landed()


def test_a_negative_sync_margin_is_refused(emu: EmulatorProcess, tmp_path: Any) -> None:
    landing = Landing(tmp_path / "landing")
    op = TradeHistoryOperator(task_id="history", output_path=landing.url, sync_margin=timedelta(minutes=-5))
    with pytest.raises(CPluginConfigError) as excinfo:
        run_operator(op, LAST_HOUR, (LAST_HOUR, LAST_HOUR + HOUR))
    assert excinfo.value.field == "sync_margin"
    landing.assert_nothing_landed()


def _scan(resume: DealCheckpoint) -> DealScan:
    return DealScan(
        path="/api/v2/MT5/tp/DealByGroup/%2A", limit=10, request=lambda cursor: None, full_scan=lambda: iter(()),
        start=LAST_HOUR, end=LAST_HOUR + HOUR, resume=resume, track=True, log=logging.getLogger(__name__),
    )  # fmt: skip


def test_the_overlap_check_compares_the_time_of_the_checkpoint_deal() -> None:
    checkpoint = DealCheckpoint(
        watermark="2026-01-01T00:00:00Z", cursor="c7", deal=5, time="2026-01-01T00:00:00Z", high=9
    )
    rows = [{"deal": 4, "time": "2025-12-31T23:59:00Z"}, {"deal": 5, "time": "2025-12-31T23:59:30Z"}, {"deal": 6}]
    scan = _scan(checkpoint)
    assert scan._after_overlap(rows, checkpoint) is None
    assert scan.fallback is not None and "deal 5 is now dated '2025-12-31T23:59:30Z'" in scan.fallback
    same_instant = [{"deal": 5, "time": "2026-01-01T00:00:00.000+00:00"}, {"deal": 6}]
    assert _scan(checkpoint)._after_overlap(same_instant, checkpoint) == [{"deal": 6}]
