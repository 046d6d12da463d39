from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred
from result_shapes import shape_problems

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError, CPluginError
from airflow_provider_cplugin.results import ConditionEvent
from airflow_provider_cplugin.sensors.conditions import Condition
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor
from airflow_provider_cplugin.sensors.platform_reachable import PlatformReachableSensor
from airflow_provider_cplugin.triggers.condition import ConditionTrigger


@pytest.fixture
def conn(emulator: EmulatorProcess, airflow_conn: Any) -> EmulatorProcess:
    airflow_conn("cplugin_default", emulator.connection_json())
    return emulator


def context(end: datetime) -> dict[str, Any]:
    return {"data_interval_end": end, "ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1)}


def test_platform_reachable_pokes_true_and_waits_on_no_connect(conn: EmulatorProcess) -> None:
    sensor = PlatformReachableSensor(task_id="up")
    assert sensor.poke({}) is True
    conn.set_faults([{"path": "/Ping$", "envelope_error": {"code": "NoConnect", "message": "pump down"}}])
    try:
        assert sensor.poke({}) is False
    finally:
        conn.set_faults([])


def test_unknown_platform_fails_instead_of_waiting(conn: EmulatorProcess) -> None:
    sensor = PlatformReachableSensor(
        task_id="up", trade_platform="00000000-0000-0000-0000-000000000000", platform_type="MT4"
    )
    with pytest.raises(CPluginApiError):
        sensor.poke({})


def test_history_complete_uses_the_server_clock(conn: EmulatorProcess) -> None:
    sensor = HistoryCompleteSensor(task_id="h", settle=timedelta(minutes=1))
    now = datetime.now(UTC)
    assert sensor.poke(context(now - timedelta(minutes=5))) is True
    assert sensor.poke(context(now + timedelta(hours=1))) is False


def test_history_complete_without_data_interval_names_target(conn: EmulatorProcess) -> None:
    """A run without a data interval (e.g. a manual run of an unscheduled DAG) needs ``target``."""
    sensor = HistoryCompleteSensor(task_id="h")
    with pytest.raises(CPluginConfigError, match="target"):
        sensor.poke({"data_interval_end": None, "ti": SimpleNamespace(dag_id="d", task_id="t", map_index=-1)})


def test_deferral_serializes_no_secret(conn: EmulatorProcess) -> None:
    sensor = HistoryCompleteSensor(task_id="h", deferrable=True, poke_interval=1, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context(datetime.now(UTC) + timedelta(hours=1)))
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_cplugin.triggers.condition.ConditionTrigger"
    text = json.dumps(kwargs)
    assert conn.client_secret not in text and "Bearer" not in text and "password" not in text
    assert kwargs["cplugin_conn_id"] == "cplugin_default"
    assert deferred.value.method_name == "execute_complete"


async def first_event(trigger: ConditionTrigger) -> dict[str, Any]:
    """The trigger's first event, checked to have exactly ConditionEvent's keys."""

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            assert not shape_problems(event.payload, ConditionEvent)
            return event.payload
        raise AssertionError("no event")

    return await asyncio.wait_for(first(), timeout=30)


async def test_trigger_fires_when_the_server_clock_passes(conn: EmulatorProcess) -> None:
    target = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    condition = {"name": "server_time_after", "trade_platform": conn.mt4_trade_platform, "target": target}
    started = asyncio.get_running_loop().time()
    event = await first_event(ConditionTrigger("cplugin_default", condition, poke_interval=0.5))
    assert event["status"] == "success"
    assert asyncio.get_running_loop().time() - started >= 1.0  # it did wait for the clock


async def test_trigger_times_out_and_reports_errors(conn: EmulatorProcess) -> None:
    future = {"name": "server_time_after", "trade_platform": conn.mt4_trade_platform, "target": "2999-01-01T00:00:00Z"}
    trigger = ConditionTrigger("cplugin_default", future, poke_interval=0.2, deadline=time.time() + 0.5)
    assert (await first_event(trigger))["status"] == "timeout"
    # A trigger re-created (triggerer restart) after its deadline does not start a fresh time box.
    _, kwargs = trigger.serialize()
    assert (await first_event(ConditionTrigger(**kwargs)))["status"] == "timeout"
    unknown = {"name": "platform_reachable", "trade_platform": "00000000-0000-0000-0000-000000000000"}
    event = await first_event(ConditionTrigger("cplugin_default", unknown, poke_interval=0.2))
    assert event["status"] == "error" and "NotFound" in event["message"]


def test_execute_complete_raises_on_timeout_and_error() -> None:
    sensor = PlatformReachableSensor(task_id="up", trade_platform="x", platform_type="MT4")
    sensor.execute_complete({}, {"status": "success", "message": "ok"})
    with pytest.raises(AirflowSensorTimeout, match="timed out"):  # no retries, like a poking sensor
        sensor.execute_complete({}, {"status": "timeout", "message": "still down"})
    with pytest.raises(AirflowException, match="error: NotFound") as excinfo:
        sensor.execute_complete({}, {"status": "error", "message": "NotFound: no such platform"})
    assert not isinstance(excinfo.value, AirflowSensorTimeout)  # an error may be retried


@pytest.mark.parametrize(
    ("platform_type", "zone", "server_time"),
    [
        ("MT4", {"timeZone": 2}, "2026-01-02T05:00:00"),
        ("MT5", {"timeZone": 120}, "2026-01-02T05:00:00.0000000"),
        ("MT4", None, "2026-01-02T03:00:00Z"),
        ("MT5", None, "2026-01-02T06:30:00+03:30"),
    ],
)
def test_server_time_is_judged_in_the_platform_zone(platform_type: str, zone: Any, server_time: str) -> None:
    """Every case is 03:00:00Z on the server; the target is met at exactly that instant and not a second later."""
    at = Condition("server_time_after", "tp", platform_type, "2026-01-02T03:00:00+00:00")
    later = Condition("server_time_after", "tp", platform_type, "2026-01-02T03:00:01+00:00")
    assert at.needs_zone(server_time) is (zone is not None)
    assert at.judge(server_time, zone).met is True
    assert later.judge(server_time, zone).met is False
    assert at.zone_path().endswith("/ManagerCommon" if platform_type == "MT4" else "/TimeGet")


def test_a_malformed_server_time_is_a_clear_error() -> None:
    condition = Condition("server_time_after", "tp", "MT4", "2026-01-02T03:00:00+00:00")
    for data in (None, 1767225600, "soon"):
        with pytest.raises(CPluginError, match="ServerTime answered"):
            condition.judge(data)
