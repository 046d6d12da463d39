"""Sensor decisions the other sensor tests leave out: a deferrable sensor whose condition already holds, an
explicit target, and a condition that cannot be judged (an error, never a guess)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.sensors.conditions import Condition
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor


@pytest.fixture
def conn(emulator: EmulatorProcess, airflow_conn: Any) -> EmulatorProcess:
    airflow_conn("cplugin_default", emulator.connection_json())
    return emulator


def server_time_calls(emu: EmulatorProcess) -> int:
    return sum(n for route, n in emu.stats()["requests"].items() if route.endswith("/ServerTime"))


def test_a_deferrable_sensor_whose_condition_holds_finishes_without_deferring(conn: EmulatorProcess) -> None:
    """The interval ended an hour ago by the server clock: ``execute`` asks the server once and returns.

    Bug caught: a deferrable sensor deferring anyway (a trigger started, a triggerer round trip for nothing), or
    returning without asking the server at all.
    """
    sensor = HistoryCompleteSensor(task_id="h", deferrable=True, poke_interval=1, timeout=60)
    ended = datetime.now(UTC) - timedelta(hours=1)
    before = server_time_calls(conn)
    assert sensor.execute({"data_interval_end": ended, "ti": SimpleNamespace(dag_id="d", task_id="h")}) is None
    assert server_time_calls(conn) == before + 1


def test_an_explicit_target_wins_over_the_data_interval(conn: EmulatorProcess) -> None:
    """``target`` is used as given, with no data interval needed; the server clock decides at that instant.

    Bugs caught: the target ignored for ``data_interval_end + settle`` (a KeyError without a data interval, or the
    wrong instant); ``settle`` added to an explicit target.
    """
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    done = HistoryCompleteSensor(task_id="h", target=past, settle=timedelta(hours=2))
    assert done.condition({}).target == past
    assert done.poke({}) is True
    assert HistoryCompleteSensor(task_id="h", target=future).poke({}) is False


def test_a_condition_that_cannot_be_judged_raises() -> None:
    """Bugs caught: a server-time condition without a target judged met (or not met) instead of refused; an
    offset-less server time read as UTC when the platform's zone is unknown (off by the zone's hours)."""
    with pytest.raises(ValueError, match="needs a target"):
        Condition("server_time_after", "tp", "MT4", None).judge("2026-01-02T03:00:00Z")
    at = Condition("server_time_after", "tp", "MT4", "2026-01-02T03:00:00+00:00")
    with pytest.raises(ValueError, match="needs the platform's time zone"):
        at.judge("2026-01-02T05:00:00", None)
    assert at.judge("2026-01-02T05:00:00", {"timeZone": 2}).met is True  # the same reading, with its zone
