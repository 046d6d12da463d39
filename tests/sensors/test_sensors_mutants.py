"""Sensor behaviours a plausible bug would break unseen by tests/sensors/test_sensors.py (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor
from airflow_provider_cplugin.sensors.platform_reachable import PlatformReachableSensor


@pytest.fixture
def conn(emulator: EmulatorProcess, airflow_conn: Any) -> EmulatorProcess:
    airflow_conn("cplugin_default", emulator.connection_json())
    return emulator


def test_a_ping_answering_false_is_not_reachable(conn: EmulatorProcess) -> None:
    conn.set_faults([{"path": "/Ping$", "status": 200, "body": "false", "times": None}])
    try:
        assert PlatformReachableSensor(task_id="up").poke({}) is False
    finally:
        conn.set_faults([])
    assert PlatformReachableSensor(task_id="up").poke({}) is True


def test_settle_is_waited_after_the_interval_end(conn: EmulatorProcess) -> None:
    """The interval ended 30 s ago by the server clock: with one hour of settle it is not complete yet."""
    sensor = HistoryCompleteSensor(task_id="h", settle=timedelta(hours=1))
    ended = datetime.now(UTC) - timedelta(seconds=30)
    context = {"data_interval_end": ended, "ti": SimpleNamespace(dag_id="d", task_id="h", map_index=-1)}
    assert sensor.condition(context).target == (ended + timedelta(hours=1)).isoformat()
    assert sensor.poke(context) is False
    assert HistoryCompleteSensor(task_id="h").poke(context) is True
