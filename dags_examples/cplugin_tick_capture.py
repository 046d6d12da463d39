"""Continuous tick capture: the hub's EURUSD and GBPUSD ticks land as Parquet batches, without windows or holes.

The Asset ``cplugin_mt4_tick_batches`` has an asset watcher per symbol: a :class:`HubCaptureTrigger` in the
triggerer keeps a hub stream open and lands a batch file every 60 s (or 100,000 ticks) under
``entity=hub_ticks/trade_platform=<guid>/date=<day>/cplugin_ticks_<symbol>__<first tick>__b<n>.parquet``. Each
file is one asset event (``extra["payload"]``: path, rows, first/last tick time, gaps, missed), so:

* ``cplugin_tick_batches`` runs for the new batches (one run may cover several) and reports their rows and any
  outage the capture reported (a triggerer restart, a lost connection);
* ``cplugin_tick_compaction`` runs hourly and compacts the previous hour's ticks (every batch of every symbol,
  rows selected by receive time) into one file ``entity=hub_ticks_hourly/.../date=<day>/hour=<HH>/ticks.parquet``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger

SYMBOLS = ("EURUSD", "GBPUSD")
CAPTURE = "cplugin_ticks"
ROLL_S = 60.0

TICK_BATCHES = Asset(
    "cplugin_mt4_tick_batches",
    watchers=[
        AssetWatcher(
            name=f"cplugin_tick_capture_{symbol.lower()}",
            trigger=HubCaptureTrigger(
                cplugin_conn_id="cplugin_default",
                platform_type="MT4",
                stream=f"StreamTicks:{symbol}",
                name=f"{CAPTURE}_{symbol}",
                roll_s=ROLL_S,
                roll_rows=100_000,
            ),
        )
        for symbol in SYMBOLS
    ],
)

DEFAULTS = {"retries": 2, "retry_delay": pendulum.duration(seconds=30)}


@dag(
    dag_id="cplugin_tick_batches",
    schedule=[TICK_BATCHES],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example", "realtime", "event-driven"],
    default_args=DEFAULTS,
)
def cplugin_tick_batches() -> None:
    @task
    def report_batches(triggering_asset_events: Any = None) -> dict[str, Any]:
        """Rows and outages of the batches that started this run (every landed file is one asset event)."""
        files, rows, outages = [], 0, []
        for event in triggering_asset_events[TICK_BATCHES]:
            payload = (event.extra or {}).get("payload") or {}
            if payload.get("path"):
                files.append(payload["path"])
                rows += int(payload.get("rows", 0))
            outages.extend(payload.get("gaps", []))
        if outages:
            missed = [g.get("missed") for g in outages]
            print(f"{len(outages)} outage(s) reported by the capture; missed ticks: {missed} (None = unknown)")
        return {"files": files, "rows": rows, "outages": len(outages)}

    report_batches()


@dag(
    dag_id="cplugin_tick_compaction",
    schedule=CronTriggerTimetable("10 * * * *", timezone="UTC"),  # 10 min after the hour: its last batches landed
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example", "realtime"],
    default_args=DEFAULTS,
)
def cplugin_tick_compaction() -> None:
    @task
    def compact_previous_hour() -> dict[str, Any]:
        """Every captured tick received in the previous hour, in one file per trade platform."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from airflow_provider_cplugin.parquet.hub_schemas import HUB_TICKS
        from airflow_provider_cplugin.parquet.landing import ParquetLander, partition_dir
        from airflow_provider_cplugin.parquet.location import landing_root

        context = get_current_context()
        end = (context["logical_date"] or pendulum.now("UTC")).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(hours=1)
        root = landing_root(None)
        source = root / f"entity={HUB_TICKS.name}"
        # A batch is filed under the day of its first tick and spans at most one roll: look at the day before too.
        days = {f"date={d:%Y-%m-%d}" for d in (start - timedelta(seconds=2 * ROLL_S), start, end)}
        result: dict[str, Any] = {"hour": start.isoformat(), "platforms": {}}
        for platform_dir in source.iterdir() if source.exists() else []:
            files = [
                f
                for day in sorted(days)
                if (platform_dir / day).exists()
                for f in (platform_dir / day).iterdir()
                if f.name.startswith(f"{CAPTURE}_") and f.name.endswith(".parquet")
            ]
            platform = platform_dir.name.removeprefix("trade_platform=")
            target = (
                partition_dir(
                    root,
                    "hub_ticks_hourly",
                    {"trade_platform": platform, "date": f"{start:%Y-%m-%d}", "hour": f"{start:%H}"},
                )
                / "ticks.parquet"
            )
            rows = 0
            with ParquetLander(target, HUB_TICKS.arrow_schema) as lander:
                for f in sorted(files, key=lambda p: p.name):
                    with f.open("rb") as handle:
                        table = pq.read_table(handle)
                    received = table.column("_received_at")
                    keep = pc.and_(pc.greater_equal(received, start), pc.less(received, end))
                    hour = table.filter(keep)
                    for batch in hour.to_batches():
                        lander.write_batch(batch)
                    rows += hour.num_rows
            result["platforms"][platform] = {"files_read": len(files), "rows": rows, "path": str(target)}
        return result

    compact_previous_hour()


cplugin_tick_batches()
cplugin_tick_compaction()
