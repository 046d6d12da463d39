"""Test-only DAG: a deferrable sensor whose target is a few seconds after the run starts, so it must defer."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_cplugin.sensors.history_complete import HistoryCompleteSensor


@dag(dag_id="cplugin_deferral_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def cplugin_deferral_check() -> None:
    HistoryCompleteSensor(
        task_id="wait_for_server_clock",
        target="{{ (ti.start_date + macros.timedelta(seconds=8)).isoformat() }}",
        deferrable=True,
        poke_interval=1,
        timeout=120,
    )


cplugin_deferral_check()
