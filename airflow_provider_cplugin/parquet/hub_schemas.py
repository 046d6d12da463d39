"""Arrow schemas of realtime hub events, built from the stream catalogue (:mod:`..realtime.catalogue`: the one
place a hub stream and its item fields are declared), plus client-side columns.

Hub entities are not in the REST registry (:data:`..parquet.schemas.ENTITIES`): their rows carry client columns
only the hub sampler fills, so the generic REST operator never accepts them, whatever was imported. Every event row
also carries ``_receivedAt`` (UTC time the client received it), ``_connection`` (1 for the first connection, +1 per
reconnect, continued across trigger instances of one run, so a gap is visible in the data), ``_channel`` (the stream
it came from) and, when the sample has a sequence function for the stream, ``_sequenceKey`` / ``_sequence`` (the
event's partition and index: the key a reader can check for holes and duplicates; null otherwise).
"""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_cplugin.parquet.schemas import BOOL, FLOAT, INT, STR, TS, EntitySchema
from airflow_provider_cplugin.realtime.catalogue import CATALOGUE

RECEIVED_AT = "_receivedAt"
CONNECTION = "_connection"
CHANNEL = "_channel"
SEQUENCE_KEY = "_sequenceKey"
SEQUENCE = "_sequence"
CLIENT_FIELDS = [(RECEIVED_AT, TS), (CONNECTION, INT), (CHANNEL, STR), (SEQUENCE_KEY, STR), (SEQUENCE, INT)]
CLIENT_FIELD_NAMES = frozenset(name for name, _ in CLIENT_FIELDS)
_TYPES: dict[str, pa.DataType] = {"int": INT, "float": FLOAT, "str": STR, "bool": BOOL, "ts": TS}


HUB_ENTITIES: dict[str, EntitySchema] = {
    s.entity: EntitySchema(
        name=s.entity,
        fields=tuple([*((name, _TYPES[kind]) for name, kind in s.fields), *CLIENT_FIELDS]),
        key=(),
        description=s.description,
    )
    for s in CATALOGUE
}
"""Hub entities by name."""

STREAM_ENTITIES: dict[tuple[str, str], EntitySchema] = {
    (s.platform, s.method): HUB_ENTITIES[s.entity] for s in CATALOGUE
}
"""(platform type, hub stream method) → entity its items land as."""

HUB_TICKS = HUB_ENTITIES["hub_ticks"]
HUB_MT4_MARGIN_CALLS = HUB_ENTITIES["hub_mt4_margin_calls"]
HUB_TRADES = HUB_ENTITIES["hub_trades"]
HUB_USER_UPDATES = HUB_ENTITIES["hub_user_updates"]
HUB_SYMBOL_UPDATES = HUB_ENTITIES["hub_symbol_updates"]
HUB_MT5_MARGIN_CALLS = HUB_ENTITIES["hub_mt5_margin_calls"]
