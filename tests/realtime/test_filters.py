"""Declarative hub filters and debounce: validation names the field, predicates follow the emulator's payloads."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime.filters import (
    BOOL,
    NUMBER,
    STREAM_FIELDS,
    STRING,
    TIME,
    Debouncer,
    check_field_list,
    compile_filter,
)

MARGIN = "StreamMarginCallUpdates"


def test_stream_fields_mirror_the_hub_schemas() -> None:
    """The light field table (no pyarrow on the triggerer's loop) is exactly the hub Parquet schemas' fields."""
    import pyarrow as pa

    from airflow_provider_cplugin.parquet.hub_schemas import CLIENT_FIELDS, STREAM_ENTITIES

    client = {name for name, _ in CLIENT_FIELDS}

    def kind(t: pa.DataType) -> str:
        if pa.types.is_timestamp(t):
            return TIME
        if pa.types.is_boolean(t):
            return BOOL
        return NUMBER if pa.types.is_integer(t) or pa.types.is_floating(t) else STRING

    expected = {
        key: {name: kind(t) for name, t in entity.fields if name not in client}
        for key, entity in STREAM_ENTITIES.items()
    }
    assert expected == STREAM_FIELDS


def test_margin_call_filter_on_emulator_payloads() -> None:
    from airflow_provider_cplugin.emulator.config import EmulatorConfig
    from airflow_provider_cplugin.emulator.data import Dataset
    from airflow_provider_cplugin.emulator.hubs.feeds import FeedClock, MarginCallFeed

    feed = MarginCallFeed(Dataset(EmulatorConfig(seed=7, mt4_users=500)))
    clock = FeedClock(rate=10.0, base_ticks=0)
    items = [feed.item(clock, i) for i in range(400)]
    f = compile_filter(
        [
            {"field": "levelType", "op": "in", "value": ["MarginCall", "StopOut"]},
            {"field": "level", "op": "<", "value": 80},
            {"field": "group", "op": "group_mask", "value": "real*,!real-vip"},
        ],
        "MT4",
        MARGIN,
    )
    truth = [
        p for p in items
        if p["levelType"] in (1, 2) and p["level"] < 80 and p["group"].lower().startswith("real")
        and p["group"].lower() != "real-vip"
    ]  # fmt: skip
    assert 0 < len(truth) < len(items)
    assert [p for p in items if f.matches(p)] == truth
    assert f.fields == ("levelType", "level", "group")


@pytest.mark.parametrize(
    ("where", "field", "problem"),
    [
        ("levelType", "where", "list of conditions"),
        ([{"field": "lvl", "op": "<", "value": 1}], "where[0].field", "not a field"),
        ([{"field": "level", "op": "~", "value": 1}], "where[0].op", "not an operator"),
        ([{"field": "group", "op": "<", "value": 1}], "where[0].op", "does not apply"),
        ([{"field": "level", "op": "<", "value": "low"}], "where[0].value", "number"),
        ([{"field": "level", "op": "<", "value": True}], "where[0].value", "number"),
        ([{"field": "levelType", "op": "in", "value": ["Margin"]}], "where[0].value[0]", "levelType name"),
        ([{"field": "login", "op": "in", "value": []}], "where[0].value", "non-empty list"),
        ([{"field": "group", "op": "group_mask", "value": ""}], "where[0].value", "mask"),
        (
            [{"any": [{"field": "level", "op": "<", "value": 1}, {"field": "x", "op": "==", "value": 1}]}],
            "where[0].any[1].field",
            "not a field",
        ),
        ([{"field": "level", "op": "<"}], "where[0]", "exactly the keys"),
    ],
)
def test_bad_filters_name_the_field(where: Any, field: str, problem: str) -> None:
    with pytest.raises(CPluginConfigError, match=problem) as info:
        compile_filter(where, "MT4", MARGIN)
    assert info.value.field == field


def test_operators_and_missing_fields() -> None:
    def matches(cond: dict[str, Any], payload: dict[str, Any]) -> bool:
        return compile_filter([cond], "MT4", "StreamTrades").matches(payload)

    assert matches({"field": "volumeLots", "op": ">=", "value": 5}, {"volumeLots": 5.0})
    assert not matches({"field": "volumeLots", "op": ">", "value": 5}, {"volumeLots": 5.0})
    assert not matches({"field": "volumeLots", "op": ">", "value": 5}, {"volumeLots": "9"})  # wrong type: no match
    assert not matches({"field": "volumeLots", "op": "<=", "value": 5}, {})  # missing: no match
    assert matches({"field": "kind", "op": "==", "value": "Added"}, {"kind": "Added"})
    assert not matches({"field": "kind", "op": "!=", "value": "Added"}, {})
    assert matches({"field": "symbol", "op": "not_in", "value": ["EURUSD"]}, {"symbol": "GBPUSD"})
    assert matches({"field": "cmd", "op": "in", "value": ["Sell"]}, {"cmd": 1})
    assert compile_filter([], "MT4", "StreamTrades").matches({"anything": 1})
    either = compile_filter(
        [{"any": [{"field": "login", "op": "==", "value": 1}, {"field": "symbol", "op": "==", "value": "X"}]}],
        "MT4",
        "StreamTrades",
    )
    assert either.matches({"login": 2, "symbol": "X"}) and not either.matches({"login": 2, "symbol": "Y"})


def test_unknown_platform_accepts_fields_of_either_and_mt5_fields_are_its_own() -> None:
    compile_filter([{"field": "direction", "op": "==", "value": "Enter"}], None, MARGIN)
    with pytest.raises(CPluginConfigError):
        compile_filter([{"field": "direction", "op": "==", "value": "Enter"}], "MT4", MARGIN)
    with pytest.raises(CPluginConfigError, match="key_fields"):
        check_field_list("key_fields", ["nope"], "MT4", MARGIN)


def test_debounce_per_key_by_time_and_by_count() -> None:
    timed = Debouncer(debounce_s=10, every_n=None)
    fired = [(k, t, timed.offer(k, t)) for k, t in [("a", 0), ("a", 1), ("b", 2), ("a", 5), ("a", 10), ("a", 11)]]
    assert [(k, t, n) for k, t, n in fired if n is not None] == [("a", 0, 1), ("b", 2, 1), ("a", 10, 3)]
    counted = Debouncer(debounce_s=None, every_n=3)
    assert [counted.offer("a", t) for t in range(7)] == [None, None, 3, None, None, 3, None]
    both = Debouncer(debounce_s=10, every_n=2)
    assert [both.offer("a", t) for t in (0, 1, 2, 12, 13)] == [None, 2, None, 2, None]


def test_debounce_state_round_trip_keeps_windows_and_drops_stale_keys() -> None:
    d = Debouncer(debounce_s=10, every_n=None)
    d.offer(("a", 1), 0)
    d.offer(("b", 2), 50)
    state = d.to_state(now=55)
    assert state == [[["b", 2], 50, 0]]  # ("a", 1) can no longer suppress anything
    again = Debouncer(debounce_s=10, every_n=None)
    again.load(state)
    assert again.offer(("b", 2), 58) is None and again.offer(("b", 2), 60) == 2


def test_key_memory_is_bounded() -> None:
    d = Debouncer(debounce_s=100, every_n=None, max_keys=3)
    for k in range(10):
        d.offer(k, 0)
    assert list(d.keys) == [7, 8, 9] and d.evicted == 7
