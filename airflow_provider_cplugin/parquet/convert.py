"""Turn pages of wire records (lists of dicts) into typed Arrow record batches of an entity's schema.

Schema drift is expected from a live API and must never lose data or crash a nightly load:

* an **extra field** the schema does not declare goes into the ``_extra`` JSON column (or is dropped when the
  entity says so), with one warning per field per converter;
* a **missing optional field** becomes null;
* a **wrong type** is coerced when the value converts losslessly (``"1001"`` → 1001, ``1`` → ``"1"``) with one
  warning per field; a value that does not convert raises :class:`SchemaDriftError` naming the entity, field and
  value, before anything is committed;
* a **lossy value** is refused the same way: a non-finite float (``"1e400"``, ``"inf"``, ``NaN``: MetaTrader
  money and prices are always finite, so inf/NaN can only be an overflow or a broken value), an integer outside
  int64 (``2**70``, as a JSON number or as text);
* a **null key** (``login``, ``order``, ``deal``...) is an error: such a row cannot be de-duplicated.

Datetimes are parsed leniently (with or without offset; naive means UTC as the reference says for REST models; up
to 7 fractional digits). .NET's ``DateTime.MinValue`` (``0001-01-01T00:00:00``), what a .NET service writes for a
time never set, lands as null (an error in a key). MT5 ``*Msc`` fields are millisecond epochs sent as text and land
as millisecond timestamps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.exceptions import CPluginError
from airflow_provider_cplugin.parquet.schemas import MSC, TS, EntitySchema
from airflow_provider_cplugin.parquet.values import NULL_TEXT, text

log = logging.getLogger(__name__)

_NS_UTC = pa.timestamp("ns", tz="UTC")
_HAS_OFFSET = r"(Z|z|[+-]\d\d:?\d\d)$"
# .NET DateTime.MinValue (or DateTimeOffset.MinValue): what a .NET service serialises for a time never set.
_DOTNET_MIN = r"^0001-01-01[T ]00:00:00(\.0+)?(Z|z|[+-]00:?00)?$"
_BEYOND_MICROS = r"(\.\d{6})\d+"
_EPOCH_DIGITS = r"^-?\d+$"
# Milliseconds of .NET's DateTime range (years 1-9999): the service cannot mean anything outside it.
_MSC_RANGE = (-62_135_596_800_000, 253_402_300_799_999)
_INT64_RANGE = (-(2**63), 2**63 - 1)
_UTC_SUFFIX, _EMPTY = text("Z"), text("")  # not "Z": a Python value makes pyarrow import pandas (see .values)


class SchemaDriftError(CPluginError):
    """A record does not fit the declared schema and cannot be coerced without losing meaning."""

    def __init__(self, entity: str, field: str | None, problem: str) -> None:
        self.entity = entity
        self.field = field
        super().__init__(f"{entity}{'' if field is None else '.' + field}: {problem}")


def parse_utc_timestamps(values: pa.Array) -> pa.Array:
    """ISO-8601 strings → UTC microsecond timestamps.

    Lenient as the reference asks: with or without ``Z``/offset (naive means UTC), up to 7 fractional digits
    (.NET ticks, truncated to µs), any year .NET can write; ``DateTime.MinValue`` (unset) becomes null.
    """
    if pa.types.is_timestamp(values.type):
        return values.cast(TS, safe=False)
    strings = values.cast(pa.string())
    try:
        # Fast path: every value has an offset and lies in the ns range (1677-2262); the usual page.
        return strings.cast(_NS_UTC).cast(TS, safe=False)
    except pa.ArrowInvalid:
        pass
    strings = pc.if_else(pc.match_substring_regex(strings, _DOTNET_MIN), NULL_TEXT, strings)
    naive = pc.invert(pc.match_substring_regex(strings, _HAS_OFFSET))
    strings = pc.if_else(naive, pc.binary_join_element_wise(strings, _UTC_SUFFIX, _EMPTY), strings)
    # The µs parser covers years 1-9999 but takes at most 6 fractional digits.
    return pc.replace_substring_regex(strings, _BEYOND_MICROS, r"\1").cast(TS)


def parse_epoch_millis(values: pa.Array) -> pa.Array:
    """MT5 ``*Msc`` values → UTC millisecond timestamps.

    The reference and SDK 0.2.1 type them as strings of epoch milliseconds; SDK 0.3.3 parses them as ISO datetimes,
    so an ISO value is accepted too. Values outside .NET's years 1-9999 are refused (``ValueError``).
    """
    if pa.types.is_timestamp(values.type):
        return values.cast(MSC, safe=False)
    if pa.types.is_integer(values.type):
        millis = values.cast(pa.int64())
    else:
        strings = values.cast(pa.string())
        try:
            millis = strings.cast(pa.int64())
        except pa.ArrowInvalid:
            epoch = pc.match_substring_regex(strings, _EPOCH_DIGITS)
            millis = pc.if_else(epoch, strings, NULL_TEXT).cast(pa.int64())
            dated = parse_utc_timestamps(pc.if_else(epoch, NULL_TEXT, strings)).cast(MSC, safe=False)
            _check_msc_range(millis)
            return pc.coalesce(millis.cast(MSC), dated)
    _check_msc_range(millis)
    return millis.cast(MSC)


def _check_msc_range(millis: pa.Array) -> None:
    if millis.null_count == len(millis):
        return
    low, high = pc.min_max(millis).values()
    if low.as_py() < _MSC_RANGE[0] or high.as_py() > _MSC_RANGE[1]:
        bad = low if low.as_py() < _MSC_RANGE[0] else high
        raise ValueError(f"{bad.as_py()} ms is outside the years 1-9999")


class RecordBatchConverter:
    """Converts pages for one entity; remembers which drift it already warned about."""

    def __init__(self, entity: EntitySchema) -> None:
        self.entity = entity
        self.schema = entity.arrow_schema
        # Timestamps travel as strings and are parsed column-wise afterwards (much faster than per value).
        self._wire_struct = pa.struct(
            [(name, pa.string() if pa.types.is_timestamp(dtype) else dtype) for name, dtype in entity.fields]
        )
        self._known = frozenset(entity.wire_names)
        self._int_fields = [
            (i, name, dtype) for i, (name, dtype) in enumerate(entity.fields) if pa.types.is_integer(dtype)
        ]
        self._float_fields = [(i, name) for i, (name, dtype) in enumerate(entity.fields) if pa.types.is_floating(dtype)]
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    @property
    def wire_struct(self) -> pa.StructType:
        """The entity's fields as they travel (datetimes as text): what a decoder reads the wire into."""
        return self._wire_struct

    def convert(
        self, records: Sequence[dict[str, Any]], supplied: Mapping[str, pa.Array] | None = None
    ) -> pa.RecordBatch:
        """Convert one page. ``supplied`` gives whole columns (by wire name) that are not in the records, e.g.
        client-side metadata, so nothing has to be merged into every dict."""
        self._refuse_non_objects(records)
        try:
            # Fast path: Arrow's C++ converter reads the dicts directly, ignoring unknown keys.
            struct = pa.array(records, type=self._wire_struct)
            columns = self._refuse_truncated_floats(records, struct.flatten())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # OverflowError: a JSON int beyond int64
            columns = [self._convert_column(records, name, wire_type) for name, wire_type in self._wire_struct_items()]
        if supplied:
            columns = [supplied.get(name, column) for name, column in zip(self.entity.wire_names, columns, strict=True)]
        arrays = self._checked(columns, records)
        if self.entity.extra == "json":
            arrays.append(self._extra_column(records))
        else:
            self._note_extra_fields(records)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def from_wire_columns(self, columns: Sequence[pa.Array], unknown: Sequence[str] = ()) -> pa.RecordBatch:
        """A page already decoded into the wire types (one column per declared field, in order), through the same
        checks as :meth:`convert`. ``unknown`` names fields the page carried beyond the schema: only for an entity
        that drops them (an ``_extra`` column needs the records, see :class:`~.decode.PageDecoder`)."""
        if unknown and self.entity.extra == "json":
            raise ValueError("undeclared fields of an entity with an _extra column need the records")
        arrays = self._checked(list(columns), None)
        self._warn_extra(unknown)
        if self.entity.extra == "json":
            arrays.append(pa.nulls(len(arrays[0]) if arrays else 0, type=pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _checked(self, columns: list[pa.Array], records: Sequence[dict[str, Any]] | None) -> list[pa.Array]:
        """The columnar checks every page passes: finite floats, datetimes parsed, keys present."""
        self._refuse_non_finite(records, columns)
        arrays: list[pa.Array] = []
        for (name, dtype), column in zip(self.entity.fields, columns, strict=True):
            if pa.types.is_timestamp(dtype):
                column = self._timestamps(name, dtype, column)
            if name in self.entity.key and column.null_count:
                raise SchemaDriftError(self.entity.name, name, f"{column.null_count} record(s) have no key value")
            arrays.append(column)
        return arrays

    def _wire_struct_items(self) -> list[tuple[str, pa.DataType]]:
        return [(f.name, f.type) for f in self._wire_struct]

    def _refuse_non_objects(self, records: Sequence[Any]) -> None:
        # A record that is not an object (null, a number...) has no fields to check: named here, not left to
        # fail as a bare AttributeError deep in a column's conversion.
        if all(isinstance(r, dict) for r in records):
            return
        number, record = next((n, r) for n, r in enumerate(records, 1) if not isinstance(r, dict))
        what = "null" if record is None else f"a {type(record).__name__}"
        raise SchemaDriftError(self.entity.name, None, f"record {number} of {len(records)} is {what}, not an object")

    def _refuse_truncated_floats(self, records: Sequence[dict[str, Any]], columns: list[pa.Array]) -> list[pa.Array]:
        # Arrow fills an integer field from a Python float by truncating it (1.5 -> 1) without complaint: rebuild
        # the integer columns that received floats through the checked path.
        for index, name, wire_type in self._int_fields:
            if any(type(r.get(name)) is float for r in records):
                columns[index] = self._convert_column(records, name, wire_type)
        return columns

    def _refuse_non_finite(self, records: Sequence[dict[str, Any]] | None, columns: list[pa.Array]) -> None:
        for index, name in self._float_fields:
            self._check_finite(records, name, columns[index])

    def _check_finite(self, records: Sequence[dict[str, Any]] | None, name: str, column: pa.Array) -> None:
        # Columnar: "1e400" casts to inf, a too-large JSON number decodes to inf; neither is a MetaTrader value.
        finite = pc.is_finite(column)
        if pc.all(finite).as_py() is False:
            row = pc.index(finite, False).as_py()
            bad = column[row].as_py()
            if records is not None and row < len(records):
                bad = records[row].get(name, bad)
            raise SchemaDriftError(
                self.entity.name, name, f"value {bad!r} (row {row}) is not a finite number (overflow or NaN)"
            )

    def _convert_column(self, records: Sequence[dict[str, Any]], name: str, wire_type: pa.DataType) -> pa.Array:
        values = [r.get(name) for r in records]
        if pa.types.is_integer(wire_type) and any(type(v) is float for v in values):
            low, high = _INT64_RANGE
            bad = next((v for v in values if type(v) is float and not (v.is_integer() and low <= v <= high)), None)
            if bad is not None:
                raise SchemaDriftError(self.entity.name, name, f"value {bad!r} (float) does not fit {wire_type}")
            self._warn_once(
                f"type:{name}", "%s.%s: coerced integral float values to %s", self.entity.name, name, wire_type
            )
            values = [int(v) if type(v) is float else v for v in values]
        try:
            return pa.array(values, type=wire_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
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
        if pa.types.is_floating(wire_type):
            self._check_finite(records, name, coerced)  # before the warning: a refused value was not coerced
        self._warn_once(
            f"type:{name}", "%s.%s: coerced values of an unexpected type to %s", self.entity.name, name, wire_type
        )
        return coerced

    def _timestamps(self, name: str, dtype: pa.DataType, column: pa.Array) -> pa.Array:
        parser = parse_epoch_millis if dtype == MSC else parse_utc_timestamps
        try:
            parsed = parser(column)
        except (ValueError, pa.ArrowNotImplementedError) as err:  # ArrowInvalid is a ValueError
            what = "a millisecond epoch" if dtype == MSC else "an ISO-8601 datetime"
            bad = [v for v in column.to_pylist() if not _parses(parser, v)]
            detail = f"value {bad[0]!r} ({len(bad)} record(s))" if bad else str(err)
            raise SchemaDriftError(self.entity.name, name, f"{detail} is not {what}") from err
        unset = parsed.null_count - column.null_count
        if unset and name in self.entity.key:
            raise SchemaDriftError(self.entity.name, name, f"{unset} record(s) have an unset (.NET minimum) key")
        return parsed

    def _unknown_fields(self, records: Sequence[dict[str, Any]]) -> set[str]:
        seen: set[str] = set()
        seen.update(*(r.keys() for r in records))
        return seen - self._known

    def _note_extra_fields(self, records: Sequence[dict[str, Any]]) -> set[str]:
        unknown = self._unknown_fields(records)
        self._warn_extra(unknown)
        return unknown

    def _warn_extra(self, unknown: Iterable[str]) -> None:
        for name in sorted(unknown):
            action = "kept in the _extra JSON column" if self.entity.extra == "json" else "dropped"
            self._warn_once(f"extra:{name}", "%s: field %r is not in the schema; %s", self.entity.name, name, action)

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


def _parses(parser: Callable[[pa.Array], pa.Array], value: Any) -> bool:
    try:
        parser(pa.array([value]))
    except (ValueError, pa.ArrowNotImplementedError):
        return False
    return True


def _fits(value: Any, wire_type: pa.DataType) -> bool:
    try:
        pa.array([_text(value)], type=pa.string()).cast(wire_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True
