from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.io import attach
from fsspec.implementations.memory import MemoryFileSystem
from result_shapes import ShapeCheck

from airflow_provider_cplugin.emulator.data import SYMBOLS, Dataset, wire_instant
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.operators.base_snapshot import NotOfferedByApiError
from airflow_provider_cplugin.operators.margin_levels import MarginLevelsSnapshotOperator
from airflow_provider_cplugin.operators.online_users import OnlineUsersSnapshotOperator
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.symbols import SymbolsSnapshotOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.operators.webapi import WebApiCallOperator
from airflow_provider_cplugin.parquet.convert import SchemaDriftError
from airflow_provider_cplugin.parquet.schemas import (
    EXTRA_COLUMN,
    MT4_MARGIN_LEVEL,
    MT4_ONLINE,
    MT4_OPEN_TRADE,
    MT4_SYMBOL,
    MT4_USER,
    MT5_ORDER,
    MT5_POSITION,
    MT5_USER,
    EntitySchema,
    snake_case,
)
from airflow_provider_cplugin.results import SnapshotResult

from .conftest import RunTask


def table(path: str) -> pa.Table:
    return pq.read_table(path.removeprefix("file://"))


def assert_typed(tbl: pa.Table, entity: EntitySchema) -> None:
    assert tbl.schema.equals(entity.arrow_schema, check_metadata=False)


