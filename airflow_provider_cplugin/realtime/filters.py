"""Declarative filters over hub payloads (plain data, so they can be a trigger's kwargs), and debounce.

A filter is a list of conditions, all of which must hold; a condition is ``{"field", "op", "value"}`` or
``{"any": [conditions]}`` (one of them must hold)::

    [
        {"field": "levelType", "op": "in", "value": ["MarginCall", "StopOut"]},
        {"field": "level", "op": "<", "value": 50},
        {"field": "group", "op": "group_mask", "value": "real\\\\*,!real\\\\vip"},
    ]

Operators: ``<``, ``<=``, ``>``, ``>=`` (number fields), ``==``, ``!=``, ``in``, ``not_in`` (any field),
``group_mask`` (string fields, MetaTrader mask syntax of :mod:`..group_mask`). Enum fields accept their names
(``levelType``: ``Ok``/``MarginCall``/``StopOut``; ``cmd``: ``Buy``/``Sell``...) as well as the hub's ints. Every
field is checked against the stream's payload fields when the filter is compiled, and every mistake is a
:class:`~airflow_provider_cplugin.exceptions.CPluginConfigError` naming it (``where[1].value``).

Each filter compiles to a per-event predicate (``matches``) and a **vectorised** form (``vector``) that evaluates a
whole batch with Arrow compute kernels over the batch's columns (a watcher runs it in a worker thread). The
vectorised form gives the predicate's answer or raises :class:`VectorUnsupported` (a column whose types the kernels
would treat differently: mixed types, a wrong type, nulls where missing and null differ), and the batch then takes
the predicate. pyarrow is imported only when a vectorised filter runs (never on the triggerer's loop, where
triggers are built). :data:`STREAM_FIELDS` mirrors :data:`..parquet.hub_schemas.STREAM_ENTITIES` (a test keeps the
two equal).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.group_mask import group_mask

NUMBER = "number"
STRING = "string"
BOOL = "bool"
TIME = "time"  # ISO-8601 strings on the hub: equality only

_MARGIN_MT4 = {
    "login": NUMBER, "group": STRING, "leverage": NUMBER, "updated": NUMBER, "balance": NUMBER, "equity": NUMBER,
    "volumeLots": NUMBER, "margin": NUMBER, "free": NUMBER, "level": NUMBER, "controllingType": NUMBER,
    "levelType": NUMBER,
}  # fmt: skip
_TRADES = {
    "kind": STRING, "order": NUMBER, "login": NUMBER, "symbol": STRING, "cmd": NUMBER, "volumeLots": NUMBER,
    "openPrice": NUMBER, "openTime": TIME, "sl": NUMBER, "tp": NUMBER, "closePrice": NUMBER, "closeTime": TIME,
    "commission": NUMBER, "storage": NUMBER, "profit": NUMBER, "taxes": NUMBER, "comment": STRING,
}  # fmt: skip
_USERS = {
    "kind": STRING, "login": NUMBER, "group": STRING, "name": STRING, "country": STRING, "leverage": NUMBER,
    "balance": NUMBER, "credit": NUMBER, "enabled": BOOL, "readOnly": BOOL, "regDate": TIME, "lastDate": TIME,
    "email": STRING, "phone": STRING, "comment": STRING,
}  # fmt: skip
_SYMBOLS = {
    "kind": STRING, "symbol": STRING, "description": STRING, "currency": STRING, "digits": NUMBER,
    "tradeMode": NUMBER, "spread": NUMBER, "stopsLevel": NUMBER, "freezeLevel": NUMBER, "contractSize": NUMBER,
    "tickValue": NUMBER, "tickSize": NUMBER, "marginInitial": NUMBER, "marginMaintenance": NUMBER,
}  # fmt: skip

STREAM_FIELDS: dict[tuple[str, str], dict[str, str]] = {
    ("MT4", "StreamTicks"): {"symbol": STRING, "bid": NUMBER, "ask": NUMBER, "lastTime": TIME},
    ("MT4", "StreamMarginCallUpdates"): _MARGIN_MT4,
    ("MT4", "StreamTrades"): _TRADES,
    ("MT4", "StreamUserUpdates"): _USERS,
    ("MT4", "StreamSymbolUpdates"): _SYMBOLS,
    ("MT5", "StreamMarginCallUpdates"): {"login": NUMBER, "type": STRING, "direction": STRING},
}
"""Payload fields of each hub stream and their kind (hub enums are ints)."""

ENUMS: dict[str, dict[str, int]] = {
    "levelType": {"Ok": 0, "MarginCall": 1, "StopOut": 2},
    "cmd": {"Buy": 0, "Sell": 1, "BuyLimit": 2, "SellLimit": 3, "BuyStop": 4, "SellStop": 5, "Balance": 6,
            "Credit": 7},
}  # fmt: skip
"""Names accepted for enum fields (the hub sends the ints)."""

DEFAULT_KEYS: dict[str, list[str]] = {
    "StreamTicks": ["symbol"],
    "StreamSymbolUpdates": ["symbol"],
    "StreamMarginCallUpdates": ["login"],
    "StreamTrades": ["login"],
    "StreamUserUpdates": ["login"],
}
"""Debounce key of each stream when the trigger gives none: the account, or the symbol."""

SUMMARY_FIELDS: dict[str, list[str]] = {
    "StreamTicks": ["symbol", "bid", "ask", "lastTime"],
    "StreamSymbolUpdates": ["symbol", "kind", "spread"],
    "StreamMarginCallUpdates": ["login", "group", "level", "levelType", "equity", "margin", "type", "direction"],
    "StreamTrades": ["order", "login", "kind", "symbol", "cmd", "volumeLots"],
    "StreamUserUpdates": ["login", "group", "kind"],
}
"""Fields copied into an event payload by default (besides the key and the filtered fields)."""

COMPARISONS = ("<", "<=", ">", ">=")
OPERATORS = (*COMPARISONS, "==", "!=", "in", "not_in", "group_mask")
_KINDS_OF_OP = {op: (NUMBER,) for op in COMPARISONS} | {"group_mask": (STRING,)}

Predicate = Callable[[Any], bool]

if TYPE_CHECKING:
    import pyarrow as pa


class VectorUnsupported(Exception):
    """This batch's column cannot be filtered with the kernels exactly as the predicate would: use the predicate."""


