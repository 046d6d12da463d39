"""Fixtures of tests/integrity/test_conversion.py (kept out of the shared conftest): emulators with pinned data, the
Airflow connections to them, and a helper running an operator with the context fields it reads."""

from __future__ import annotations

import json
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
CONFIG = EmulatorConfig(seed=5, mt4_users=800, mt5_users=300, anchor=ANCHOR)
LOCAL_TZ_HOURS = 5
"""Zone of the emulator that sends ServerTime in server-local time without offset (far from UTC on purpose)."""

RunTask = Callable[..., Any]


@pytest.fixture(name="conversion_emulator", scope="module")
def fixture_conversion_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(seed=CONFIG.seed, users=CONFIG.mt4_users, mt5_users=CONFIG.mt5_users, anchor=ANCHOR) as emu:
        yield emu


@pytest.fixture(name="conversion_dataset", scope="module")
def fixture_conversion_dataset() -> Dataset:
    return Dataset(CONFIG)


@pytest.fixture(name="local_time_emulator", scope="module")
def fixture_local_time_emulator() -> Iterator[EmulatorProcess]:
    """ServerTime in server-local time (UTC+5) without an offset: what a naive-as-UTC reading gets 5 h wrong."""
    with EmulatorProcess(
        seed=3, users=10, mt5_users=10, tz_offset=LOCAL_TZ_HOURS, extra_args=("--server-time-local",)
    ) as emu:
        yield emu


def define_connections(emu: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, **extras: Any) -> EmulatorProcess:
    """``cplugin_default`` → the MT4 platform, ``cplugin_mt5`` → the MT5 platform; ``extras`` go into both."""
    for conn_id, platform in (("CPLUGIN_DEFAULT", emu.mt4_trade_platform), ("CPLUGIN_MT5", emu.mt5_trade_platform)):
        conn = json.loads(emu.connection_json(platform))
        conn["extra"].update(extras)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(conn))
    return emu


@pytest.fixture(name="conversion_run_task")
def fixture_conversion_run_task(conversion_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> RunTask:
    """Execute an operator against ``conversion_emulator`` for the last day of its generated history."""
    define_connections(conversion_emulator, monkeypatch)

    def run(op: Any) -> Any:
        end = datetime.fromtimestamp(ANCHOR, tz=UTC)
        start = end - timedelta(days=1)
        context = {
            "ti": SimpleNamespace(dag_id="integrity", task_id=op.task_id, map_index=-1),
            "logical_date": start,
            "data_interval_start": start,
            "data_interval_end": end,
            "run_id": f"integrity__{start.isoformat()}",
        }
        return op.execute(context)

    return run


@pytest.fixture(name="conversion_landing")
def fixture_conversion_landing(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'landing'}"
