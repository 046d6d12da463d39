"""Daily snapshot of all MT4 users of a trade platform, landed as typed Parquet.

Copy this file into your DAGs folder. It needs one Airflow connection, ``cplugin_default`` (type
``cplugin``): in the UI, or from the environment, e.g.::

    export AIRFLOW_CONN_CPLUGIN_DEFAULT='{"conn_type": "cplugin", "login": "<client id>",
        "password": "<client secret>", "extra": {"env": "prod", "trade_platform": "<GUID>"}}'

Files land under ``$CPLUGIN_LANDING_PATH`` (any fsspec URL Airflow's ObjectStoragePath knows) or
``$AIRFLOW_HOME/data/cplugin``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator


@dag(
    dag_id="cplugin_users_snapshot",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
)
def cplugin_users_snapshot() -> None:
    users = UsersSnapshotOperator(task_id="mt4_users_snapshot", cplugin_conn_id="cplugin_default")

    @task
    def report(landed: dict[str, Any]) -> None:
        for landed_file in landed["files"]:
            print(f"Landed {landed_file['rows']} rows ({landed_file['bytes']} bytes) at {landed_file['path']}")

    report(users.output)


cplugin_users_snapshot()
