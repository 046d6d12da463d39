"""Arrow schemas of realtime hub events (MT4/MT5 v2 hub payloads, reference §8), plus client-side columns.

Hub payloads use ints for enums (``cmd``, ``levelType``...) unlike REST, and are kept that way. Every event row
also carries ``_receivedAt`` (UTC time the client received it), ``_connection`` (1 for the first connection, +1 per
reconnect, continued across trigger instances of one run, so a gap is visible in the data), ``_channel`` (the stream
it came from) and, when the sample has a sequence function for the stream, ``_sequenceKey`` / ``_sequence`` (the
event's partition and index: the key a reader can check for holes and duplicates; null otherwise).
"""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_cplugin.parquet.schemas import BOOL, FLOAT, INT, STR, TS, EntitySchema, register

RECEIVED_AT = "_receivedAt"
CONNECTION = "_connection"
CHANNEL = "_channel"
SEQUENCE_KEY = "_sequenceKey"
SEQUENCE = "_sequence"
CLIENT_FIELDS = [(RECEIVED_AT, TS), (CONNECTION, INT), (CHANNEL, STR), (SEQUENCE_KEY, STR), (SEQUENCE, INT)]


def _hub_entity(name: str, fields: list[tuple[str, pa.DataType]], description: str) -> EntitySchema:
    return register(EntitySchema(name=name, fields=tuple([*fields, *CLIENT_FIELDS]), key=(), description=description))


HUB_TICKS = _hub_entity(
    "hub_ticks",
    [("symbol", STR), ("bid", FLOAT), ("ask", FLOAT), ("lastTime", TS)],
    "MT4 v2 StreamTicks / OnTick items",
)
HUB_MT4_MARGIN_CALLS = _hub_entity(
    "hub_mt4_margin_calls",
    [
        ("login", INT),
        ("group", STR),
        ("leverage", INT),
        ("updated", INT),
        ("balance", FLOAT),
        ("equity", FLOAT),
        ("volumeLots", FLOAT),
        ("margin", FLOAT),
        ("free", FLOAT),
        ("level", FLOAT),
        ("controllingType", INT),
        ("levelType", INT),
    ],
    "MT4 v2 StreamMarginCallUpdates items",
)
HUB_TRADES = _hub_entity(
    "hub_trades",
    [
        ("kind", STR),
        ("order", INT),
        ("login", INT),
        ("symbol", STR),
        ("cmd", INT),
        ("volumeLots", FLOAT),
        ("openPrice", FLOAT),
        ("openTime", TS),
        ("sl", FLOAT),
        ("tp", FLOAT),
        ("closePrice", FLOAT),
        ("closeTime", TS),
        ("commission", FLOAT),
        ("storage", FLOAT),
        ("profit", FLOAT),
        ("taxes", FLOAT),
        ("comment", STR),
    ],
    "MT4 v2 StreamTrades items",
)
HUB_USER_UPDATES = _hub_entity(
    "hub_user_updates",
    [
        ("kind", STR),
        ("login", INT),
        ("group", STR),
        ("name", STR),
        ("country", STR),
        ("leverage", INT),
        ("balance", FLOAT),
        ("credit", FLOAT),
        ("enabled", BOOL),
        ("readOnly", BOOL),
        ("regDate", TS),
        ("lastDate", TS),
        ("email", STR),
        ("phone", STR),
        ("comment", STR),
    ],
    "MT4 v2 StreamUserUpdates items (online users and account changes)",
)
HUB_SYMBOL_UPDATES = _hub_entity(
    "hub_symbol_updates",
    [
        ("kind", STR),
        ("symbol", STR),
        ("description", STR),
        ("currency", STR),
        ("digits", INT),
        ("tradeMode", INT),
        ("spread", INT),
        ("stopsLevel", INT),
        ("freezeLevel", INT),
        ("contractSize", FLOAT),
        ("tickValue", FLOAT),
        ("tickSize", FLOAT),
        ("marginInitial", FLOAT),
        ("marginMaintenance", FLOAT),
    ],
    "MT4 v2 StreamSymbolUpdates items",
)
HUB_MT5_MARGIN_CALLS = _hub_entity(
    "hub_mt5_margin_calls",
    [("login", INT), ("type", STR), ("direction", STR)],
    "MT5 v2 StreamMarginCallUpdates items",
)

# (platform type, hub stream method) → entity its items land as.
STREAM_ENTITIES: dict[tuple[str, str], EntitySchema] = {
    ("MT4", "StreamTicks"): HUB_TICKS,
    ("MT4", "StreamMarginCallUpdates"): HUB_MT4_MARGIN_CALLS,
    ("MT4", "StreamTrades"): HUB_TRADES,
    ("MT4", "StreamUserUpdates"): HUB_USER_UPDATES,
    ("MT4", "StreamSymbolUpdates"): HUB_SYMBOL_UPDATES,
    ("MT5", "StreamMarginCallUpdates"): HUB_MT5_MARGIN_CALLS,
}
