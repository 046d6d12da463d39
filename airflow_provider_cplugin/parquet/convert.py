"""Turn pages of wire records (lists of dicts) into typed Arrow record batches of an entity's schema.

Schema drift is expected from a live API and must never lose data or crash a nightly load:

* an **extra field** the schema does not declare goes into the ``_extra`` JSON column (or is dropped when the
  entity says so), with one warning per field per converter;
* a **missing optional field** becomes null;
* a **wrong type** is coerced when the value converts losslessly (``"1001"`` → 1001, ``1`` → ``"1"``) with one
  warning per field; a value that does not convert raises :class:`SchemaDriftError` naming the entity, field and
  value, before anything is committed;
* a **null key** (``login``, ``order``, ``deal``...) is an error: such a row cannot be de-duplicated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.parquet.schemas import TS, EntitySchema

log = logging.getLogger(__name__)

_NS_UTC = pa.timestamp("ns", tz="UTC")
_HAS_OFFSET = r"(Z|z|[+-]\d\d:?\d\d)$"


class SchemaDriftError(CPluginError):
    """A record does not fit the declared schema and cannot be coerced without losing meaning."""

    def __init__(self, entity: str, field: str, problem: str) -> None:
        self.entity = entity
        self.field = field
        super().__init__(f"{entity}.{field}: {problem}")


def parse_utc_timestamps(values: pa.Array) -> pa.Array:
    """ISO-8601 strings → UTC microsecond timestamps.

    Lenient as the reference asks: with or without ``Z``/offset (naive means UTC), up to 7 fractional digits
    (.NET ticks), so we parse at ns precision first and truncate to µs.
    """
    if pa.types.is_timestamp(values.type):
        return values.cast(TS, safe=False)
    strings = values.cast(pa.string())
    try:
        parsed = strings.cast(_NS_UTC)
    except pa.ArrowInvalid:
        naive = pc.invert(pc.match_substring_regex(strings, _HAS_OFFSET))
        strings = pc.if_else(naive, pc.binary_join_element_wise(strings, "Z", ""), strings)
        parsed = strings.cast(_NS_UTC)
    return parsed.cast(TS, safe=False)


class RecordBatchConverter:
    """Converts pages for one entity; remembers which drift it already warned about."""

    def __init__(self, entity: EntitySchema) -> None:
        self.entity = entity
        self.schema = entity.arrow_schema
        # Timestamps travel as strings and are parsed column-wise afterwards (much faster than per value).
        self._wire_struct = pa.struct([(name, pa.string() if dtype == TS else dtype) for name, dtype in entity.fields])
        self._known = frozenset(entity.wire_names)
        self._int_fields = [
            (i, name, dtype) for i, (name, dtype) in enumerate(entity.fields) if pa.types.is_integer(dtype)
        ]
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def convert(
        self, records: Sequence[dict[str, Any]], supplied: Mapping[str, pa.Array] | None = None
    ) -> pa.RecordBatch:
        """Convert one page. ``supplied`` gives whole columns (by wire name) that are not in the records, e.g.
        client-side metadata, so nothing has to be merged into every dict."""
        try:
            # Fast path: Arrow's C++ converter reads the dicts directly, ignoring unknown keys.
            struct = pa.array(records, type=self._wire_struct)
            columns = self._refuse_truncated_floats(records, struct.flatten())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns = [self._convert_column(records, name, wire_type) for name, wire_type in self._wire_struct_items()]
        arrays: list[pa.Array] = []
        for (name, dtype), column in zip(self.entity.fields, columns, strict=True):
            if supplied and name in supplied:
                column = supplied[name]
            if dtype == TS:
                column = self._timestamps(name, column)
            if name in self.entity.key and column.null_count:
                raise SchemaDriftError(self.entity.name, name, f"{column.null_count} record(s) have no key value")
            arrays.append(column)
        if self.entity.extra == "json":
            arrays.append(self._extra_column(records))
        else:
            self._note_extra_fields(records)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _wire_struct_items(self) -> list[tuple[str, pa.DataType]]:
        return [(f.name, f.type) for f in self._wire_struct]

    def _refuse_truncated_floats(self, records: Sequence[dict[str, Any]], columns: list[pa.Array]) -> list[pa.Array]:
        # Arrow fills an integer field from a Python float by truncating it (1.5 -> 1) without complaint: rebuild
        # the integer columns that received floats through the checked path.
        for index, name, wire_type in self._int_fields:
            if any(type(r.get(name)) is float for r in records):
                columns[index] = self._convert_column(records, name, wire_type)
        return columns

    def _convert_column(self, records: Sequence[dict[str, Any]], name: str, wire_type: pa.DataType) -> pa.Array:
        values = [r.get(name) for r in records]
        if pa.types.is_integer(wire_type) and any(type(v) is float for v in values):
            bad = next((v for v in values if type(v) is float and not v.is_integer()), None)
            if bad is not None:
                raise SchemaDriftError(self.entity.name, name, f"value {bad!r} (float) does not fit {wire_type}")
            self._warn_once(
                f"type:{name}", "%s.%s: coerced integral float values to %s", self.entity.name, name, wire_type
            )
            values = [int(v) if type(v) is float else v for v in values]
        try:
            return pa.array(values, type=wire_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        # Slow path for drifted types only: go through text and let Arrow's safe cast decide what is lossless.
        try:
            as_text = pa.array([None if v is None else _text(v) for v in values], type=pa.string())
            coerced = as_text.cast(wire_type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            bad = next(v for v in values if v is not None and not _fits(v, wire_type))
            raise SchemaDriftError(
                self.entity.name, name, f"value {bad!r} ({type(bad).__name__}) does not fit {wire_type}"
            ) from err
        self._warn_once(
            f"type:{name}", "%s.%s: coerced values of an unexpected type to %s", self.entity.name, name, wire_type
        )
        return coerced

    def _timestamps(self, name: str, column: pa.Array) -> pa.Array:
        try:
            return parse_utc_timestamps(column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise SchemaDriftError(self.entity.name, name, f"not an ISO-8601 datetime: {err}") from err

    def _unknown_fields(self, records: Sequence[dict[str, Any]]) -> set[str]:
        seen: set[str] = set()
        seen.update(*(r.keys() for r in records))
        return seen - self._known

    def _note_extra_fields(self, records: Sequence[dict[str, Any]]) -> set[str]:
        unknown = self._unknown_fields(records)
        for name in sorted(unknown):
            action = "kept in the _extra JSON column" if self.entity.extra == "json" else "dropped"
            self._warn_once(f"extra:{name}", "%s: field %r is not in the schema; %s", self.entity.name, name, action)
        return unknown

    def _extra_column(self, records: Sequence[dict[str, Any]]) -> pa.Array:
        unknown = self._note_extra_fields(records)
        if not unknown:
            return pa.nulls(len(records), type=pa.string())
        names = sorted(unknown)
        texts = []
        for r in records:
            extra = {k: r[k] for k in names if k in r}
            texts.append(json.dumps(extra, sort_keys=True, default=str) if extra else None)
        return pa.array(texts, type=pa.string())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _fits(value: Any, wire_type: pa.DataType) -> bool:
    try:
        pa.array([_text(value)], type=pa.string()).cast(wire_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True
