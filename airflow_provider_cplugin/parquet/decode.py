"""Page bodies → Arrow record batches of an entity, in C++: the decode path of every REST landing.

:class:`PageDecoder` is the hooks' :class:`~airflow_provider_cplugin.hooks.envelope.DataDecoder` for one entity.
A page's whole envelope is ONE JSON object, so ``pyarrow.json`` reads it as one row of ``{data: list<struct<the
entity's wire fields>>, meta}`` with an explicit schema (datetimes as text), and the list's flattened values are the
page's columns. Undeclared keys are inferred (``unexpected_field_behavior="infer"``), which makes both an
undeclared record field and the envelope's ``error`` key visible as extra columns. The columns then go through the
converter's columnar checks (finite floats, datetimes with and without offset, .NET's unset minimum → null, ``*Msc``
epochs, keys present): the same code the records path runs.

``pyarrow.json`` is strict where the records path coerces or must name the bad value, so a body falls back to the
general path (orjson, then :meth:`RecordBatchConverter.convert <.convert.RecordBatchConverter.convert>` on the
records) when it holds anything the C++ reader refuses or cannot express:

* a value of another JSON type than declared (``"1001"`` for an integer, ``42`` for a text, an object for a JSON
  text field, ``1.0`` or ``1.5`` or ``1e3`` for an integer, an integer beyond int64, a number beyond float64): the
  records path coerces losslessly with a warning or refuses naming ``entity.field``;
* an undeclared field in a record of an entity that keeps an ``_extra`` JSON column (its text needs each record's
  own keys: Arrow cannot tell an absent key from a null one); entities that drop undeclared fields stay columnar;
* a null record in the list, duplicate keys, a second JSON value after the envelope, an ``error`` that is not null
  (the general path raises the envelope's error), a body with neither ``data`` nor ``meta``, malformed JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class PageDecoder:
    """Decodes one entity's pages (bodies or decoded records) to record batches of its Parquet schema; keeps its
    converter (and so its warn-once memory) across the pages of a landing."""

    def __init__(self, entity: EntitySchema, converter: RecordBatchConverter | None = None) -> None:
        self.entity = entity
        self.converter = converter or RecordBatchConverter(entity)
        self._declared = len(entity.fields)
        self._parse = pj.ParseOptions(
            explicit_schema=pa.schema([("data", pa.list_(self.converter.wire_struct)), ("meta", _META)]),
            unexpected_field_behavior="infer",
            newlines_in_values=True,  # a pretty-printed body is one object over many lines
        )
        self.bodies = 0
        """Bodies decoded in C++."""
        self.fallbacks = 0
        """Bodies the general path decoded (handed back by the hook through :meth:`records`)."""

    def body(self, body: bytes) -> DecodedBody | None:
        """A success envelope straight to a record batch, or None when the general path must take it."""
        try:
            table = pj.read_json(
                pa.BufferReader(body),
                read_options=pj.ReadOptions(use_threads=False, block_size=len(body) + 1),
                parse_options=self._parse,
            )
        except _READ_ERRORS:
            return None
        if table.num_rows != 1 or "error" not in table.column_names or table.column("error").null_count != 1:
            return None  # not one envelope, or an error the general path raises with its code and message
        data = table.column("data").combine_chunks()
        meta = table.column("meta")[0].as_py()
        if data.null_count:
            if meta is None:
                return None  # neither data nor meta: not an envelope
            return DecodedBody(None, meta)
        records = data.flatten()
        if records.null_count:
            return None  # a null record: the general path decides what it means
        unknown = [f.name for f in records.type][self._declared :]
        if unknown and self.entity.extra == "json":
            return None
        batch = self.converter.from_wire_columns(records.flatten()[: self._declared], unknown)
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
