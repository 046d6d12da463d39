"""The sampler's drain and batch writer against the truth of what a stream handed them: the drain stops at the first
item after the window even when the stream never stops sending, and the fast path lands exactly the items the
sequence tracker kept (duplicates dropped), with their sequence numbers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.hub_schemas import HUB_TICKS
from airflow_provider_cplugin.realtime.batch_writer import BatchWriter
from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.item_decode import Item
from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest, StreamState, _Budget


def run(indexes: list[int], received_at: float) -> RawItems:
    items = [{"symbol": "EURUSD", "bid": 1.0 + i / 1000, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}
             for i in indexes]  # fmt: skip
    text = "".join(json.dumps({"type": 2, "invocationId": "0", "item": p}) + RS for p in items)
    return RawItems(text, len(items), received_at, 1)


def request(tmp_path: Path, window_end: float) -> SampleRequest:
    return SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=[{"method": "StreamTicks"}],
        window_end=window_end, output_path=f"file://{tmp_path}", run_name="run", partition_date="2026-11-24",
    )  # fmt: skip


class EndlessLateStream:
    """A busy stream: one on-time run, then a run received after the window on every read, for ever."""

    def __init__(self, window_end: float) -> None:
        self.window_end = window_end
        self.reads = 0
        self.active = True

    async def get_raw(self, max_items: int = 10_000, wait_s: float | None = None) -> list[RawItems]:
        self.reads += 1
        await asyncio.sleep(0)
        if self.reads == 1:
            return [run([0, 1], self.window_end - 1)]
        return [run([self.reads], self.window_end + self.reads)]


class Writer:
    def __init__(self) -> None:
        self.landed = 0
        self.late = 0

    async def add(self, runs: list[RawItems]) -> None:
        self.landed += sum(r.count for r in runs)

    def observe_late(self, runs: list[RawItems]) -> None:
        self.late += sum(r.count for r in runs)


async def test_the_drain_stops_at_the_first_item_after_the_window_of_a_busy_stream(tmp_path: Path) -> None:
    window_end = time.time() - 5
    sampler = HubSampler(request(tmp_path, window_end))
    stream, writer, state = EndlessLateStream(window_end), Writer(), StreamState("StreamTicks", False, {})
    try:
        async with asyncio.timeout(5):
            await sampler._drain(stream, writer, _Budget(None), state, None)  # type: ignore[arg-type]
    except TimeoutError:
        raise AssertionError(f"the drain kept reading after the window ({stream.reads} reads)") from None
    assert (stream.reads, writer.landed, writer.late, state.late, state.stopped_by) == (2, 2, 1, 1, "window")


def test_the_fast_path_lands_what_the_tracker_kept_with_its_sequences(tmp_path: Path) -> None:
    writer = BatchWriter(HUB_TICKS, ObjectStoragePath(f"file://{tmp_path}"), "run", request(tmp_path, 0.0),
                         channel="StreamTicks")  # fmt: skip

    def track(items: list[Item]) -> list[Item]:
        kept, seen = [], set()
        for item in items:
            index = round((item.payload["bid"] - 1.0) * 1000)
            item.sequence = ("EURUSD", index)
            if index not in seen:  # a repeat of an index is a duplicate: dropped
                seen.add(index)
                kept.append(item)
        return kept

    writer.tracker = track
    sent = [0, 1, 1, 2, 3, 3, 4]
    landed, rejects, _ = writer._write_file([run(sent[:3], 1.0), run(sent[3:], 2.0)], 0)
    assert landed is not None and rejects is None and writer.decoded_fast == 1
    table = pq.read_table(landed["path"].removeprefix("file://"))
    truth: dict[str, Any] = {"bid": [1.0 + i / 1000 for i in range(5)], "_sequence": list(range(5))}
    assert {k: table.column(k).to_pylist() for k in truth} == truth
    assert table.column("_sequence_key").to_pylist() == ["EURUSD"] * 5