def test_users_snapshot_lands_every_user_typed(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    result = run_task(UsersSnapshotOperator(task_id="users", output_path=landing, page_size=700))
    assert result["rows"] == dataset.mt4_user_count == 3000
    assert result["platform_type"] == "MT4" and result["files"][0]["pages"] == 5
    tbl = table(result["path"])
    assert_typed(tbl, MT4_USER)
    assert tbl.column("login").to_pylist() == [dataset.mt4_login(i) for i in range(3000)]
    expected = dataset.mt4_user(1234)
    row = tbl.slice(1234, 1).to_pylist()[0]
    assert (row["name"], row["group"], row["balance"], row["leverage"]) == (
        expected["name"],
        expected["group"],
        expected["balance"],
        expected["leverage"],
    )
    assert row["registration_date"] == wire_instant(expected["registrationDate"])
    assert "/entity=mt4_users/trade_platform=" in result["path"] and "/date=2025-12-31/" in result["path"]
    assert json.loads(json.dumps(result)) == result  # XCom-safe, small


def test_rerun_replaces_with_identical_file(run_task: RunTask, landing: str) -> None:
    op = UsersSnapshotOperator(task_id="users", output_path=landing)
    first = run_task(op)
    content = Path(first["path"].removeprefix("file://")).read_bytes()
    second = run_task(op)
    assert second["path"] == first["path"]
    assert Path(second["path"].removeprefix("file://")).read_bytes() == content
    assert len(list(Path(landing.removeprefix("file://")).rglob("*.parquet"))) == 1


def test_one_partition_per_platform_whatever_the_guid_case(
    run_task: RunTask, snapshot_emulator: EmulatorProcess, landing: str
) -> None:
    tp = snapshot_emulator.mt4_trade_platform
    paths = [
        run_task(UsersSnapshotOperator(task_id="users", output_path=landing, trade_platform=spelling))["path"]
        for spelling in (tp.lower(), tp.upper())
    ]
    assert paths[0] == paths[1] and f"trade_platform={tp.lower()}/" in paths[0]  # the rerun replaced the file


def test_users_by_logins_and_group_mask(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    wanted = [dataset.mt4_login(i) for i in (5, 17, 2999)] + [99_999_999]  # the last one does not exist
    result = run_task(UsersSnapshotOperator(task_id="some", output_path=landing, logins=",".join(map(str, wanted))))
    assert table(result["path"]).column("login").to_pylist() == wanted[:3]

    group = dataset.mt4_user(0)["group"]
    result = run_task(UsersSnapshotOperator(task_id="group", output_path=landing, group_mask=f"{group[:3]}*"))
    expected = [dataset.mt4_login(i) for i in range(3000) if dataset.mt4_user(i)["group"].startswith(group[:3])]
    assert 0 < result["rows"] < 3000
    assert table(result["path"]).column("login").to_pylist() == expected

    # MetaTrader syntax: case-insensitive, ``!`` excludes.
    mask = f"*,!{group[:3].upper()}*"
    result = run_task(UsersSnapshotOperator(task_id="excluded", output_path=landing, group_mask=mask))
    kept = table(result["path"]).column("login").to_pylist()
    assert kept == [dataset.mt4_login(i) for i in range(3000) if not dataset.mt4_user(i)["group"].startswith(group[:3])]


def test_mt5_users_need_logins(run_task: RunTask, snapshot_emulator: EmulatorProcess, landing: str) -> None:
    dataset_logins = [r["login"] for r in _mt5_users(snapshot_emulator, 3)]
    op = UsersSnapshotOperator(task_id="mt5", cplugin_conn_id="cplugin_mt5", output_path=landing, logins=dataset_logins)
    result = run_task(op)
    assert result["platform_type"] == "MT5"
    tbl = table(result["path"])
    assert_typed(tbl, MT5_USER)
    assert tbl.column("login").to_pylist() == sorted(dataset_logins)
    with pytest.raises(NotOfferedByApiError, match="no user list"):
        run_task(UsersSnapshotOperator(task_id="mt5_all", cplugin_conn_id="cplugin_mt5", output_path=landing))


def _mt5_users(emulator: EmulatorProcess, count: int) -> list[dict[str, object]]:
    from airflow_provider_cplugin.emulator.config import EmulatorConfig

    data = Dataset(EmulatorConfig(seed=7, mt4_users=3000, mt5_users=400, anchor=emulator.anchor))
    return [data.mt5_user(i) for i in range(count)]


def test_open_orders_mt4_and_mt5(run_task: RunTask, dataset: Dataset, landing: str, shape: ShapeCheck) -> None:
    mt4 = run_task(OpenOrdersSnapshotOperator(task_id="open", output_path=landing))
    shape(mt4, SnapshotResult)
    assert SnapshotResult.__optional_keys__ <= mt4.keys()  # one file: its path, entity, schema at the top
    assert mt4["rows"] == dataset.mt4_open_count
    tbl = table(mt4["path"])
    assert_typed(tbl, MT4_OPEN_TRADE)
    served = [dataset.mt4_open_trade(j) for j in range(dataset.mt4_open_count)]
    assert_served(tbl, served, ("order", "login", "symbol", "tradeCommand", "openPrice", "openTime"))

    mt5 = run_task(OpenOrdersSnapshotOperator(task_id="open5", cplugin_conn_id="cplugin_mt5", output_path=landing))
    shape(mt5, SnapshotResult)
    assert not SnapshotResult.__optional_keys__ & mt5.keys()  # two files: none at the top
    by_entity = {f["entity"]: f for f in mt5["files"]}
    assert by_entity["mt5_positions"]["rows"] == dataset.mt5_position_count
    assert by_entity["mt5_orders"]["rows"] == dataset.mt5_order_count
    positions, orders = table(by_entity["mt5_positions"]["path"]), table(by_entity["mt5_orders"]["path"])
    assert_typed(positions, MT5_POSITION)
    assert_typed(orders, MT5_ORDER)
    assert mt5["rows"] == dataset.mt5_position_count + dataset.mt5_order_count
    served_positions = [dataset.mt5_position(k) for k in range(dataset.mt5_position_count)]
    assert_served(positions, served_positions, ("position", "login", "symbol", "action", "priceOpen", "timeCreate"))
    served_orders = [dataset.mt5_order(k) for k in range(dataset.mt5_order_count)]
    assert_served(orders, served_orders, ("order", "login", "symbol", "type", "priceOrder", "timeSetup"))


def assert_served(tbl: pa.Table, served: list[dict[str, Any]], wire_fields: tuple[str, ...]) -> None:
    """The table holds exactly the generator's records, in served order (key first in ``wire_fields``)."""
    assert tbl.num_rows == len(served)
    for name in wire_fields:
        column = tbl.column(snake_case(name))
        want = [r[name] for r in served]
        if pa.types.is_timestamp(column.type):
            want = [wire_instant(v) for v in want]
        assert column.to_pylist() == want, name


def test_margins_symbols_online(run_task: RunTask, dataset: Dataset, landing: str) -> None:
    margins = run_task(MarginLevelsSnapshotOperator(task_id="margins", output_path=landing))
    expected = [m for m in (dataset.mt4_margin_level(u) for u in range(3000)) if m is not None]
    assert margins["rows"] == len(expected) > 0
    assert_typed(table(margins["path"]), MT4_MARGIN_LEVEL)

    symbols = run_task(SymbolsSnapshotOperator(task_id="symbols", output_path=landing))
    assert_typed(table(symbols["path"]), MT4_SYMBOL)
    assert table(symbols["path"]).column("symbol").to_pylist() == [s.name for s in SYMBOLS]

    online = run_task(OnlineUsersSnapshotOperator(task_id="online", output_path=landing))
    expected_online = [dataset.mt4_login(i) for i in range(3000) if dataset.mt4_is_online(i)]
    assert table(online["path"]).column("login").to_pylist() == expected_online
    assert_typed(table(online["path"]), MT4_ONLINE)

    for op in (MarginLevelsSnapshotOperator, SymbolsSnapshotOperator, OnlineUsersSnapshotOperator):
        with pytest.raises(NotOfferedByApiError):
            run_task(op(task_id="mt5", cplugin_conn_id="cplugin_mt5", output_path=landing))


def test_lands_on_any_object_storage(run_task: RunTask, dataset: Dataset) -> None:
    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    result = run_task(UsersSnapshotOperator(task_id="users", output_path="memory://lake/cplugin"))
    with fs.open(result["path"].removeprefix("memory://"), "rb") as f:
        assert pq.read_table(f).num_rows == dataset.mt4_user_count
    fs.rm("/lake", recursive=True)


def test_generic_operator_to_xcom_and_parquet(
    run_task: RunTask, snapshot_emulator: EmulatorProcess, landing: str
) -> None:
    common = run_task(WebApiCallOperator(task_id="common", endpoint="ManagerCommon"))
    assert {"name", "owner", "build", "timeZone"} <= set(common)
    users = run_task(
        WebApiCallOperator(
            task_id="users",
            endpoint="UsersRequest",
            paginate=True,
            destination="parquet",
            entity="mt4_users",
            output_path=landing,
            page_size=1000,
        )
    )
    assert users["rows"] == 3000 and users["entity"] == "mt4_users"
    platforms = run_task(WebApiCallOperator(task_id="platforms", endpoint="/api/TradePlatforms"))
    assert sorted((p["id"], str(p["type"])) for p in platforms) == sorted(
        [(snapshot_emulator.mt4_trade_platform, "MT4"), (snapshot_emulator.mt5_trade_platform, "MT5")]
    )


def test_generic_operator_infers_a_schema_without_fetching_twice(
    run_task: RunTask, snapshot_emulator: EmulatorProcess, landing: str
) -> None:
    def users_requests() -> int:
        routes = snapshot_emulator.stats()["requests"]
        return sum(n for route, n in routes.items() if route.endswith("UsersRequest"))

    before = users_requests()
    result = run_task(
        WebApiCallOperator(
            task_id="inferred", endpoint="UsersRequest", paginate=True, destination="parquet",
            output_path=landing, page_size=1000,
        )
    )  # fmt: skip
    assert users_requests() - before == 3  # 3000 users in pages of 1000, each asked for once
    tbl = table(result["path"])
    assert tbl.num_rows == 3000 and result["entity"] == "usersrequest"
    assert len(set(tbl.column("login").to_pylist())) == 3000  # the inference page landed once, not twice


def test_schema_drift_from_the_wire(
    run_task: RunTask, snapshot_emulator: EmulatorProcess, landing: str, caplog: pytest.LogCaptureFixture
) -> None:
    drifted = [
        {"login": 1, "group": "real", "balance": "10.5", "brandNewField": {"x": 1}},  # extra + coercible type
        {"login": 2},  # optional fields missing
    ]
    body = json.dumps({"data": drifted, "error": None, "meta": {"activityId": "a" * 32, "paging": None}})
    snapshot_emulator.set_faults([{"path": "UsersRequest", "status": 200, "body": body, "times": 1}])
    try:
        result = run_task(UsersSnapshotOperator(task_id="drift", output_path=landing))
    finally:
        snapshot_emulator.set_faults([])
    rows = table(result["path"]).to_pylist()
    assert [r["login"] for r in rows] == [1, 2]
    assert rows[0]["balance"] == 10.5 and rows[1]["balance"] is None
    assert json.loads(rows[0][EXTRA_COLUMN]) == {"brandNewField": {"x": 1}}

    bad = json.dumps({"data": [{"login": "not-a-login"}], "error": None, "meta": {"activityId": "b" * 32}})
    snapshot_emulator.set_faults([{"path": "UsersRequest", "status": 200, "body": bad, "times": 1}])
    try:
        with pytest.raises(SchemaDriftError, match=r"mt4_users\.login"):
            run_task(UsersSnapshotOperator(task_id="bad", output_path=landing))
    finally:
        snapshot_emulator.set_faults([])
    assert not list(Path(landing.removeprefix("file://")).rglob("*bad*.parquet"))


def test_interval_dates_partition(run_task: RunTask, landing: str) -> None:
    day = datetime(2025, 12, 30, tzinfo=UTC)
    result = run_task(SymbolsSnapshotOperator(task_id="s", output_path=landing), day, (day, day + timedelta(days=1)))
    assert "/date=2025-12-30/" in result["path"] and result["path"].endswith("tests__s__20251230T000000.parquet")
