"""JSON bytes → a checked Arrow record batch of an entity, in C++: the one decode path of every landing.

:class:`JsonDecoder` is the mechanism: Arrow's C++ JSON reader (``pyarrow.json``) reads the bytes with an explicit
schema in which the entity's records are a struct of its wire fields (datetimes as text), undeclared keys inferred
(``unexpected_field_behavior="infer"``, so drift is visible as extra struct fields), and the records' columns go
through the converter's columnar checks (:meth:`RecordBatchConverter.from_wire_columns
<.convert.RecordBatchConverter.from_wire_columns>`: finite floats, datetimes with and without offset, .NET's unset
minimum → null, ``*Msc`` epochs, keys present), the same code the records path runs. Where the records sit in the
bytes is the caller's framing, an adapter around it:

* :class:`PageDecoder` (REST, the hooks' :class:`~airflow_provider_cplugin.hooks.envelope.DataDecoder`): a page's
  whole envelope is ONE JSON object, read as one row of ``{data: list<struct>, meta}``;
* :class:`~airflow_provider_cplugin.realtime.item_decode.ItemDecoder` (hub streams): a batch of SignalR stream item
  messages, one per line, read as rows of ``{type, invocationId, item: struct}``; the sampler's client columns
  (``_receivedAt``, ``_connection``...) are supplied as whole columns.

``pyarrow.json`` is strict where the records path coerces or must name the bad value, so bytes go to the general
path (orjson, then :meth:`RecordBatchConverter.convert <.convert.RecordBatchConverter.convert>` on the records;
for the hub, per-item isolation into rejects) when they hold anything the C++ reader refuses or cannot express:

* a value of another JSON type than declared (``"1001"`` for an integer, ``42`` for a text, an object for a JSON
  text field, ``1.0`` or ``1.5`` or ``1e3`` for an integer, an integer beyond int64, a number beyond float64): the
  records path coerces losslessly with a warning or refuses naming ``entity.field``;
* an undeclared field in a record of an entity that keeps an ``_extra`` JSON column (its text needs each record's
  own keys: Arrow cannot tell an absent key from a null one); entities that drop undeclared fields stay columnar;
* a null record, duplicate keys, malformed JSON; for a REST page also a second JSON value after the envelope, an
  ``error`` that is not null (the general path raises the envelope's error), a body with neither ``data`` nor
  ``meta``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.json as pj

from airflow_provider_cplugin.hooks.envelope import DecodedBody
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.schemas import EntitySchema

_META = pa.struct(
    [
        ("activityId", pa.string()),
        ("paging", pa.struct([("nextCursor", pa.string()), ("hasMore", pa.bool_())])),
    ]
)
_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


class JsonDecoder:
    """Reads JSON bytes with a framing schema built around the entity's record struct and checks the records'
    columns; keeps its converter (and so its warn-once memory) across calls.

    :param supplied: wire names of columns the caller supplies whole (not in the JSON), e.g. hub client columns.
    """

    def __init__(
        self, entity: EntitySchema, converter: RecordBatchConverter | None = None, *, supplied: Collection[str] = ()
    ) -> None:
        self.entity = entity
        self.converter = converter or RecordBatchConverter(entity)
        self.supplied = frozenset(supplied)
        self.record_struct = pa.struct([f for f in self.converter.wire_struct if f.name not in self.supplied])
        """The records' fields as they travel (datetimes as text): what a framing schema places its records as."""

    def parse_options(self, framing: pa.Schema, *, newlines_in_values: bool) -> pj.ParseOptions:
        """Options for :meth:`read` with ``framing`` (built around :attr:`record_struct`)."""
        return pj.ParseOptions(
            explicit_schema=framing, unexpected_field_behavior="infer", newlines_in_values=newlines_in_values
        )

    def read(self, data: bytes, parse: pj.ParseOptions) -> pa.Table | None:
        """The bytes as a table of the framing schema (in one block, one thread), or None when the C++ reader
        refuses them."""
        try:
            return pj.read_json(
                pa.BufferReader(data),
                read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=parse,
            )
        except _READ_ERRORS:
            return None

    def batch(self, records: pa.Array, supplied: Mapping[str, pa.Array] | None = None) -> pa.RecordBatch | None:
        """The records (a struct array read as :attr:`record_struct`, plus inferred undeclared fields) as a checked
        batch of the entity, or None when the general path must take them (a null record; undeclared fields of an
        entity with an ``_extra`` column). Raises :class:`~.convert.SchemaDriftError` for what no path can land."""
        if records.null_count:
            return None
        declared = len(self.record_struct)
        unknown = [f.name for f in records.type][declared:]
        if unknown and self.entity.extra == "json":
            return None
        wire = iter(records.flatten()[:declared])
        given = supplied or {}
        columns = [given[name] if name in self.supplied else next(wire) for name in self.entity.wire_names]
        return self.converter.from_wire_columns(columns, unknown)


class PageDecoder:
    """The REST envelope around :class:`JsonDecoder`: decodes one entity's pages (bodies or decoded records) to
    record batches of its Parquet schema."""

    def __init__(self, entity: EntitySchema, converter: RecordBatchConverter | None = None) -> None:
        self.entity = entity
        self.json = JsonDecoder(entity, converter)
        self.converter = self.json.converter
        self._parse = self.json.parse_options(
            pa.schema([("data", pa.list_(self.json.record_struct)), ("meta", _META)]),
            newlines_in_values=True,  # a pretty-printed body is one object over many lines
        )
        self.bodies = 0
        """Bodies decoded in C++."""
        self.fallbacks = 0
        """Bodies the general path decoded (handed back by the hook through :meth:`records`)."""

    def body(self, body: bytes) -> DecodedBody | None:
        """A success envelope straight to a record batch, or None when the general path must take it."""
        table = self.json.read(body, self._parse)
        if table is None or table.num_rows != 1 or "error" not in table.column_names:
            return None  # not one envelope
        if table.column("error").null_count != 1:
            return None  # an error the general path raises with its code and message
        data = table.column("data").combine_chunks()
        meta = table.column("meta")[0].as_py()
        if data.null_count:
            if meta is None:
                return None  # neither data nor meta: not an envelope
            return DecodedBody(None, meta)
        batch = self.json.batch(data.flatten())
        if batch is None:
            return None
        self.bodies += 1
        return DecodedBody(batch, meta if isinstance(meta, dict) else {})

    def records(self, data: list[Any]) -> pa.RecordBatch:
        """Records decoded by the general path, through the same converter."""
        self.fallbacks += 1
        return self.converter.convert(data)

    def page(self, page: pa.RecordBatch | Sequence[dict[str, Any]]) -> pa.RecordBatch:
        """A page in either form as a record batch of the entity (records from sources that build them)."""
        if isinstance(page, pa.RecordBatch):
            return page
        return self.converter.convert(page)
