"""Hourly incremental trade history: each run loads exactly ``[data_interval_start, data_interval_end)``.

A deferrable sensor first waits (without holding a worker slot) until the trade platform's own clock is past
the interval end, so a run never reads an hour the server is still writing. Back-fills and reruns compose:
every run writes one file named after its logical date, so a rerun replaces it and adjacent hours never
overlap. MT4 closed trades come from one trades sync session per run (``TradesSyncStart``/``TradesSyncRead``:
a few calls, whatever the number of users), MT5 deals from ``DealByGroup`` resumed from the previous run's
checkpoint (the API has no plain time-range history endpoint; docs/history.md).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag

from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor


@dag(
    dag_id="cplugin_hourly_history",
    # An interval timetable: Airflow 3's cron presets have zero-length data intervals.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["cplugin", "example"],
    default_args={"retries": 3, "retry_delay": pendulum.duration(minutes=5)},
)
def cplugin_hourly_history() -> None:
    for conn_id, prefix in (("cplugin_default", "mt4"), ("cplugin_mt5", "mt5")):
        settled = HistoryCompleteSensor(
            task_id=f"{prefix}_history_complete",
            cplugin_conn_id=conn_id,
            settle=pendulum.duration(minutes=1),
            deferrable=True,
            poke_interval=30,
            timeout=2 * 3600,
        )
        settled >> TradeHistoryOperator(task_id=f"{prefix}_trade_history", cplugin_conn_id=conn_id)


cplugin_hourly_history()
