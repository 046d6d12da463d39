"""e2e suite only: a deferred hub sample whose streams the emulator can sequence (``sequences=``).

Its tick payloads carry the feed index in their timestamps, so after the suite kills the triggerer the sampler can
count exactly what it missed, and the suite can check landed + missed against the emulator's own stream records.
A 60 s window leaves time to kill the triggerer after the first time cut and for the restarted one to reconnect.
Triggered through the REST API only (no schedule).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator

SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"


@dag(
    dag_id="e2e_hub_sample",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["cplugin", "e2e"],
)
def e2e_hub_sample() -> None:
    HubSampleOperator(
        task_id="sample",
        cplugin_conn_id="cplugin_default",
        platform_type="MT4",
        streams=["StreamTicks", "StreamTicks:EURUSD"],
        window=60,
        flush_interval=1.0,  # time cuts every second: batches land before the kill
        batch_rows=1_000_000,
        sequences=SEQUENCES,
        deferrable=True,
    )


e2e_hub_sample()