class Columns(Protocol):
    """A batch as columns: ``column(field)`` is the field of every event in order (missing = null), or raises
    :class:`VectorUnsupported`."""

    def column(self, field: str) -> pa.Array: ...


Vector = Callable[[Columns], "pa.Array"]
"""A batch -> a boolean mask without nulls (the events the filter matches)."""


def stream_fields(platform_type: str | None, method: str) -> dict[str, str]:
    """Fields of ``method`` on that platform; with the type unknown (resolved later), the union over both."""
    if platform_type is not None:
        return STREAM_FIELDS.get((platform_type, method), {})
    merged: dict[str, str] = {}
    for (_, name), fields in STREAM_FIELDS.items():
        if name == method:
            merged.update(fields)
    return merged


def _scalar(value: Any, kind: str, field: str, where: str) -> Any:
    """A condition value checked against the field's kind (enum names become the hub's ints)."""
    if kind == NUMBER:
        if isinstance(value, str) and field in ENUMS:
            if value not in ENUMS[field]:
                raise CPluginConfigError(where, f"{value!r} is not a {field} name; known: {sorted(ENUMS[field])}")
            return ENUMS[field][value]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CPluginConfigError(where, f"{field} is a number field: expected a finite number, got {value!r}")
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise CPluginConfigError(where, f"{field} is a boolean field: expected true or false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise CPluginConfigError(where, f"{field} is a text field: expected a string, got {value!r}")
    return value


@dataclass(frozen=True)
class CompiledFilter:
    """A compiled filter: ``matches(payload)``; ``fields`` are the payload fields it reads; ``vector(columns)`` the
    same filter over a batch (None: every event matches)."""

    matches: Predicate
    fields: tuple[str, ...]
    vector: Vector | None = None


def _condition(raw: Any, fields: dict[str, str], where: str, used: list[str]) -> tuple[Predicate, Vector]:
    if not isinstance(raw, dict):
        raise CPluginConfigError(where, f"a condition is {{'field', 'op', 'value'}} or {{'any': [...]}}, got {raw!r}")
    if "any" in raw:
        if set(raw) != {"any"}:
            raise CPluginConfigError(where, f"'any' stands alone in its condition, got keys {sorted(raw)}")
        options = raw["any"]
        if not isinstance(options, list) or not options:
            raise CPluginConfigError(f"{where}.any", f"must be a non-empty list of conditions, got {options!r}")
        parts = [_condition(c, fields, f"{where}.any[{i}]", used) for i, c in enumerate(options)]
        predicates = [p for p, _ in parts]
        return lambda payload: any(p(payload) for p in predicates), _combine("or_", [v for _, v in parts])
    if set(raw) != {"field", "op", "value"}:
        raise CPluginConfigError(where, f"expected exactly the keys field, op, value; got {sorted(raw)}")
    field, op, value = raw["field"], raw["op"], raw["value"]
    if not isinstance(field, str) or field not in fields:
        raise CPluginConfigError(f"{where}.field", f"{field!r} is not a field of this stream; known: {sorted(fields)}")
    if op not in OPERATORS:
        raise CPluginConfigError(f"{where}.op", f"{op!r} is not an operator; known: {list(OPERATORS)}")
    kind = fields[field]
    allowed = _KINDS_OF_OP.get(op)
    if allowed is not None and kind not in allowed:
        raise CPluginConfigError(f"{where}.op", f"{op} does not apply to {field} (a {kind} field)")
    used.append(field)
    place = f"{where}.value"
    if op in ("in", "not_in"):
        if not isinstance(value, list | tuple) or not value:
            raise CPluginConfigError(place, f"{op} needs a non-empty list, got {value!r}")
        members = frozenset(_scalar(v, kind, field, f"{place}[{i}]") for i, v in enumerate(value))
        vector = _vector_in(field, op, members)
        if op == "in":
            return (lambda payload: _get(payload, field) in members), vector
        return (lambda payload: (v := _get(payload, field)) is not _MISSING and v not in members), vector
    if op == "group_mask":
        if not isinstance(value, str) or not value.strip():
            raise CPluginConfigError(place, f"group_mask needs a mask string (e.g. 'real\\\\*'), got {value!r}")
        mask = group_mask(value)
        return (lambda payload: isinstance(v := _get(payload, field), str) and mask.matches(v)), _vector_mask(
            field, mask.matches
        )
    operand = _scalar(value, kind, field, place)
    return _compare(field, op, operand), _vector_compare(field, op, operand)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _get(payload: Any, field: str) -> Any:
    return payload.get(field, _MISSING) if isinstance(payload, dict) else _MISSING


def _compare(field: str, op: str, operand: Any) -> Predicate:
    if op == "==":
        return lambda payload: _get(payload, field) == operand
    if op == "!=":
        return lambda payload: (v := _get(payload, field)) is not _MISSING and v != operand

    def number(payload: Any) -> float | None:
        v = _get(payload, field)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    if op == "<":
        return lambda payload: (v := number(payload)) is not None and v < operand
    if op == "<=":
        return lambda payload: (v := number(payload)) is not None and v <= operand
    if op == ">":
        return lambda payload: (v := number(payload)) is not None and v > operand
    return lambda payload: (v := number(payload)) is not None and v >= operand


def compile_filter(where: Any, platform_type: str | None, method: str) -> CompiledFilter:
    """Check ``where`` against the stream's fields and compile it; ``[]`` matches every event."""
    if not isinstance(where, list | tuple):
        raise CPluginConfigError("where", f"must be a list of conditions, got {where!r}")
    fields = stream_fields(platform_type, method)
    used: list[str] = []
    parts = [_condition(c, fields, f"where[{i}]", used) for i, c in enumerate(where)]
    if not parts:
        return CompiledFilter(lambda payload: True, ())
    used_fields = tuple(dict.fromkeys(used))
    vector = _combine("and_", [v for _, v in parts])
    if len(parts) == 1:
        return CompiledFilter(parts[0][0], used_fields, vector)
    predicates = [p for p, _ in parts]
    return CompiledFilter(lambda payload: all(p(payload) for p in predicates), used_fields, vector)


# --------------------------------------------------------------------------------------------- vectorised


def _kind_of(dtype: pa.DataType) -> str:
    """The filter kind of an Arrow column type ("null" when every event lacks the field or has it null)."""
    import pyarrow as pa

    if pa.types.is_null(dtype):
        return "null"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return NUMBER
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return STRING
    if pa.types.is_boolean(dtype):
        return BOOL
    return "other"


def _operand_kind(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    return NUMBER if isinstance(value, int | float) else STRING


def _column(columns: Columns, field: str, kinds: set[str], nulls_differ: bool) -> pa.Array | None:
    """The field's column when the kernels answer as the predicate does; None when no event has a value (nothing
    matches); :class:`VectorUnsupported` otherwise. ``nulls_differ``: the op treats a missing field (no match) and
    a null value (a value) differently, which one null column cannot tell apart."""
    column = columns.column(field)
    kind = _kind_of(column.type)
    if nulls_differ and column.null_count:
        raise VectorUnsupported(f"{field}: nulls")
    if kind == "null":
        return None
    if kind not in kinds:
        raise VectorUnsupported(f"{field}: {column.type} column")
    return column


def _none(columns: Columns, field: str) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(False), len(columns.column(field)))


def _filled(mask: pa.Array) -> pa.Array:
    return mask.fill_null(False) if mask.null_count else mask


def _vector_compare(field: str, op: str, operand: Any) -> Vector:
    kernel = {"==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
                   ">=": "greater_equal"}[op]  # fmt: skip
    kinds = {NUMBER} if op in COMPARISONS else {_operand_kind(operand)}

    def run(columns: Columns) -> pa.Array:
        import pyarrow.compute as pc

        column = _column(columns, field, kinds, nulls_differ=op == "!=")
        if column is None:
            return _none(columns, field)
        return _filled(getattr(pc, kernel)(column, operand))

    return run


def _vector_in(field: str, op: str, members: frozenset[Any]) -> Vector:
    kinds = {_operand_kind(m) for m in members}

    def run(columns: Columns) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = _column(columns, field, kinds, nulls_differ=op == "not_in")
        if column is None:
            mask = _none(columns, field)
            return mask if op == "in" else pc.invert(mask)  # not_in: no nulls here, so an empty batch
        values = list(members)
        if pa.types.is_integer(column.type) and not all(isinstance(v, int) for v in values):
            raise VectorUnsupported(f"{field}: integer column, non-integer members")
        value_set = pa.array(values).cast(column.type)
        mask = _filled(pc.is_in(column, value_set=value_set))
        return mask if op == "in" else pc.invert(mask)

    return run


def _vector_mask(field: str, matches: Callable[[str], bool]) -> Vector:
    def run(columns: Columns) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = _column(columns, field, {STRING}, nulls_differ=False)
        if column is None:
            return _none(columns, field)
        # The mask is Python: run it once per distinct group, not per event.
        hits = [g for g in pc.unique(column).to_pylist() if g is not None and matches(g)]
        return _filled(pc.is_in(column, value_set=pa.array(hits, column.type)))

    return run


def _combine(how: str, parts: list[Vector]) -> Vector:
    if len(parts) == 1:
        return parts[0]

    def run(columns: Columns) -> pa.Array:
        import pyarrow.compute as pc

        mask = parts[0](columns)
        for part in parts[1:]:
            mask = getattr(pc, how)(mask, part(columns))
        return mask

    return run


def check_field_list(name: str, value: Any, platform_type: str | None, method: str) -> list[str]:
    """A list of payload field names of the stream (``key_fields``, ``fields``)."""
    fields = stream_fields(platform_type, method)
    if not isinstance(value, list | tuple) or not all(isinstance(f, str) for f in value):
        raise CPluginConfigError(name, f"must be a list of field names, got {value!r}")
    unknown = [f for f in value if f not in fields]
    if unknown:
        raise CPluginConfigError(name, f"{unknown} are not fields of {method}; known: {sorted(fields)}")
    return list(value)


# --------------------------------------------------------------------------------------------- debounce


class Debouncer:
    """At most one fire per key every ``debounce_s`` seconds and/or one per ``every_n`` matches of the key.

    :meth:`offer` counts a match and returns how many matches of the key this fire covers (the ones suppressed
    since the last fire plus this one), or None when the match is suppressed. Keys are dropped once they can no
    longer suppress anything (older than ``debounce_s`` with no pending count); at most ``max_keys`` are kept
    (the least recently matched go first, with a count in :attr:`evicted`).
    """

    def __init__(self, debounce_s: float | None, every_n: int | None, max_keys: int = 100_000) -> None:
        self.debounce_s = debounce_s
        self.every_n = every_n
        self.max_keys = max_keys
        self.keys: OrderedDict[Hashable, list[Any]] = OrderedDict()  # key -> [last fire time | None, pending]
        self.evicted = 0

    def offer(self, key: Hashable, now: float) -> int | None:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = [None, 0]
            if len(self.keys) > self.max_keys:
                self.keys.popitem(last=False)
                self.evicted += 1
        else:
            self.keys.move_to_end(key)
        state[1] += 1
        last = state[0]
        if self.debounce_s is not None and last is not None and now - last < self.debounce_s:
            return None
        if self.every_n is not None and state[1] < self.every_n:
            return None
        covered: int = state[1]
        state[0], state[1] = now, 0
        return covered

    def to_state(self, now: float, limit: int = 10_000) -> list[list[Any]]:
        """The keys that still matter (JSON: ``[[key, last fire, pending], ...]``, most recent last)."""
        live = [
            [list(k) if isinstance(k, tuple) else k, last, pending]
            for k, (last, pending) in self.keys.items()
            if pending or (self.debounce_s is not None and last is not None and now - last < self.debounce_s)
        ]
        return live[-limit:]

    def load(self, state: Sequence[Any]) -> None:
        for key, last, pending in state:
            self.keys[tuple(key) if isinstance(key, list) else key] = [last, int(pending)]
