"""Open orders snapshot: MT4 open trades; MT5 active orders and open positions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.parquet.schemas import MT4_OPEN_TRADE, MT5_ORDER, MT5_POSITION


class OpenOrdersSnapshotOperator(BaseSnapshotOperator):
    """Land what is open right now.

    * MT4: open and pending trades from the pump cache (``TradesGet``, cursor-paged by ticket) → ``mt4_open_trades``.
    * MT5: active orders (``OrderByGroup/{mask}``) → ``mt5_orders`` and open positions (``PositionByGroup/{mask}``)
      → ``mt5_positions``, two files, both cursor-paged by id, committed together: if positions fail after the
      orders were read, neither file of this run appears and the previous ones stay as they were.

    :param group_mask: MT5 group mask (default ``*``, every group); ignored for MT4.
    """

    entities = (MT4_OPEN_TRADE, MT5_ORDER, MT5_POSITION)
    template_fields: Sequence[str] = (*BaseSnapshotOperator.template_fields, "group_mask")

    def __init__(self, *, group_mask: str = "*", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_mask = group_mask

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type == "MT4":
            return [SnapshotPart(MT4_OPEN_TRADE, self.decoded(MT4_OPEN_TRADE, "TradesGet", "MT4", trade_platform))]
        mask = (self.group_mask,)
        return [
            SnapshotPart(MT5_ORDER, self.decoded(MT5_ORDER, "OrderByGroup", "MT5", trade_platform, path_params=mask)),
            SnapshotPart(
                MT5_POSITION, self.decoded(MT5_POSITION, "PositionByGroup", "MT5", trade_platform, path_params=mask)
            ),
        ]
