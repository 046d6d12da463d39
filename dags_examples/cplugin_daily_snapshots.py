"""Daily snapshots of an MT4 and an MT5 trade platform, gated on the platforms answering a ping.

Connections: ``cplugin_default`` (its ``trade_platform`` extra is an MT4 platform) and ``cplugin_mt5`` (same
credentials, ``trade_platform`` = an MT5 platform). The MT4/MT5 type comes from the trade platforms list.
Each snapshot lands one Parquet file per run under ``entity=<name>/trade_platform=<GUID>/date=<day>/`` and
declares that entity directory as an Asset, which the warehouse DAG is scheduled on.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_cplugin.operators.margin_levels import MarginLevelsSnapshotOperator
from airflow_provider_cplugin.operators.online_users import OnlineUsersSnapshotOperator
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.symbols import SymbolsSnapshotOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.sensors.platform_reachable import PlatformReachableSensor

MT4 = "cplugin_default"
MT5 = "cplugin_mt5"


@dag(
    dag_id="cplugin_daily_snapshots",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cplugin", "example"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
)
def cplugin_daily_snapshots() -> None:
    mt4_up = PlatformReachableSensor(
        task_id="mt4_reachable", cplugin_conn_id=MT4, mode="reschedule", poke_interval=60, timeout=3600
    )
    mt5_up = PlatformReachableSensor(
        task_id="mt5_reachable", cplugin_conn_id=MT5, mode="reschedule", poke_interval=60, timeout=3600
    )
    mt4_up >> [
        UsersSnapshotOperator(task_id="mt4_users", cplugin_conn_id=MT4),
        OpenOrdersSnapshotOperator(task_id="mt4_open_trades", cplugin_conn_id=MT4),
        MarginLevelsSnapshotOperator(task_id="mt4_margin_levels", cplugin_conn_id=MT4),
        SymbolsSnapshotOperator(task_id="mt4_symbols", cplugin_conn_id=MT4),
        OnlineUsersSnapshotOperator(task_id="mt4_online_users", cplugin_conn_id=MT4),
    ]
    mt5_up >> OpenOrdersSnapshotOperator(task_id="mt5_orders_and_positions", cplugin_conn_id=MT5, group_mask="*")


cplugin_daily_snapshots()
