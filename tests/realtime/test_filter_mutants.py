"""Hub filters at their boundaries: each comparison at, just below and just above its operand, and what a payload
that lacks the field (or carries another type) matches. Written for mutations that flip ``<`` into ``<=`` or let a
missing field through, which the emulator-payload test cannot see (its levels never sit exactly on the operand)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cplugin.realtime.filters import compile_filter

TRADES = "StreamTrades"
MARGIN = "StreamMarginCallUpdates"


def matches(cond: dict[str, Any], payload: Any, method: str = TRADES) -> bool:
    return compile_filter([cond], "MT4", method).matches(payload)


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [("<", True, False, False), ("<=", True, True, False), (">", False, False, True), (">=", False, True, True)],
)
def test_each_comparison_at_its_boundary(op: str, below: bool, at: bool, above: bool) -> None:
    cond = {"field": "volumeLots", "op": op, "value": 5}
    assert [matches(cond, {"volumeLots": v}) for v in (4.99, 5, 5.0, 5.01)] == [below, at, at, above]
    assert not matches(cond, {}) and not matches(cond, {"volumeLots": None}) and not matches(cond, {"volumeLots": True})


def test_not_in_and_not_equal_never_match_a_payload_without_the_field() -> None:
    not_in = {"field": "symbol", "op": "not_in", "value": ["EURUSD"]}
    assert matches(not_in, {"symbol": "GBPUSD"}) and not matches(not_in, {"symbol": "EURUSD"})
    assert not matches(not_in, {}) and not matches(not_in, "not a payload")
    assert not matches({"field": "symbol", "op": "!=", "value": "EURUSD"}, {"login": 1})


def test_group_mask_matches_only_text_groups() -> None:
    cond = {"field": "group", "op": "group_mask", "value": "*,!real\\vip"}
    assert matches(cond, {"group": "demo"}, MARGIN) and matches(cond, {"group": "REAL\\std"}, MARGIN)
    assert not matches(cond, {"group": "Real\\VIP"}, MARGIN)  # excluded, whatever the case
    assert not matches(cond, {}, MARGIN) and not matches(cond, {"group": 7}, MARGIN)
    assert not matches(cond, {"group": None}, MARGIN)
