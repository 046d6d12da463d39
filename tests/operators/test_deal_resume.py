"""MT5 deals resumed from a checkpoint file written by hand: each case's landing is exactly the generator's deals of
the interval, and what the scan did (requests, first cursor, warnings, the checkpoint kept) is read from the
emulator and the files, never from the operator's own summary.

The emulator serves 2000 deals, ids ``MT5_DEAL_BASE + k``, dated in id order, 200 per page (10 pages).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_provider_cplugin.emulator.data import MT5_DEAL_BASE, Dataset
from airflow_provider_cplugin.emulator.envelope import encode_cursor
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.operators.history_checkpoint import CHECKPOINT_VERSION

from .conftest import RunTask, calls
from .test_history_incremental import deals_op, expected_deals, rows_of

PAGE = 200
PAGES = 10


def at(dataset: Dataset, k: int) -> datetime:
    return datetime.fromtimestamp(dataset.mt5_deal_time(k), UTC)


def checkpoint(dataset: Dataset, watermark: datetime, cursor_after: int | None, k: int, high: int) -> dict[str, Any]:
    """A checkpoint as a run would write it: page cursor (the deal index it follows), deal ``k`` and its time."""
    return {
        "watermark": watermark.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "cursor": None if cursor_after is None else encode_cursor(MT5_DEAL_BASE + cursor_after),
        "deal": MT5_DEAL_BASE + k,
        "time": dataset.mt5_deal(k)["time"],
        "high": MT5_DEAL_BASE + high,
    }


def write_checkpoints(landing: str, emu: EmulatorProcess, payload: Any) -> Path:
    folder = Path(landing.removeprefix("file://")) / "_checkpoints" / "entity=mt5_deals"
    path = folder / f"trade_platform={emu.mt5_trade_platform.lower()}" / "group_mask=%2A.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))
    return path


def warnings_of(logs: Sequence[Mapping[str, Any]], text: str) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == "warning" and text in e["event"]]


def test_a_checkpoint_on_the_first_page_resumes_without_a_cursor(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Deal 50 ends the prefix before ``start``; the interval ends exactly at deal 400 (the first row of page 3).

    Bugs caught: a ``cursor=None`` sent as the text ``None`` (or the resume refused and a full scan done); the
    resumed scan stopping after its first page; deal 400 (dated at ``end``) landed; the next checkpoint not
    ending at the last deal before ``end`` when that deal closes a page.
    """
    start, end = at(dataset, 51), at(dataset, 400)
    write_checkpoints(
        landing, emu, {"version": CHECKPOINT_VERSION, "checkpoints": [checkpoint(dataset, start, None, 50, 50)]}
    )
    with capture_logs() as logs:
        result = run_task(deals_op(landing), start, (start, end))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, end)
    assert [r["deal"] for r in rows_of(result)] == [MT5_DEAL_BASE + k for k in range(51, 400)]
    assert calls(emu, "DealByGroup") == PAGES  # resumed at the first page: every page once
    assert any("DealByGroup: incremental read" in e["event"] for e in logs)
    assert not warnings_of(logs, "DealByGroup")
    saved = json.loads(next(Path(landing.removeprefix("file://")).rglob("group_mask=*.json")).read_text())
    newest = saved["checkpoints"][-1]
    assert newest["deal"] == MT5_DEAL_BASE + 399 and newest["cursor"] == encode_cursor(MT5_DEAL_BASE + 199)
    assert newest["high"] == MT5_DEAL_BASE + 1999


def test_deals_dated_before_the_start_but_newer_than_the_checkpoint_are_reported_late(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The checkpoint's run saw ids up to deal 1500 only; deals 1501..m (m the last before ``start``) are dated
    before this run's start, so they arrived after the run that covered their time.

    Bugs caught: late deals not reported (lost silently), reported with a wrong count, or landed in this
    interval.
    """
    m = 1700
    start, end = at(dataset, m + 1), at(dataset, m + 1) + timedelta(hours=12)
    cp = checkpoint(dataset, start, 1499, 1500, 1500)  # the page starting at deal 1500 (page 8)
    write_checkpoints(landing, emu, {"version": CHECKPOINT_VERSION, "checkpoints": [cp]})
    with capture_logs() as logs:
        result = run_task(deals_op(landing), start, (start, end))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, end)
    late = sum(1 for k in range(1501, dataset.mt5_deal_count) if at(dataset, k) < start)
    assert late == m - 1500
    assert [w.split(" deals", 1)[0] for w in warnings_of(logs, "arrived after the run")] == [str(late)]
    assert calls(emu, "DealByGroup") == 3  # pages 8, 9, 10: resumed, not a full scan


def test_a_cursor_that_moved_falls_back_to_a_full_scan(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The saved cursor now serves a page starting after the checkpoint's deal (a gap, or the cursor moved).

    Bugs caught: the page trusted anyway (deals between the checkpoint and the page lost); no warning; the
    fallback not a full scan.
    """
    start = at(dataset, 1001)
    end = start + timedelta(hours=24)
    cp = checkpoint(dataset, start, 1000, 1000, 1000)  # the page after the cursor starts at deal 1001, not 1000
    write_checkpoints(landing, emu, {"version": CHECKPOINT_VERSION, "checkpoints": [cp]})
    with capture_logs() as logs:
        result = run_task(deals_op(landing), start, (start, end))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, end)
    (warning,) = warnings_of(logs, "cannot resume")
    assert f"does not hold deal {MT5_DEAL_BASE + 1000}" in warning and f"deal {MT5_DEAL_BASE + 1001}" in warning
    assert calls(emu, "DealByGroup") == 1 + PAGES


def test_a_checkpoint_of_another_version_is_ignored_with_a_warning(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Bug caught: a checkpoint file of another format version trusted (its fields may mean something else)."""
    start = at(dataset, 1001)
    end = start + timedelta(hours=24)
    cp = checkpoint(dataset, start, 999, 1000, 1000)
    write_checkpoints(landing, emu, {"version": CHECKPOINT_VERSION + 1, "checkpoints": [cp]})
    with capture_logs() as logs:
        result = run_task(deals_op(landing), start, (start, end))
    assert [r["deal"] for r in rows_of(result)] == expected_deals(dataset, start, end)
    assert len(warnings_of(logs, "unreadable deal checkpoints at")) == 1
    assert any(f"version {CHECKPOINT_VERSION + 1}" in w for w in warnings_of(logs, "unreadable"))
    assert calls(emu, "DealByGroup") == PAGES


def test_a_resume_request_failing_otherwise_fails_the_run_and_keeps_the_checkpoint(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Only a refused cursor falls back to a full scan; a Manager outage at the resumed page fails the task.

    Bugs caught: every error taken for a refused cursor (a 10-page scan against a failing server); the
    checkpoint file rewritten or removed by a failed run; a partial file landed.
    """
    start = at(dataset, 1001)
    cp = checkpoint(dataset, start, 999, 1000, 1000)
    path = write_checkpoints(landing, emu, {"version": CHECKPOINT_VERSION, "checkpoints": [cp]})
    before = path.read_bytes()
    emu.set_faults([{"path": "/DealByGroup/", "envelope_error": {"code": "NoConnect", "message": "manager down"}}])
    with pytest.raises(CPluginApiError) as caught:
        run_task(deals_op(landing), start, (start, start + timedelta(hours=1)))
    assert caught.value.code == "NoConnect"
    assert calls(emu, "DealByGroup") == 1 and emu.stats()["faults"] == []
    assert path.read_bytes() == before
    assert not list(Path(landing.removeprefix("file://")).rglob("*.parquet"))
    assert "DealByGroup" in str(caught.value)
