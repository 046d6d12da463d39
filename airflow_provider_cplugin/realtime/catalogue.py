"""The hub streams, catalogued once: per platform, each stream method, its arguments and the fields of its items.

Light on purpose (standard library only): the trigger's request validation (:mod:`.sample_request`) and the hub
contract (:mod:`.hubs`) read it on the triggerer's event loop; the Arrow schemas of the landed items are built
from the same rows in :mod:`airflow_provider_cplugin.parquet.hub_schemas`. Field types are named, not Arrow
types: ``int`` (int64), ``float`` (float64), ``str``, ``bool``, ``ts`` (ISO-8601 → UTC µs timestamp). Hub
payloads use ints for enums (``cmd``, ``levelType``...) unlike REST, and are kept that way (reference §8).
"""

from __future__ import annotations

from dataclasses import dataclass

MT4 = "MT4"
MT5 = "MT5"


@dataclass(frozen=True)
class HubStreamInfo:
    """One server stream of one platform's hub and the entity its items land as."""

    platform: str
    method: str
    entity: str
    fields: tuple[tuple[str, str], ...]
    description: str
    max_args: int = 0
    """Arguments the method takes (``StreamTicks(symbol)``: 1, none = every symbol)."""


_MT4_MARGIN_CALL = (
    ("login", "int"), ("group", "str"), ("leverage", "int"), ("updated", "int"), ("balance", "float"),
    ("equity", "float"), ("volumeLots", "float"), ("margin", "float"), ("free", "float"), ("level", "float"),
    ("controllingType", "int"), ("levelType", "int"),
)  # fmt: skip
_MT4_TRADE = (
    ("kind", "str"), ("order", "int"), ("login", "int"), ("symbol", "str"), ("cmd", "int"), ("volumeLots", "float"),
    ("openPrice", "float"), ("openTime", "ts"), ("sl", "float"), ("tp", "float"), ("closePrice", "float"),
    ("closeTime", "ts"), ("commission", "float"), ("storage", "float"), ("profit", "float"), ("taxes", "float"),
    ("comment", "str"),
)  # fmt: skip
_MT4_USER_UPDATE = (
    ("kind", "str"), ("login", "int"), ("group", "str"), ("name", "str"), ("country", "str"), ("leverage", "int"),
    ("balance", "float"), ("credit", "float"), ("enabled", "bool"), ("readOnly", "bool"), ("regDate", "ts"),
    ("lastDate", "ts"), ("email", "str"), ("phone", "str"), ("comment", "str"),
)  # fmt: skip
_MT4_SYMBOL_UPDATE = (
    ("kind", "str"), ("symbol", "str"), ("description", "str"), ("currency", "str"), ("digits", "int"),
    ("tradeMode", "int"), ("spread", "int"), ("stopsLevel", "int"), ("freezeLevel", "int"),
    ("contractSize", "float"), ("tickValue", "float"), ("tickSize", "float"), ("marginInitial", "float"),
    ("marginMaintenance", "float"),
)  # fmt: skip

# MT5 v2 serves only margin-call updates; the rest is "deferred server-side".
CATALOGUE: tuple[HubStreamInfo, ...] = (
    HubStreamInfo(MT4, "StreamTicks", "hub_ticks",
                  (("symbol", "str"), ("bid", "float"), ("ask", "float"), ("lastTime", "ts")),
                  "MT4 v2 StreamTicks / OnTick items", max_args=1),
    HubStreamInfo(MT4, "StreamMarginCallUpdates", "hub_mt4_margin_calls", _MT4_MARGIN_CALL,
                  "MT4 v2 StreamMarginCallUpdates items"),
    HubStreamInfo(MT4, "StreamTrades", "hub_trades", _MT4_TRADE, "MT4 v2 StreamTrades items"),
    HubStreamInfo(MT4, "StreamUserUpdates", "hub_user_updates", _MT4_USER_UPDATE,
                  "MT4 v2 StreamUserUpdates items (online users and account changes)"),
    HubStreamInfo(MT4, "StreamSymbolUpdates", "hub_symbol_updates", _MT4_SYMBOL_UPDATE,
                  "MT4 v2 StreamSymbolUpdates items"),
    HubStreamInfo(MT5, "StreamMarginCallUpdates", "hub_mt5_margin_calls",
                  (("login", "int"), ("type", "str"), ("direction", "str")), "MT5 v2 StreamMarginCallUpdates items"),
)  # fmt: skip

BY_STREAM: dict[tuple[str, str], HubStreamInfo] = {(s.platform, s.method): s for s in CATALOGUE}
STREAMS: dict[str, frozenset[str]] = {p: frozenset(s.method for s in CATALOGUE if s.platform == p) for p in (MT4, MT5)}
MAX_ARGS: dict[str, int] = {s.method: s.max_args for s in CATALOGUE}
