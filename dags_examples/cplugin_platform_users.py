"""Users of every trade platform the client sees, one mapped snapshot per platform, and the DAG their events start.

``cplugin_platform_users`` lists the trade platforms visible to the ``cplugin_default`` connection
(``GET /api/TradePlatforms``) and maps ``UsersSnapshotOperator`` over them (``.partial(...).expand_kwargs(...)``):
one task instance per platform, each landing ``entity=mt4_users`` or ``entity=mt5_users`` under its own
``trade_platform=<GUID>/date=<day>/`` partition and emitting one Asset event for what it landed, with ``extra``:
rows, files, trade platform, platform type, data interval and schema fingerprint.

The WebAPI has no MT5 user list: an MT5 platform is snapshotted for the logins listed for it in the Variable
``cplugin_mt5_logins`` (JSON ``{"<trade platform GUID>": [login, ...]}``); an MT5 platform without an entry is
left out, with a warning naming it.

``cplugin_platform_users_report`` is scheduled on either users Asset and reads ``triggering_asset_events``: for
each event it checks the announced files hold the announced rows, and returns one line per trade platform.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import AssetAny, Variable, dag, task

from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.operators.base_snapshot import entity_asset
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.schemas import MT4_USER, MT5_USER
from airflow_provider_cplugin.platforms import platform_type_in, same_guid

CONN = "cplugin_default"
USERS = [a for a in (entity_asset(None, MT4_USER), entity_asset(None, MT5_USER)) if a is not None]
log = logging.getLogger(__name__)


@dag(
    dag_id="cplugin_platform_users",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
)
def cplugin_platform_users() -> None:
    @task
    def trade_platforms() -> list[dict[str, Any]]:
        """The snapshot arguments of each visible trade platform (its GUID, its type, MT5 logins)."""
        hook = CPluginWebApiHook(cplugin_conn_id=CONN)
        mt5_logins: dict[str, Any] = Variable.get("cplugin_mt5_logins", default={}, deserialize_json=True)
        kwargs: list[dict[str, Any]] = []
        left_out: list[str] = []
        for platform in hook.trade_platforms():
            guid = str(platform["id"])
            kind = platform_type_in([platform], guid, CONN)
            logins = next((v for k, v in mt5_logins.items() if same_guid(k, guid)), None)
            if kind == "MT5" and not logins:
                left_out.append(guid)
                continue
            kwargs.append({"trade_platform": guid, "platform_type": kind, "logins": logins if kind == "MT5" else None})
        if left_out:
            log.warning(
                "%d MT5 trade platform(s) left out, no logins for them in Variable cplugin_mt5_logins: %s",
                len(left_out), left_out,
            )  # fmt: skip
        return kwargs

    UsersSnapshotOperator.partial(task_id="users", cplugin_conn_id=CONN).expand_kwargs(trade_platforms())


@dag(
    dag_id="cplugin_platform_users_report",
    schedule=AssetAny(*USERS) if USERS else None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
)
def cplugin_platform_users_report() -> None:
    @task
    def users_landed(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """One line per event that started this run; an event whose files do not hold its rows fails the run."""
        import pyarrow.parquet as pq
        from airflow.sdk import Asset, ObjectStoragePath

        lines: list[dict[str, Any]] = []
        for asset, events in (triggering_asset_events or {}).items():
            if not isinstance(asset, Asset):  # an event added through an alias is listed under the alias too
                continue
            for event in events:
                extra = dict(event.extra)
                rows = 0
                for path in extra.get("files", []):
                    with ObjectStoragePath(path).open("rb") as f:
                        rows += pq.ParquetFile(f).metadata.num_rows
                if rows != extra.get("rows"):
                    raise ValueError(
                        f"{asset.uri}: the event announces {extra.get('rows')} rows, its files hold {rows}"
                    )
                print(f"{extra['platform_type']} {extra['trade_platform']}: {rows} users ({event.source_dag_id})")
                lines.append({"uri": asset.uri, "source_dag_id": event.source_dag_id,
                              "source_run_id": event.source_run_id, "source_map_index": event.source_map_index,
                              "extra": extra})  # fmt: skip
        return lines

    users_landed()


cplugin_platform_users()
cplugin_platform_users_report()
