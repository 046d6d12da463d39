"""The example warehouse's SQL never double-counts: a manual run beside the scheduled one, a rerun or an
overlapping backfill leaves one row per declared key."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


@pytest.fixture(scope="module")
def warehouse() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module("cplugin_warehouse_load")
    finally:
        sys.path.remove(str(EXAMPLES))


def _write(root: Path, entity: str, date: str, name: str, rows: list[dict[str, object]]) -> None:
    folder = root / f"entity={entity}" / "trade_platform=tp" / f"date={date}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / name)


def _load(warehouse: ModuleType, root: Path, table: str) -> list[tuple[object, ...]]:
    entity, sql = warehouse.TABLES[table]
    con = duckdb.connect()
    con.execute(
        f"create temp view src as select * from read_parquet('{root}/entity={entity}/**/*.parquet', "
        "hive_partitioning = true, filename = true, union_by_name = true)"
    )
    return sorted(con.execute(f"select * exclude (filename) from ({sql})").fetchall())


def test_a_manual_run_beside_the_scheduled_one_counts_once(warehouse: ModuleType, tmp_path: Path) -> None:
    users = [{"login": i, "balance": float(i)} for i in range(3)]
    _write(tmp_path, "mt4_users", "2026-11-24", "dag__users__20261124T000000.parquet", users)
    _write(tmp_path, "mt4_users", "2026-11-24", "dag__users__manual__2026-11-24T10-00-00.parquet", users)
    assert len(_load(warehouse, tmp_path, "mt4_users")) == 3
    trades = [{"order": i, "login": 1} for i in range(4)]
    _write(tmp_path, "mt4_open_trades", "2026-11-23", "dag__orders__20261123T000000.parquet", trades[:1])
    _write(tmp_path, "mt4_open_trades", "2026-11-24", "dag__orders__20261124T000000.parquet", trades)
    _write(tmp_path, "mt4_open_trades", "2026-11-24", "dag__orders__manual__x.parquet", trades)
    loaded = _load(warehouse, tmp_path, "mt4_open_trades")
    assert len(loaded) == 4 and {row[0] for row in loaded} == {0, 1, 2, 3}  # the newest day only, once per order


def test_the_newest_file_wins_per_key(warehouse: ModuleType, tmp_path: Path) -> None:
    _write(tmp_path, "mt4_daily_reports", "2026-11-23", "a__20261123T000000.parquet",
           [{"login": 1, "trading_day": "2026-11-23", "equity": 1.0}])  # fmt: skip
    _write(tmp_path, "mt4_daily_reports", "2026-11-24", "a__20261124T000000.parquet",
           [{"login": 1, "trading_day": "2026-11-23", "equity": 2.0},
            {"login": 1, "trading_day": "2026-11-24", "equity": 3.0}])  # fmt: skip
    rows = _load(warehouse, tmp_path, "mt4_daily_reports")
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "2026-11-23", 2.0), (1, "2026-11-24", 3.0)]


def test_history_loads_when_any_source_lands(warehouse: ModuleType) -> None:
    from airflow.sdk import AssetAny

    dag = warehouse.cplugin_warehouse_load()  # the @dag function builds the DAG object
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    names = {a.uri.rsplit("entity=", 1)[-1] for a in condition.objects}
    assert {"mt4_users", "mt4_trade_history", "mt5_deals"} <= names
