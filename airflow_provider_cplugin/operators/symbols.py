"""Symbols configuration snapshot (MT4)."""

from __future__ import annotations

from airflow.sdk import Context

from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.parquet.schemas import MT4_SYMBOL


class SymbolsSnapshotOperator(BaseSnapshotOperator):
    """Land every symbol's configuration (MT4 ``CfgRequestSymbol``, live). MT5 has no symbol list in the API."""

    entities = (MT4_SYMBOL,)

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("symbol list", platform_type)
        return [
            SnapshotPart(
                MT4_SYMBOL, self.decoded(MT4_SYMBOL, "CfgRequestSymbol", "MT4", trade_platform, cursor_paged=False)
            )
        ]
