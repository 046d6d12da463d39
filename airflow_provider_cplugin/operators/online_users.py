"""Online users snapshot (MT4)."""

from __future__ import annotations

from airflow.sdk import Context

from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.parquet.schemas import MT4_ONLINE


class OnlineUsersSnapshotOperator(BaseSnapshotOperator):
    """Land who is online now (MT4 ``OnlineGet``, cursor-paged, from the pump cache).

    A cold pump cache answers ``NoConnect`` ("retry later"): the task fails with that code and Airflow's task
    retries take it from there. MT5 has no online-users endpoint in the API.
    """

    entities = (MT4_ONLINE,)

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("online users list", platform_type)
        return [SnapshotPart(MT4_ONLINE, self.decoded(MT4_ONLINE, "OnlineGet", "MT4", trade_platform))]
