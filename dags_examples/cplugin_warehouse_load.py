"""Load the landed Parquet into an embedded DuckDB warehouse, whenever new snapshots or history land.

Scheduled on the Assets the snapshot and history operators emit (data-aware scheduling), so it runs after them
without a clock of its own. Loads are idempotent: tables are rebuilt from the landing zone, which holds one file
per run (reruns replaced, never duplicated), and history rows are de-duplicated on their key.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task
from cplugin_example_warehouse import WAREHOUSE, warehouse_path

from airflow_provider_cplugin.operators.base_snapshot import default_landing_path, entity_asset
from airflow_provider_cplugin.parquet.schemas import MT4_DAILY_REPORT, MT4_TRADE_HISTORY, MT4_USER

SOURCES = [a for a in (entity_asset(None, e) for e in (MT4_USER, MT4_TRADE_HISTORY, MT4_DAILY_REPORT)) if a is not None]
LATEST_SNAPSHOT = "select * from src where date = (select max(date) from src)"


def latest_per_key(*key: str) -> str:
    """The row of the newest file for each key (reruns replace files; backfills may overlap)."""
    keys = ", ".join(["trade_platform", *(f'"{k}"' for k in key)])
    return (
        "select * exclude (rn) from (select *, row_number() over "
        f"(partition by {keys} order by date desc, filename desc) as rn from src) where rn = 1"
    )


# Each table: (entity directory, SQL over the hive-partitioned files read as `src`).
TABLES: dict[str, tuple[str, str]] = {
    # The latest snapshot day of every user.
    "mt4_users": (
        "mt4_users",
        "select * exclude (rn) from (select *, row_number() over "
        "(partition by trade_platform, login order by date desc, filename desc) as rn from src) where rn = 1",
    ),
    "mt4_open_trades": ("mt4_open_trades", "select * from src where date = (select max(date) from src)"),
    "mt4_trade_history": (
        "mt4_trade_history",
        "select * exclude (rn) from (select *, row_number() over "
        '(partition by trade_platform, "order" order by filename desc) as rn from src) where rn = 1',
    ),
    "mt5_deals": (
        "mt5_deals",
        "select * exclude (rn) from (select *, row_number() over "
        "(partition by trade_platform, deal order by filename desc) as rn from src) where rn = 1",
    ),
    "mt4_margin_levels": ("mt4_margin_levels", "select * from src where date = (select max(date) from src)"),
    # Warehouse datasets (cplugin_daily_datasets).
    "mt4_symbols": ("mt4_symbols", LATEST_SNAPSHOT),
    "mt4_daily_reports": ("mt4_daily_reports", latest_per_key("login", "trading_day")),
    "mt4_groups": ("mt4_groups", LATEST_SNAPSHOT),
    "mt4_chart_bars": ("mt4_chart_bars", latest_per_key("symbol", "period", "time")),
    "mt4_ticks": ("mt4_ticks", latest_per_key("symbol", "time", "seq")),
    "mt4_user_changes": ("mt4_user_changes", latest_per_key("login")),
    "mt5_groups": ("mt5_groups", LATEST_SNAPSHOT),
    "mt5_symbols": ("mt5_symbols", LATEST_SNAPSHOT),
}


@dag(
    dag_id="cplugin_warehouse_load",
    schedule=SOURCES or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
)
def cplugin_warehouse_load() -> None:
    @task(outlets=[WAREHOUSE])
    def load() -> dict[str, Any]:
        import duckdb
        from airflow.sdk import ObjectStoragePath

        landing = ObjectStoragePath(default_landing_path())
        os.makedirs(os.path.dirname(warehouse_path()), exist_ok=True)
        con = duckdb.connect(warehouse_path())
        if landing.protocol not in ("", "file", "local"):
            # DuckDB reads any fsspec filesystem once registered (S3, GCS... via their Airflow connections).
            con.register_filesystem(landing.fs)
        loaded: dict[str, Any] = {}
        for table, (entity, sql) in TABLES.items():
            directory = landing / f"entity={entity}"
            if not directory.exists():
                continue
            prefix = "" if landing.protocol in ("", "file", "local") else f"{landing.protocol}://"
            glob = f"{prefix}{directory.path}/**/*.parquet"
            con.execute(
                f"create or replace temp view src as select * from read_parquet('{glob}', "
                "hive_partitioning = true, filename = true, union_by_name = true)"
            )
            con.execute(f"create or replace table {table} as {sql}")
            rows = con.execute(f"select count(*) from {table}").fetchone()
            loaded[table] = rows[0] if rows else 0
        con.close()
        print(f"Warehouse {warehouse_path()}: {loaded}")
        return {"warehouse": warehouse_path(), "tables": loaded}

    load()


cplugin_warehouse_load()
