"""e2e suite only: one users snapshot of the 300k-user emulator (connection ``cplugin_big``), one retry.

Long enough (several seconds) for the suite to ``kill -9`` the Celery worker running it and check that the retry
lands the snapshot exactly once. Triggered through the REST API only (no schedule).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator


@dag(
    dag_id="e2e_big_users_snapshot",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["cplugin", "e2e"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=1)},
)
def e2e_big_users_snapshot() -> None:
    UsersSnapshotOperator(task_id="big_users", cplugin_conn_id="cplugin_big")


e2e_big_users_snapshot()
