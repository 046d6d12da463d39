"""The datasets a broker's warehouse is built on, landed daily from an MT4 and an MT5 trade platform.

* ``mt4_daily_reports``: end-of-day balance, equity, credit, margin, deposits, closed and floating P/L per login
  for the server-local trading day that ended in the run's interval (``DailyReportsRequest``).
* ``mt4_groups`` / ``mt5_groups``: leverage, margin call / stop-out levels, currency (``GroupsGet``, ``GroupGet``).
* ``mt4_chart_bars`` (H1, D1) and ``mt4_ticks`` of the interval, for P&L revaluation (``ChartRequest``,
  ``TicksRequest``); ``mt5_symbols`` for the symbols of the open positions (``SymbolGet``).
* ``mt4_user_changes``: users modified since the interval start (``UsersSyncStart``/``UsersSyncRead``).

``max_active_runs=1``: sync sessions are per trade platform (the latest start wins), so two runs must not sync
at once. The warehouse DAG is scheduled on these entities' Assets.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag

from airflow_provider_cplugin.operators.daily_reports import DailyReportsOperator
from airflow_provider_cplugin.operators.groups import GroupsSnapshotOperator
from airflow_provider_cplugin.operators.mt5_symbols import Mt5SymbolsSnapshotOperator
from airflow_provider_cplugin.operators.price_history import ChartBarsOperator, TickHistoryOperator
from airflow_provider_cplugin.operators.users_changes import UsersChangesOperator

MT4 = "cplugin_default"
MT5 = "cplugin_mt5"
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "XAUUSD", "XAGUSD"]
# MT5 has no group list; without `groups` the operator reads the groups of the open positions' owners
# (one UserGet per owner), which is slow on a large book.
MT5_GROUPS = ["real\\standard", "real\\pro", "demo\\standard", "demo\\pro"]


@dag(
    dag_id="cplugin_daily_datasets",
    # An interval timetable: the operators read the run's data interval (cron presets have zero-length ones).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cplugin", "example"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
)
def cplugin_daily_datasets() -> None:
    DailyReportsOperator(task_id="mt4_daily_reports", cplugin_conn_id=MT4)
    GroupsSnapshotOperator(task_id="mt4_groups", cplugin_conn_id=MT4)
    ChartBarsOperator(task_id="mt4_chart_bars", cplugin_conn_id=MT4, symbols=SYMBOLS, periods=["H1", "D1"])
    TickHistoryOperator(task_id="mt4_ticks", cplugin_conn_id=MT4, symbols=["EURUSD", "XAUUSD"], flags="Normal")
    UsersChangesOperator(task_id="mt4_user_changes", cplugin_conn_id=MT4)
    GroupsSnapshotOperator(task_id="mt5_groups", cplugin_conn_id=MT5, groups=MT5_GROUPS)
    Mt5SymbolsSnapshotOperator(task_id="mt5_symbols", cplugin_conn_id=MT5)


cplugin_daily_datasets()
