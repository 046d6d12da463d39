"""Operators run against their own emulator process with pinned data, and compared with its generators."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess

ANCHOR = 1_767_225_600  # 2026-01-01T00:00:00Z
CONFIG = EmulatorConfig(seed=7, mt4_users=3000, mt5_users=400, anchor=ANCHOR)


@pytest.fixture(scope="package")
def snapshot_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(seed=CONFIG.seed, users=CONFIG.mt4_users, mt5_users=CONFIG.mt5_users, anchor=ANCHOR) as emu:
        yield emu


@pytest.fixture(scope="package")
def dataset() -> Dataset:
    return Dataset(CONFIG)


@pytest.fixture
def connections(snapshot_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """``cplugin_default`` → the MT4 platform, ``cplugin_mt5`` → the MT5 platform."""
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", snapshot_emulator.connection_json())
    monkeypatch.setenv(
        "AIRFLOW_CONN_CPLUGIN_MT5", snapshot_emulator.connection_json(snapshot_emulator.mt5_trade_platform)
    )
    return snapshot_emulator


RunTask = Callable[..., dict[str, Any]]


@pytest.fixture
def emu(connections: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The package's emulator, reset before the test and without faults after it."""
    connections.reset()
    yield connections
    connections.set_faults([])


def calls(emu: EmulatorProcess, method: str) -> int:
    """Requests the emulator served for an API method (its stats: the truth of what a run cost)."""
    pattern = re.compile(rf"/{re.escape(method)}(/|$)")
    return sum(n for route, n in emu.stats()["requests"].items() if pattern.search(route))


def nothing_landed(landing: str) -> bool:
    return not list(Path(landing.removeprefix("file://")).rglob("*.parquet"))


@pytest.fixture
def run_task(connections: EmulatorProcess, tmp_path: Path) -> RunTask:
    """Execute an operator with the context fields it reads, landing under ``tmp_path``."""

    def run(op: Any, logical_date: datetime | None = None, interval: tuple[datetime, datetime] | None = None) -> Any:
        logical_date = logical_date or datetime(2025, 12, 31, tzinfo=UTC)
        start, end = interval or (logical_date, logical_date + timedelta(days=1))
        context = {
            "ti": SimpleNamespace(dag_id="tests", task_id=op.task_id, map_index=-1),
            "logical_date": logical_date,
            "data_interval_start": start,
            "data_interval_end": end,
            "run_id": f"test__{logical_date.isoformat()}",
        }
        return op.execute(context)

    return run


@pytest.fixture
def landing(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'landing'}"
