"""Every 5 minutes, sample the realtime MT4 hub for 60 s: EURUSD and GBPUSD ticks plus margin-call updates.

The task defers while it samples (no worker slot is held): the triggerer connects to the SignalR hub with the
connection's OAuth2 token, collects the window and lands the events as Parquet batches under
``entity=hub_ticks/`` and ``entity=hub_mt4_margin_calls/`` (one file per 50,000 events and stream, named after
the run, so retries and triggerer restarts never duplicate what landed). The XCom holds the batch paths, counts
and any connection gaps. Set the Airflow Variable ``cplugin_sample_window`` to change the window (seconds).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator


@dag(
    dag_id="cplugin_realtime_sample",
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cplugin", "example", "realtime"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def cplugin_realtime_sample() -> None:
    HubSampleOperator(
        task_id="sample_ticks_and_margins",
        cplugin_conn_id="cplugin_default",
        platform_type="MT4",
        streams=["StreamTicks:EURUSD", "StreamTicks:GBPUSD", "StreamMarginCallUpdates"],
        window="{{ var.value.get('cplugin_sample_window', 60) }}",
        batch_rows=50_000,
        deferrable=True,
    )


cplugin_realtime_sample()
