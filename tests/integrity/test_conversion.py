"""Integrity matrix, conversion and sensors: lossy values are refused naming entity and field, .NET's unset
datetime lands null, MT5 ``*Msc`` epochs land as millisecond timestamps, our own emulator causes no drift warning on
any entity the demo lands, and ``HistoryCompleteSensor`` reads an offset-less ServerTime in the platform's zone.

Truth is the emulator's generators (``emulator/data.py``) and its fixed fault bodies, never the code's own summary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

from airflow_provider_cplugin.emulator.data import MT5_LOGIN_BASE, Dataset, Row
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator
from airflow_provider_cplugin.operators.margin_levels import MarginLevelsSnapshotOperator
from airflow_provider_cplugin.operators.online_users import OnlineUsersSnapshotOperator
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.symbols import SymbolsSnapshotOperator
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter, SchemaDriftError
from airflow_provider_cplugin.parquet.schemas import MSC, MT4_USER, TS, EntitySchema
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor
from airflow_provider_cplugin.triggers.condition import ConditionTrigger

from .fixtures_conversion import (  # noqa: F401 (fixtures)
    ANCHOR,
    LOCAL_TZ_HOURS,
    RunTask,
    define_connections,
    fixture_conversion_dataset,
    fixture_conversion_emulator,
    fixture_conversion_landing,
    fixture_conversion_run_task,
    fixture_local_time_emulator,
)

CONVERSION = "Conversion"
SENSORS = "Sensors"


def user(**fields: Any) -> dict[str, Any]:
    return {"login": 10_001, "group": "real", "balance": 10.0, "leverage": 100, "name": "A", **fields}


# --------------------------------------------------------------------------- lossy numbers


@pytest.mark.matrix(
    area=CONVERSION, fault='non-finite float ("1e400", inf, NaN)', expected="SchemaDriftError naming entity.field"
)
@pytest.mark.parametrize("value", ["1e400", "-1e400", "inf", "nan", "Infinity", float("inf"), float("nan")])
@pytest.mark.parametrize("path", ["fast", "slow"])
def test_a_non_finite_float_is_refused(value: Any, path: str) -> None:
    # "slow": another field's drift sends the whole page through the per-column path.
    other = {"name": 42} if path == "slow" else {}
    page = [user(), user(login=10_002, balance=value, **other)]
    with pytest.raises(SchemaDriftError, match=r"^mt4_users\.balance: value .* \(row 1\) is not a finite number"):
        RecordBatchConverter(MT4_USER).convert(page)


@pytest.mark.matrix(
    area=CONVERSION,
    fault="integer beyond int64 (JSON int, text, decoded float)",
    expected="SchemaDriftError naming entity.field, not OverflowError",
)
@pytest.mark.parametrize(
    "value", [2**70, 2**63, -(2**63) - 1, "1180591620717411303424", "9223372036854775808", 1.2e21, 2.0**63]
)
@pytest.mark.parametrize("field", ["leverage", "login"])
@pytest.mark.parametrize("path", ["fast", "slow"])
def test_an_integer_beyond_int64_is_refused(value: Any, field: str, path: str) -> None:
    other = {"name": 42} if path == "slow" else {}
    page = [user(), user(**{field: value}, **other)]
    with pytest.raises(SchemaDriftError, match=rf"^mt4_users\.{field}: value .* does not fit int64"):
        RecordBatchConverter(MT4_USER).convert(page)


@pytest.mark.matrix(area=CONVERSION, fault="integers at the int64 limits", expected="landed exactly")
def test_the_int64_limits_land_exactly() -> None:
    page = [
        user(login=2**63 - 1, leverage=-(2**63)),
        user(login="-9223372036854775808", leverage="9223372036854775807"),
    ]
    batch = RecordBatchConverter(MT4_USER).convert(page)
    assert batch.column("login").to_pylist() == [2**63 - 1, -(2**63)]
    assert batch.column("leverage").to_pylist() == [-(2**63), 2**63 - 1]


# --------------------------------------------------------------------------- datetimes


@pytest.mark.matrix(
    area=CONVERSION,
    fault="users snapshot with .NET DateTime.MinValue (unset) times",
    expected="lands null, every other value exactly",
)
def test_dotnet_min_datetime_lands_null_in_a_users_snapshot(
    conversion_run_task: RunTask,
    conversion_emulator: EmulatorProcess,
    conversion_dataset: Dataset,
    conversion_landing: str,
) -> None:
    served = [conversion_dataset.mt4_user(i) for i in range(4)]
    served[1]["lastDate"] = "0001-01-01T00:00:00"
    served[2]["lastDate"] = "0001-01-01T00:00:00.0000000Z"
    served[3]["registrationDate"] = "0001-01-01T00:00:00+00:00"
    body = json.dumps({"data": served, "error": None, "meta": {"activityId": "c" * 32, "paging": None}})
    conversion_emulator.set_faults([{"path": "/UsersRequest$", "status": 200, "body": body, "times": 1}])
    try:
        result = conversion_run_task(UsersSnapshotOperator(task_id="users", output_path=conversion_landing))
    finally:
        conversion_emulator.set_faults([])
    rows = pq.read_table(result["path"].removeprefix("file://")).to_pylist()
    assert [r["login"] for r in rows] == [u["login"] for u in served]
    assert [r["last_date"] for r in rows] == [
        iso_utc(served[0]["lastDate"]),
        None,
        None,
        iso_utc(served[3]["lastDate"]),
    ]
    assert rows[3]["registration_date"] is None and rows[0]["registration_date"] == iso_utc(
        served[0]["registrationDate"]
    )
    assert [r["balance"] for r in rows] == [u["balance"] for u in served]


@pytest.mark.matrix(
    area=CONVERSION, fault="unset (.NET minimum) datetime in a key", expected="SchemaDriftError naming entity.field"
)
def test_an_unset_datetime_key_stays_an_error() -> None:
    keyed = EntitySchema(name="ticks", fields=(("time", TS), ("bid", pa.float64())), key=("time",))
    with pytest.raises(SchemaDriftError, match=r"^ticks\.time: 1 record\(s\) have an unset"):
        RecordBatchConverter(keyed).convert([{"time": "2026-01-01T00:00:00Z"}, {"time": "0001-01-01T00:00:00"}])


@pytest.mark.matrix(
    area=CONVERSION,
    fault="datetimes without offset, 7 fractional digits, far years",
    expected="parsed as UTC (REST models), truncated to µs",
)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.1234567", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("9999-12-31T23:59:59.9999999", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("1601-01-01T00:00:00Z", datetime(1601, 1, 1, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_datetimes_without_offset_are_utc(text: str, expected: datetime) -> None:
    # A page mixing an ordinary value with the odd one: the odd one must not push the ordinary one off.
    page = [user(lastDate="2026-01-01T00:00:00Z"), user(login=10_002, lastDate=text)]
    assert RecordBatchConverter(MT4_USER).convert(page).column("last_date").to_pylist() == [
        datetime(2026, 1, 1, tzinfo=UTC),
        expected,
    ]


@pytest.mark.matrix(
    area=CONVERSION,
    fault="MT5 *Msc millisecond epochs sent as strings",
    expected="land as timestamp[ms, UTC] equal to the epoch",
)
def test_mt5_msc_fields_land_as_millisecond_timestamps(
    conversion_run_task: RunTask, conversion_dataset: Dataset, conversion_landing: str
) -> None:
    ds = conversion_dataset
    orders = conversion_run_task(
        OpenOrdersSnapshotOperator(task_id="open5", cplugin_conn_id="cplugin_mt5", output_path=conversion_landing)
    )
    deals = conversion_run_task(
        TradeHistoryOperator(task_id="deals", cplugin_conn_id="cplugin_mt5", output_path=conversion_landing)
    )
    tables = {f["entity"]: read(f["path"]) for result in (orders, deals) for f in result["files"]}
    truth: dict[str, tuple[str, list[Row]]] = {
        "mt5_positions": ("position", [ds.mt5_position(k) for k in range(ds.mt5_position_count)]),
        "mt5_orders": ("order", [ds.mt5_order(k) for k in range(ds.mt5_order_count)]),
    }
    window = (ANCHOR - 86_400, ANCHOR)
    truth["mt5_deals"] = (
        "deal",
        [ds.mt5_deal(k) for k in range(ds.mt5_deal_count) if window[0] <= ds.mt5_deal_time(k) < window[1]],
    )
    checked = 0
    for entity, (key, rows) in truth.items():
        table = tables[entity]
        assert table.num_rows == len(rows) > 0, entity
        msc_fields = [f for f in table.schema if f.type == MSC]
        assert msc_fields, entity
        landed = {r[key]: r for r in table.to_pylist()}
        for row in rows:
            for field in msc_fields:
                wire = field.metadata[b"wire_name"].decode()
                expected = datetime.fromtimestamp(int(row[wire]) / 1000, UTC)
                assert landed[row[key]][field.name] == expected, (entity, wire)
                checked += 1
    assert checked > 0
    # Typed per the SDK (mT5Order.d.ts: numbers) and equal to what was served.
    order_rows = {r["order"]: r for r in tables["mt5_orders"].to_pylist()}
    assert tables["mt5_orders"].schema.field("modification_flags").type == pa.int64()
    for k in range(ds.mt5_order_count):
        served = ds.mt5_order(k)
        assert order_rows[served["order"]]["modification_flags"] == served["modificationFlags"]
        assert order_rows[served["order"]]["party_id"] == served["partyID"]


# --------------------------------------------------------------------------- no drift against our own emulator


def _mt5_users(ds: Dataset) -> UsersSnapshotOperator:
    logins = [MT5_LOGIN_BASE + i for i in range(ds.mt5_user_count)]
    return UsersSnapshotOperator(task_id="mt5_users", cplugin_conn_id="cplugin_mt5", logins=logins)


DEMO_LANDINGS: dict[str, tuple[Callable[[Dataset], BaseSnapshotOperator], Callable[[Dataset], dict[str, int]]]] = {
    "mt4_users": (lambda ds: UsersSnapshotOperator(task_id="t"), lambda ds: {"mt4_users": ds.mt4_user_count}),
    "mt4_open_trades": (
        lambda ds: OpenOrdersSnapshotOperator(task_id="t"),
        lambda ds: {"mt4_open_trades": ds.mt4_open_count},
    ),
    "mt4_margin_levels": (
        lambda ds: MarginLevelsSnapshotOperator(task_id="t"),
        lambda ds: {"mt4_margin_levels": sum(ds.mt4_margin_level(u) is not None for u in range(ds.mt4_user_count))},
    ),
    "mt4_symbols": (lambda ds: SymbolsSnapshotOperator(task_id="t"), lambda ds: {"mt4_symbols": -1}),
    "mt4_online": (
        lambda ds: OnlineUsersSnapshotOperator(task_id="t"),
        lambda ds: {"mt4_online": sum(ds.mt4_is_online(i) for i in range(ds.mt4_user_count))},
    ),
    "mt4_trade_history": (
        lambda ds: TradeHistoryOperator(task_id="t"),
        lambda ds: {"mt4_trade_history": ds.mt4_closed_index_at(ANCHOR) - ds.mt4_closed_index_at(ANCHOR - 86_400)},
    ),
    "mt5_orders_and_positions": (
        lambda ds: OpenOrdersSnapshotOperator(task_id="t", cplugin_conn_id="cplugin_mt5", group_mask="*"),
        lambda ds: {"mt5_positions": ds.mt5_position_count, "mt5_orders": ds.mt5_order_count},
    ),
    "mt5_deals": (
        lambda ds: TradeHistoryOperator(task_id="t", cplugin_conn_id="cplugin_mt5"),
        lambda ds: {
            "mt5_deals": sum(ANCHOR - 86_400 <= ds.mt5_deal_time(k) < ANCHOR for k in range(ds.mt5_deal_count))
        },
    ),
    "mt5_users": (_mt5_users, lambda ds: {"mt5_users": ds.mt5_user_count}),
}


@pytest.mark.matrix(
    area=CONVERSION,
    fault="our own emulator's answers (every entity the demo lands)",
    expected="zero drift warnings, every row landed",
)
@pytest.mark.parametrize("landing_name", sorted(DEMO_LANDINGS))
def test_the_emulator_causes_no_drift_warning(
    landing_name: str,
    conversion_run_task: RunTask,
    conversion_dataset: Dataset,
    conversion_landing: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make, expected_rows = DEMO_LANDINGS[landing_name]
    op = make(conversion_dataset)
    op.output_path = conversion_landing
    with caplog.at_level(logging.WARNING, logger="airflow_provider_cplugin"):
        result = conversion_run_task(op)
    landed = {f["entity"]: f["rows"] for f in result["files"]}
    for entity, rows in expected_rows(conversion_dataset).items():
        assert landed[entity] == rows if rows >= 0 else landed[entity] > 0, entity
    drift = [
        r.getMessage() for r in caplog.records if "coerced" in r.getMessage() or "not in the schema" in r.getMessage()
    ]
    assert drift == []


# --------------------------------------------------------------------------- HistoryCompleteSensor and the zone


def sensor_context(end: datetime) -> dict[str, Any]:
    return {"data_interval_end": end, "ti": None}


def fixed_server_time(emu: EmulatorProcess, text: str) -> None:
    body = json.dumps({"data": text, "error": None, "meta": {"activityId": "d" * 32}})
    emu.set_faults([{"path": "/ServerTime$", "status": 200, "body": body, "times": None}])


@pytest.mark.matrix(
    area=SENSORS,
    fault="ServerTime in server-local time without offset (boundary)",
    expected="fires at exactly interval end + settle, not 1 s before",
)
@pytest.mark.parametrize("conn_id", ["cplugin_default", "cplugin_mt5"], ids=["MT4", "MT5"])
def test_history_complete_reads_an_offset_less_server_time_in_the_platform_zone(
    conn_id: str, local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_connections(local_time_emulator, monkeypatch)
    # Server-local 08:00:00 at UTC+5 (ManagerCommon.timeZone 5 h, TimeGet.timeZone 300 min) is 03:00:00Z.
    fixed_server_time(local_time_emulator, "2026-01-02T08:00:00")
    settle = timedelta(minutes=10)
    at_boundary = datetime(2026, 1, 2, 3, 0, tzinfo=UTC) - settle
    sensor = HistoryCompleteSensor(task_id="h", cplugin_conn_id=conn_id, settle=settle)
    try:
        assert sensor.poke(sensor_context(at_boundary)) is True  # server time == target: >=, not >
        assert sensor.poke(sensor_context(at_boundary + timedelta(seconds=1))) is False
        # Read as UTC, 08:00 would pass a target 4 h later: the early firing this guards against.
        assert sensor.poke(sensor_context(at_boundary + timedelta(hours=4))) is False
    finally:
        local_time_emulator.set_faults([])
    assert LOCAL_TZ_HOURS == 5


@pytest.mark.matrix(
    area=SENSORS,
    fault="server-local ServerTime from the live clock (emulator --server-time-local)",
    expected="sensor and trigger wait; fire once the UTC target passed",
)
async def test_history_complete_never_fires_early_on_a_server_local_clock(
    local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_connections(local_time_emulator, monkeypatch)
    now = datetime.now(UTC)
    sensor = HistoryCompleteSensor(task_id="h")
    assert sensor.poke(sensor_context(now + timedelta(hours=1))) is False  # naive-as-UTC would see now + 5 h
    assert sensor.poke(sensor_context(now - timedelta(minutes=1))) is True
    platform = local_time_emulator.mt4_trade_platform
    ahead = {"name": "server_time_after", "trade_platform": platform, "target": (now + timedelta(hours=1)).isoformat()}
    trigger = ConditionTrigger("cplugin_default", ahead, poke_interval=0.2, deadline=time.time() + 0.6)
    assert (await first_event(trigger))["status"] == "timeout"
    passed = {**ahead, "target": (now - timedelta(minutes=1)).isoformat()}
    trigger = ConditionTrigger("cplugin_default", passed, poke_interval=0.2, deadline=time.time() + 10)
    assert (await first_event(trigger))["status"] == "success"


@pytest.mark.matrix(area=SENSORS, fault="platform time zone missing or malformed", expected="clear error, never fires")
@pytest.mark.parametrize("common", [{"name": "x"}, {"timeZone": "+5"}, {"timeZone": 300}])
def test_an_unusable_zone_is_an_error(
    common: dict[str, Any], local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_connections(local_time_emulator, monkeypatch)
    body = json.dumps({"data": common, "error": None, "meta": {"activityId": "e" * 32}})
    local_time_emulator.set_faults([{"path": "/ManagerCommon$", "status": 200, "body": body, "times": None}])
    try:
        with pytest.raises(CPluginError, match=r"ManagerCommon .*timeZone .* hours"):
            HistoryCompleteSensor(task_id="h").poke(sensor_context(datetime(2000, 1, 1, tzinfo=UTC)))
    finally:
        local_time_emulator.set_faults([])


@pytest.mark.matrix(
    area=SENSORS,
    fault="network failure (Transport) on ServerTime",
    expected="not ready: poke False, trigger keeps waiting",
)
async def test_a_transport_error_means_not_ready(
    local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_connections(local_time_emulator, monkeypatch, max_attempts=1)
    local_time_emulator.set_faults([{"path": "/ServerTime$", "drop": True, "times": None}])
    try:
        past = datetime(2000, 1, 1, tzinfo=UTC)  # met as soon as the server answers
        assert HistoryCompleteSensor(task_id="h").poke(sensor_context(past)) is False
        condition = {
            "name": "server_time_after",
            "trade_platform": local_time_emulator.mt4_trade_platform,
            "target": past.isoformat(),
        }
        trigger = ConditionTrigger("cplugin_default", condition, poke_interval=0.1, deadline=time.time() + 0.5)
        event = await first_event(trigger)
        assert event["status"] == "timeout" and "Transport" in event["message"]
    finally:
        local_time_emulator.set_faults([])
    assert HistoryCompleteSensor(task_id="h").poke(sensor_context(past)) is True


@pytest.mark.matrix(area=SENSORS, fault="sensor times out with soft_fail", expected="task skipped (poke and deferred)")
def test_soft_fail_skips_on_timeout(local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    define_connections(local_time_emulator, monkeypatch)
    future = sensor_context(datetime(2999, 1, 1, tzinfo=UTC))
    poking = HistoryCompleteSensor(task_id="h", soft_fail=True, timeout=0, poke_interval=0, mode="poke")
    with pytest.raises(AirflowSkipException):
        poking.execute(future)
    deferring = HistoryCompleteSensor(task_id="h", soft_fail=True, deferrable=True, timeout=60)
    with pytest.raises(AirflowSkipException):
        deferring.resume_execution("execute_complete", {"event": {"status": "timeout", "message": "late"}}, future)


@pytest.mark.matrix(
    area=SENSORS,
    fault="deferral, then triggerer restart",
    expected="trigger gets an absolute deadline = defer time + timeout",
)
def test_the_trigger_gets_an_absolute_deadline(
    local_time_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    define_connections(local_time_emulator, monkeypatch)
    sensor = HistoryCompleteSensor(task_id="h", deferrable=True, timeout=600, poke_interval=5)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(sensor_context(datetime(2999, 1, 1, tzinfo=UTC)))
    after = time.time()
    _, kwargs = deferred.value.trigger.serialize()
    assert before + 600 <= kwargs["deadline"] <= after + 600  # a wall-clock instant, not a duration
    assert ConditionTrigger(**kwargs).deadline == kwargs["deadline"]  # survives re-creation unchanged


# --------------------------------------------------------------------------- helpers


async def first_event(trigger: ConditionTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        payload: dict[str, Any] = event.payload
        return payload
    raise AssertionError("no event")


def read(path: str) -> pa.Table:
    return pq.read_table(path.removeprefix("file://"))


def iso_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
