"""Load the landed Parquet into an embedded DuckDB warehouse, whenever new snapshots or history land.

Scheduled on **any** of the Assets the snapshot and history operators emit (data-aware scheduling): hourly history
loads when it lands, not once the daily users snapshot also did. Loads are idempotent: tables are rebuilt from the
landing zone, and every table keeps one row per declared key of its entity (the newest file wins), so a rerun, a
backfill or a manual run (its file named by run id, beside the scheduled one in the same ``date=`` partition)
never double-counts.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import AssetAny, dag, task
from cplugin_example_warehouse import WAREHOUSE, connect_warehouse, warehouse_path

from airflow_provider_cplugin.operators.base_snapshot import default_landing_path, entity_asset
from airflow_provider_cplugin.parquet.schemas import (
    ENTITIES,
    MT4_DAILY_REPORT,
    MT4_TRADE_HISTORY,
    MT4_USER,
    MT5_DEAL,
    snake_case,
)

_SOURCE_ENTITIES = (MT4_USER, MT4_TRADE_HISTORY, MT5_DEAL, MT4_DAILY_REPORT)
SOURCES = [a for a in (entity_asset(None, e) for e in _SOURCE_ENTITIES) if a is not None]


def _key_columns(entity: str) -> str:
    return ", ".join(["trade_platform", *(f'"{snake_case(k)}"' for k in ENTITIES[entity].key)])


def latest_per_key(entity: str) -> str:
    """For each declared key of ``entity``, the row of the newest file (reruns replace files; backfills and manual
    runs may overlap)."""
    return (
        "select * exclude (rn) from (select *, row_number() over "
        f"(partition by {_key_columns(entity)} order by date desc, filename desc) as rn from src) where rn = 1"
    )


def latest_snapshot(entity: str) -> str:
    """The state on the newest snapshot day, one row per key (a manual run beside the scheduled one counts once)."""
    return (
        "select * exclude (rn) from (select *, row_number() over "
        f"(partition by {_key_columns(entity)} order by filename desc) as rn from src "
        "where date = (select max(date) from src)) where rn = 1"
    )


# Each table: (entity directory, SQL over the hive-partitioned files read as `src`).
TABLES: dict[str, tuple[str, str]] = {
    "mt4_users": ("mt4_users", latest_per_key("mt4_users")),
    "mt4_open_trades": ("mt4_open_trades", latest_snapshot("mt4_open_trades")),
    "mt4_trade_history": ("mt4_trade_history", latest_per_key("mt4_trade_history")),
    "mt5_deals": ("mt5_deals", latest_per_key("mt5_deals")),
    "mt4_margin_levels": ("mt4_margin_levels", latest_snapshot("mt4_margin_levels")),
    # Warehouse datasets (cplugin_daily_datasets).
    "mt4_symbols": ("mt4_symbols", latest_snapshot("mt4_symbols")),
    "mt4_daily_reports": ("mt4_daily_reports", latest_per_key("mt4_daily_reports")),
    "mt4_groups": ("mt4_groups", latest_snapshot("mt4_groups")),
    "mt4_chart_bars": ("mt4_chart_bars", latest_per_key("mt4_chart_bars")),
    "mt4_ticks": ("mt4_ticks", latest_per_key("mt4_ticks")),
    "mt4_user_changes": ("mt4_user_changes", latest_per_key("mt4_user_changes")),
    "mt5_groups": ("mt5_groups", latest_snapshot("mt5_groups")),
    "mt5_symbols": ("mt5_symbols", latest_snapshot("mt5_symbols")),
}


@dag(
    dag_id="cplugin_warehouse_load",
    max_active_runs=1,  # one DuckDB writer at a time; Asset events that arrive meanwhile queue a run
    schedule=AssetAny(*SOURCES) if SOURCES else None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
)
def cplugin_warehouse_load() -> None:
    @task(outlets=[WAREHOUSE])
    def load() -> dict[str, Any]:
        from airflow.sdk import ObjectStoragePath

        landing = ObjectStoragePath(default_landing_path())
        os.makedirs(os.path.dirname(warehouse_path()), exist_ok=True)
        con = connect_warehouse()
        if landing.protocol not in ("", "file", "local"):
            # DuckDB reads any fsspec filesystem once registered (S3, GCS... via their Airflow connections).
            con.register_filesystem(landing.fs)
        loaded: dict[str, Any] = {}
        for table, (entity, sql) in TABLES.items():
            directory = landing / f"entity={entity}"
            # Final files only: the prefix may so far hold only another run's hidden temporary or a checkpoint.
            if not directory.exists() or not any(not p.name.startswith(".") for p in directory.rglob("*.parquet")):
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
