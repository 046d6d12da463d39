"""A margin call or stop-out on the MT4 trade server starts a risk DAG within seconds (event-driven scheduling).

The Asset ``cplugin_mt4_margin_calls`` has an asset watcher: a :class:`HubEventTrigger` in the triggerer listens
to the hub's ``StreamMarginCallUpdates`` and fires for accounts whose level type is ``MarginCall`` or
``StopOut``, at most once per login every 5 minutes (a storm of margin updates is not a storm of DAG runs). Each
fire is an asset event whose ``extra["payload"]`` carries the login, group, level and counts; the risk DAG reads
the logins from ``triggering_asset_events`` and snapshots those accounts' open trades and margin levels through
REST into the landing zone (``entity=mt4_open_trades`` / ``entity=mt4_margin_levels``, one file per run).

Other watchers of the same stream (another filter, another DAG) share the watcher's hub connection.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from airflow_provider_cplugin.triggers.hub_event import HubEventTrigger

MAX_ACCOUNTS = 500  # one run snapshots at most this many accounts (the rest are logged and left to the next run)

MARGIN_CALLS = Asset(
    "cplugin_mt4_margin_calls",
    watchers=[
        AssetWatcher(
            name="cplugin_mt4_margin_call_watcher",
            trigger=HubEventTrigger(
                cplugin_conn_id="cplugin_default",
                platform_type="MT4",
                stream="StreamMarginCallUpdates",
                where=[{"field": "levelType", "op": "in", "value": ["MarginCall", "StopOut"]}],
                key_fields=["login"],
                debounce_s=300,
            ),
        )
    ],
)


@dag(
    dag_id="cplugin_margin_call_risk",
    schedule=[MARGIN_CALLS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example", "realtime", "event-driven"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=10)},
)
def cplugin_margin_call_risk() -> None:
    @task
    def affected_accounts(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """The accounts of the asset events that started this run (several events may share one run)."""
        accounts: dict[int, dict[str, Any]] = {}
        for event in triggering_asset_events[MARGIN_CALLS]:
            payload = (event.extra or {}).get("payload") or {}
            fired = payload.get("event", {})
            if "login" in fired:
                accounts[int(fired["login"])] = {
                    "login": int(fired["login"]),
                    "group": fired.get("group"),
                    "level": fired.get("level"),
                    "level_type": fired.get("levelType"),
                    "trade_platform": payload.get("trade_platform"),
                }
            for outage in payload.get("outages", []):
                print(f"hub outage before this event: {outage}")
        selected = sorted(accounts.values(), key=lambda a: a["level"] if a["level"] is not None else 0)
        if len(selected) > MAX_ACCOUNTS:
            print(f"{len(selected)} accounts in margin call; snapshotting the {MAX_ACCOUNTS} lowest levels")
        return selected[:MAX_ACCOUNTS]

    @task
    def snapshot_accounts(accounts: list[dict[str, Any]]) -> dict[str, Any]:
        """Open trades (``TradesGetByLogin``) and margin level (``MarginLevelGet``) of each account, landed."""
        from airflow_provider_cplugin.exceptions import CPluginApiError
        from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
        from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
        from airflow_provider_cplugin.parquet.landing import ParquetLander, partition_dir, run_file_name
        from airflow_provider_cplugin.parquet.location import landing_root
        from airflow_provider_cplugin.parquet.schemas import MT4_MARGIN_LEVEL, MT4_OPEN_TRADE, snake_case

        context = get_current_context()
        hook = CPluginWebApiHook(cplugin_conn_id="cplugin_default")
        trades: list[dict[str, Any]] = []
        levels: list[dict[str, Any]] = []
        for account in accounts:
            tp = account["trade_platform"]
            path = hook.v2_path("TradesGetByLogin", account["login"], account["group"], trade_platform=tp)
            trades.extend(hook.get(path) or [])
            try:
                levels.append(hook.get(hook.v2_path("MarginLevelGet", account["login"], trade_platform=tp)))
            except CPluginApiError as err:
                if err.code != "NotFound":  # NotFound: the account closed its trades since the event
                    raise
        root = landing_root(None)
        ti = context["ti"]
        day = context.get("logical_date") or pendulum.now("UTC")  # an asset-triggered run has none
        name = run_file_name(ti.dag_id, ti.task_id, context["run_id"])
        landed = {}
        for entity, rows in ((MT4_OPEN_TRADE, trades), (MT4_MARGIN_LEVEL, levels)):
            target = partition_dir(root, entity.name, {"date": f"{day:%Y-%m-%d}"}) / name
            with ParquetLander(target, entity.arrow_schema, key=[snake_case(k) for k in entity.key]) as lander:
                if rows:
                    lander.write_batch(RecordBatchConverter(entity).convert(rows))
            assert lander.landed is not None
            landed[entity.name] = lander.landed.to_dict()
        return {"accounts": [a["login"] for a in accounts], "trades": len(trades), "levels": len(levels),
                "files": landed}  # fmt: skip

    snapshot_accounts(affected_accounts())


cplugin_margin_call_risk()
