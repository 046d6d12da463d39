"""e2e suite only: a continuous EURUSD tick capture with the emulator's sequence function, so that a triggerer
``kill -9`` can be accounted for exactly (landed = sent - reported missed), which the copyable example (no
sequence function: a real hub has none) can only report as unknown. Unpaused by ``tests_e2e/test_watchers.py``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger

SEQUENCED_TICKS = Asset(
    "e2e_sequenced_tick_batches",
    watchers=[
        AssetWatcher(
            name="e2e_sequenced_tick_capture",
            trigger=HubCaptureTrigger(
                cplugin_conn_id="cplugin_default",
                platform_type="MT4",
                stream="StreamTicks:EURUSD",
                name="e2e_seq_ticks_EURUSD",
                sequences="airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences",
                roll_s=10.0,
                roll_rows=100_000,
            ),
        )
    ],
)


@dag(
    dag_id="e2e_sequenced_tick_batches",
    schedule=[SEQUENCED_TICKS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "e2e"],
)
def e2e_sequenced_tick_batches() -> None:
    @task
    def count(triggering_asset_events: Any = None) -> int:
        return len(triggering_asset_events[SEQUENCED_TICKS])

    count()


e2e_sequenced_tick_batches()
