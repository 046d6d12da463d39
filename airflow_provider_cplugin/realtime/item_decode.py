"""Raw stream items (:class:`~.events.RawItems`) → one Arrow record batch of a hub entity, in a worker thread.

**Fast path** (the usual batch): the hub's framing around the one decode path of every landing
(:class:`~airflow_provider_cplugin.parquet.decode.JsonDecoder`, also behind every REST page): the runs' stream item
messages, one per line, are read in one C++ call as rows of ``{type, invocationId, item: <the entity's record
struct>}``, and the items go through the same columnar checks as a REST page, with the sampler's client columns
supplied whole. So a batch decodes without a Python object per event and mostly without the GIL. It refuses (raises)
whatever the checked path must decide: an unknown field, a type drift, an overflow, a null or malformed item.

**Checked path** (what the fast path refused): the items are decoded with orjson and converted by the shared
:class:`~airflow_provider_cplugin.parquet.convert.RecordBatchConverter` (drift to ``_extra``, lossless coercions
with a warning, lossy values refused), and a batch that does not convert is split until the failing items are
isolated (rejects). A record that is not JSON at all is isolated the same way, with its text.

``tests/realtime/test_item_decode.py`` holds both paths to the same output on clean items of every hub entity.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.parquet.decode import JsonDecoder
from airflow_provider_cplugin.parquet.hub_schemas import (
    CHANNEL,
    CLIENT_FIELD_NAMES,
    CONNECTION,
    RECEIVED_AT,
    SEQUENCE_KEY,
)
from airflow_provider_cplugin.parquet.hub_schemas import SEQUENCE as SEQUENCE_FIELD
from airflow_provider_cplugin.parquet.schemas import TS, EntitySchema
from airflow_provider_cplugin.parquet.values import int64s, text
from airflow_provider_cplugin.realtime.events import RS, RawItems


@dataclass(slots=True)
class Item:
    """One decoded item (checked path, sequences): what a rejects line and the client columns need."""

    payload: Any
    received_at: float
    connection: int
    sequence: tuple[Hashable, int] | None = None
    text: str | None = None
    """The record text when it is not JSON (``payload`` is then None)."""


def decode_items(runs: list[RawItems], channel: str) -> tuple[list[Item], list[tuple[Item, str]]]:
    """Every record of ``runs`` decoded (orjson, one parse per run); records that are not a stream item message
    in valid JSON come back apart with the reason."""
    items: list[Item] = []
    bad: list[tuple[Item, str]] = []
    for run in runs:
        try:
            messages = run.messages()
        except ValueError:
            messages = []
            for record in run.records():
                try:
                    messages.append(orjson.loads(record))
                except ValueError as err:
                    messages.append(None)
                    bad.append((Item(None, run.received_at, run.connection, text=record), f"not JSON: {err}"))
        for message in messages:
            if message is None:
                continue
            if not isinstance(message, dict) or "item" not in message:
                text = orjson.dumps(message).decode()
                bad.append((Item(None, run.received_at, run.connection, text=text), "not a stream item message"))
                continue
            items.append(Item(message["item"], run.received_at, run.connection))
    return items, bad


class ItemDecoder:
    """The fast path for one entity (see the module docstring); the checked path is the caller's converter."""

    def __init__(self, entity: EntitySchema, channel: str) -> None:
        self.entity = entity
        self.channel = channel
        self.json = JsonDecoder(entity, supplied=CLIENT_FIELD_NAMES)
        framing = pa.schema([("type", pa.int64()), ("invocationId", pa.string()), ("item", self.json.record_struct)])
        self._parse = self.json.parse_options(framing, newlines_in_values=False)  # one message per line

    def decode(self, runs: list[RawItems], connection_offset: int) -> pa.RecordBatch:
        """All items of ``runs`` as a batch of the entity's schema, client columns filled (sequences null);
        raises (any exception) when the batch needs the checked path."""
        data = "".join(run.text for run in runs).replace(RS, "\n").encode()
        table = self.json.read(data, self._parse)
        if table is None:
            raise ValueError("the C++ JSON reader refused the batch")
        if table.num_rows != sum(run.count for run in runs):
            raise ValueError("row count differs from the item count")
        batch = self.json.batch(table.column("item").combine_chunks(), self.client_columns(runs, connection_offset))
        if batch is None:
            raise ValueError("a null item or an undeclared field")
        return batch

    def client_columns(self, runs: list[RawItems], connection_offset: int) -> Mapping[str, pa.Array]:
        """``_receivedAt`` / ``_connection`` per run (run-length decoded), ``_channel``; sequences null."""
        runs = [run for run in runs if run.count]
        # Built from bytes (parquet/values.py): a Python value handed to pyarrow would make it import pandas.
        counts = _cumulative([run.count for run in runs])
        ends = int64s(counts).cast(pa.int32())
        received = int64s([int(run.received_at * 1_000_000) for run in runs]).cast(TS)
        connection = int64s([run.connection + connection_offset for run in runs])
        rows = counts[-1] if counts else 0
        return {
            RECEIVED_AT: pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, received)),
            CONNECTION: pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, connection)),
            CHANNEL: pa.repeat(text(self.channel), rows),
            SEQUENCE_KEY: pa.nulls(rows, pa.string()),
            SEQUENCE_FIELD: pa.nulls(rows, pa.int64()),
        }


def _cumulative(counts: list[int]) -> list[int]:
    total, ends = 0, []
    for count in counts:
        total += count
        ends.append(total)
    return ends
