"""Raw stream items (:class:`~.events.RawItems`) → one Arrow record batch of a hub entity, in a worker thread.

**Fast path** (the usual batch): the runs' text goes to Arrow's C++ JSON reader in one call, with the entity's
schema declared exactly (``unexpected_field_behavior="error"``), so a batch decodes without a Python object per
event and mostly without the GIL. It only accepts a batch it can land exactly as the per-record path would:
every item has the declared fields (or lacks some: null), of the declared JSON types, all floats finite, every
timestamp parses. Anything else (an unknown field, a type drift, an overflow, a malformed record) makes it raise.

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
import pyarrow.json as pj

from airflow_provider_cplugin.parquet.convert import parse_utc_timestamps
from airflow_provider_cplugin.parquet.hub_schemas import (
    CHANNEL,
    CLIENT_FIELD_NAMES,
    CONNECTION,
    RECEIVED_AT,
    SEQUENCE_KEY,
)
from airflow_provider_cplugin.parquet.hub_schemas import SEQUENCE as SEQUENCE_FIELD
from airflow_provider_cplugin.parquet.schemas import MSC, TS, EntitySchema
from airflow_provider_cplugin.realtime.events import RS, RawItems

_READ = pj.ReadOptions(use_threads=False, block_size=64 << 20)
# One thread: the triggerer runs other triggers, and a batch is one block (64 MiB ≥ any batch_bytes cut).


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
        wire = [
            (name, pa.string() if pa.types.is_timestamp(dtype) else dtype)
            for name, dtype in entity.fields
            if name not in CLIENT_FIELD_NAMES
        ]
        envelope = pa.schema([("type", pa.int64()), ("invocationId", pa.string()), ("item", pa.struct(wire))])
        self._parse = pj.ParseOptions(explicit_schema=envelope, unexpected_field_behavior="error")

    def decode(self, runs: list[RawItems], connection_offset: int) -> pa.RecordBatch:
        """All items of ``runs`` as a batch of the entity's schema, client columns filled (sequences null);
        raises (any exception) when the batch needs the checked path."""
        data = "".join(run.text for run in runs).replace(RS, "\n").encode()
        table = pj.read_json(pa.BufferReader(data), read_options=_READ, parse_options=self._parse)
        if table.num_rows != sum(run.count for run in runs):
            raise ValueError("row count differs from the item count")
        item = table.column("item").combine_chunks()
        wire = dict(zip((f.name for f in item.type), item.flatten(), strict=True))
        supplied = self.client_columns(runs, connection_offset)
        arrays: list[pa.Array] = []
        for name, dtype in self.entity.fields:
            column = supplied.get(name)
            if column is None:
                column = wire[name]
                if pa.types.is_floating(dtype) and pc.all(pc.is_finite(column)).as_py() is False:
                    raise ValueError(f"{name}: a value is not finite")
                if pa.types.is_timestamp(dtype):
                    if dtype == MSC:
                        raise ValueError("millisecond epochs take the checked path")  # no hub entity has one
                    column = parse_utc_timestamps(column)
                    if column.null_count != wire[name].null_count:
                        raise ValueError(f"{name}: an unset (.NET minimum) time")  # the checked path warns
            arrays.append(column)
        if self.entity.extra == "json":
            arrays.append(pa.nulls(table.num_rows, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.entity.arrow_schema)

    def client_columns(self, runs: list[RawItems], connection_offset: int) -> Mapping[str, pa.Array]:
        """``_receivedAt`` / ``_connection`` per run (run-length decoded), ``_channel``; sequences null."""
        runs = [run for run in runs if run.count]
        ends = pa.array(_cumulative([run.count for run in runs]), pa.int32())
        received = pa.array([int(run.received_at * 1_000_000) for run in runs], pa.int64()).cast(TS)
        connection = pa.array([run.connection + connection_offset for run in runs], pa.int64())
        rows = int(ends[-1].as_py()) if len(ends) else 0
        return {
            RECEIVED_AT: pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, received)),
            CONNECTION: pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(ends, connection)),
            CHANNEL: pa.repeat(pa.scalar(self.channel, pa.string()), rows),
            SEQUENCE_KEY: pa.nulls(rows, pa.string()),
            SEQUENCE_FIELD: pa.nulls(rows, pa.int64()),
        }


def _cumulative(counts: list[int]) -> list[int]:
    total, ends = 0, []
    for count in counts:
        total += count
        ends.append(total)
    return ends
