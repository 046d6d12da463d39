"""The fast path (Arrow's C++ JSON reader) lands exactly what the checked per-record path lands, and refuses
every item the checked path would coerce, drift to ``_extra``, or reject (``realtime/item_decode.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.hub_schemas import HUB_ENTITIES, HUB_TICKS
from airflow_provider_cplugin.realtime.batch_writer import BatchWriter
from airflow_provider_cplugin.realtime.catalogue import CATALOGUE
from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.item_decode import ItemDecoder, decode_items
from airflow_provider_cplugin.realtime.sample_request import SampleRequest

_VALUES: dict[str, list[Any]] = {
    "int": [7, -3, None],
    "float": [1.25, 1e300, 3],  # an integral JSON number in a float field lands as a float on both paths
    "str": ["EURUSD", "", None],
    "bool": [True, False, None],
    "ts": ["2026-11-24T10:00:00.1234567Z", "2026-11-24T10:00:01+02:00", None],
}


def _run(payloads: list[Any], received_at: float = 1_767_225_600.5, connection: int = 1) -> RawItems:
    text = "".join(
        json.dumps({"type": 2, "invocationId": "3", "item": p}, separators=(",", ":")) + RS for p in payloads
    )
    return RawItems(text, len(payloads), received_at, connection)


def _writer(tmp_path: Path, entity: Any = HUB_TICKS) -> BatchWriter:
    request = SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=["StreamTicks"], window_end=0.0,
        output_path=f"file://{tmp_path}", run_name="run", partition_date="2026-11-24",
    )  # fmt: skip
    return BatchWriter(entity, ObjectStoragePath(f"file://{tmp_path}"), "run", request, channel="chan")


@pytest.mark.parametrize("info", CATALOGUE, ids=lambda s: f"{s.platform}-{s.method}")
def test_fast_path_equals_the_checked_path_for_every_hub_entity(info: Any, tmp_path: Path) -> None:
    entity = HUB_ENTITIES[info.entity]
    payloads = [{name: _VALUES[kind][i] for name, kind in info.fields} for i in range(3)]
    payloads.append({})  # every field missing: nulls
    runs = [_run(payloads[:2], 10.0, 1), _run(payloads[2:], 11.5, 2)]
    fast = ItemDecoder(entity, "chan").decode(runs, connection_offset=4)
    writer = _writer(tmp_path, entity)
    writer.connection_offset = 4
    items, bad = decode_items(runs, "chan")
    assert not bad
    checked = writer._convert(items)
    assert fast.equals(checked), (fast.to_pylist(), checked.to_pylist())
    assert fast.column("_connection").to_pylist() == [5, 5, 6, 6]
    assert fast.column("_channel").to_pylist() == ["chan"] * 4


@pytest.mark.parametrize(
    "bad",
    [
        {"symbol": "X", "bid": "abc"},  # type drift the checked path may coerce or refuse
        {"symbol": "X", "bid": 1.0, "spread": 3},  # unknown field: the checked path keeps it in _extra
        {"symbol": "X", "lastTime": "yesterday"},
        {"symbol": 5},
        "not an object",
    ],
)
def test_fast_path_refuses_what_needs_the_checked_path(bad: Any) -> None:
    good = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}
    with pytest.raises(Exception):  # noqa: B017 - any refusal sends the batch to the checked path
        ItemDecoder(HUB_TICKS, "chan").decode([_run([good, bad, good])], 0)


def test_unset_dotnet_time_lands_null_on_both_paths(tmp_path: Path) -> None:
    # The fast path is the REST decode path: .NET's unset minimum becomes null there as in the checked path.
    items = [{"symbol": "X", "bid": 1.5, "lastTime": "0001-01-01T00:00:00"}, {"symbol": "Y", "lastTime": None}]
    runs = [_run(items)]
    fast = ItemDecoder(HUB_TICKS, "chan").decode(runs, 0)
    checked = _writer(tmp_path)._convert(decode_items(runs, "chan")[0])
    assert fast.equals(checked) and fast.column("last_time").to_pylist() == [None, None]


def test_overflow_and_malformed_records_are_quarantined_and_the_rest_lands(tmp_path: Path) -> None:
    good = [{"symbol": "EURUSD", "bid": 1.1 + i, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"} for i in range(3)]
    run = _run(good[:2])
    broken = RawItems(
        run.text + '{"type":2,"invocationId":"3","item":{"symbol":"X","bid":1e400}}' + RS + '{"type":2,"inv' + RS,
        4, run.received_at, 1,
    )  # fmt: skip
    writer = _writer(tmp_path)
    landed, rejects, rejected = writer._write_file([broken, _run(good[2:])], 0)
    assert landed is not None and landed["rows"] == 3 and rejected == 2
    assert writer.decoded_fast == 0  # the batch took the checked path
    lines = [json.loads(line) for line in Path(str(rejects).removeprefix("file://")).read_text().splitlines()]
    # orjson refuses a number beyond float64 as it refuses broken JSON: both kept as the text that came.
    assert [line["reason"].split(":")[0] for line in lines] == ["not JSON", "not JSON"]
    assert [line["payload"] for line in lines] == [
        '{"type":2,"invocationId":"3","item":{"symbol":"X","bid":1e400}}',
        '{"type":2,"inv',
    ]


def test_clean_batches_take_the_fast_path(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    good = [{"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}] * 5
    landed, rejects, _ = writer._write_file([_run(good)], 0)
    assert landed is not None and landed["rows"] == 5 and rejects is None and writer.decoded_fast == 1
    table = pa.parquet.read_table(landed["path"].removeprefix("file://"))
    assert table.column("_received_at").to_pylist()[0].timestamp() == 1_767_225_600.5
