"""Sensor behaviours a plausible bug would break unseen by tests/sensors/test_sensors.py (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
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
