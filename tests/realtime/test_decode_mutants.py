"""The hub fast path's own refusals, each against the truth of what was sent: a run whose text holds fewer records
than its count, and a float beyond float64, never land from the fast path (``realtime/item_decode.py``)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.json as pj
import pytest

from airflow_provider_cplugin.parquet.hub_schemas import HUB_TICKS
from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.item_decode import ItemDecoder

GOOD = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}


def text(payloads: list[Any]) -> str:
    return "".join(json.dumps({"type": 2, "invocationId": "3", "item": p}) + RS for p in payloads)


def test_a_run_counting_more_items_than_its_text_holds_is_refused() -> None:
    decoder = ItemDecoder(HUB_TICKS, "chan")
    assert decoder.decode([RawItems(text([GOOD] * 3), 3, 1.0, 1)], 0).num_rows == 3
    with pytest.raises(ValueError, match="row count"):
        decoder.decode([RawItems(text([GOOD] * 2), 3, 1.0, 1)], 0)


def test_a_float_overflowing_to_infinity_is_refused_by_the_reader_itself() -> None:
    """Why the fast path's own finiteness check is a second line only (docs/mutation.md): JSON has no inf/NaN, and
    the C++ reader refuses a number beyond float64 before any column exists."""
    overflow = text([GOOD]).replace('"bid": 1.1', '"bid": 1e400')
    decoder = ItemDecoder(HUB_TICKS, "chan")
    with pytest.raises(pa.ArrowInvalid, match="too big"):  # the reason, from the reader with the decoder's options
        pj.read_json(pa.BufferReader(overflow.replace(RS, "\n").encode()), parse_options=decoder._parse)
    with pytest.raises(ValueError, match="reader refused"):  # so the batch takes the checked path
        decoder.decode([RawItems(overflow, 1, 1.0, 1)], 0)
