"""MT5 symbol configuration for the symbols traded (seen in open positions)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.operators.dataset_support import Records, symbols
from airflow_provider_cplugin.parquet.schemas import MT5_SYMBOL, MT5_SYMBOL_JSON_FIELDS


class Mt5SymbolsSnapshotOperator(BaseSnapshotOperator):
    """Land ``SymbolGet/{symbol}`` (MT5Symbol) → ``mt5_symbols`` for ``symbols``, or else for every symbol of the
    open positions of ``group_mask`` (``PositionByGroup``): the API has no MT5 symbol list. Rows by symbol;
    sessions and margin-rate maps land as JSON text. For MT4 use ``SymbolsSnapshotOperator`` (a full list
    exists there)."""

    entities = (MT5_SYMBOL,)
    template_fields: Sequence[str] = (*BaseSnapshotOperator.template_fields, "symbols", "group_mask")

    def __init__(self, *, symbols: Sequence[str] | str | None = None, group_mask: str = "*", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = symbols
        self.group_mask = group_mask

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT5":
            raise CPluginConfigError("platform_type", "MT4 has a symbol list: use SymbolsSnapshotOperator")
        explicit = symbols(self.symbols, required=False)
        return [SnapshotPart(MT5_SYMBOL, lambda: self._symbols(trade_platform, explicit))]

    def _symbols(self, trade_platform: str, explicit: list[str]) -> Iterator[Records]:
        names = sorted(explicit) if explicit else self._seen(trade_platform)
        self.log.info("MT5 symbols to read: %d", len(names))
        rows = []
        for name in names:
            row = self.hook.get(
                self.hook.v2_path("SymbolGet", name, trade_platform=trade_platform, platform_type="MT5")
            )
            rows.append({k: json.dumps(v, sort_keys=True) if k in MT5_SYMBOL_JSON_FIELDS and v is not None else v
                         for k, v in (row or {}).items()})  # fmt: skip
        yield rows

    def _seen(self, trade_platform: str) -> list[str]:
        positions = self.paged("PositionByGroup", "MT5", trade_platform, path_params=(self.group_mask,))
        return sorted({p["symbol"] for page in positions() for p in page if p.get("symbol")})
