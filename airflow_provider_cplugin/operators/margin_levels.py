"""Margin levels snapshot (MT4)."""

from __future__ import annotations

from airflow.sdk import Context

from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.parquet.schemas import MT4_MARGIN_LEVEL


class MarginLevelsSnapshotOperator(BaseSnapshotOperator):
    """Land the margin level of every account with open positions (MT4 ``MarginsGet``, pump cache).

    MT5 margin levels are not offered over REST (only as realtime ``OnMarginCall`` hub events).
    """

    entities = (MT4_MARGIN_LEVEL,)

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("margin levels over REST (sample the MT5 hub instead)", platform_type)
        return [
            SnapshotPart(
                MT4_MARGIN_LEVEL,
                self.decoded(MT4_MARGIN_LEVEL, "MarginsGet", "MT4", trade_platform, cursor_paged=False),
            )
        ]
