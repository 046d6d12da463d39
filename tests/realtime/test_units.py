"""Pure unit tests: framing, feed clock and sequence inversion, cursor vs random access, gap tracking, buffers."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs import faults as hub_faults
from airflow_provider_cplugin.emulator.hubs import feeds as F
from airflow_provider_cplugin.emulator.hubs import protocol as SP
from airflow_provider_cplugin.realtime import EventBuffer, HubEvent, HubHandshakeError, HubProtocolError
from airflow_provider_cplugin.realtime import protocol as CP
from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.gaps import GapLedger, SequenceTracker

START = 1_795_000_000 * F.TICKS_PER_S + 1234567


def test_client_decoder_handles_split_and_batched_records() -> None:
    decoder = CP.FrameDecoder()
    wire = SP.frame({"type": 6}) + SP.invocation_frame("OnTick", '[{"symbol":"EURUSD"}]') + SP.completion_frame("7")
    got = [m for i in range(0, len(wire), 7) for m in decoder.decode(wire[i : i + 7])]
    assert [m["type"] for m in got] == [6, 1, 3]
    assert got[1]["arguments"] == [{"symbol": "EURUSD"}]
    with pytest.raises(HubProtocolError, match="invalid JSON"):
        CP.FrameDecoder().decode('{"type":6}\x1e{"type":1,"target":"x"\x1e')
    with pytest.raises(HubProtocolError, match="integer type"):
        CP.FrameDecoder().decode('{"kind":1}\x1e')
    # Two broken halves that happen to join into valid JSON are still caught (record count check).
    with pytest.raises(HubProtocolError):
        CP.FrameDecoder().decode('{"type":1,"a":[1\x1e2]}\x1e')


def test_handshake_parsing() -> None:
    CP.parse_handshake("{}")
    with pytest.raises(HubHandshakeError, match="not supported"):
        CP.parse_handshake('{"error":"The protocol \'x\' is not supported."}')
    assert SP.parse_handshake('{"protocol":"json","version":1}') == ("json", 1)
    with pytest.raises(SP.ProtocolViolation):
        SP.parse_handshake('{"protocol":"json"}')


def test_server_reader_keeps_partial_records() -> None:
    reader = SP.RecordReader()
    assert reader.feed('{"type":6}\x1e{"ty') == ['{"type":6}']
    assert reader.feed('pe":7}\x1e') == ['{"type":7}']


@pytest.mark.parametrize("rate", [0.2, 3.0, 1000.0, 50_000.0, 333_333.0])
def test_feed_clock_round_trips(rate: float) -> None:
    clock = F.FeedClock(rate=rate, base_ticks=START, base_index=5)
    for i in (5, 6, 77, 10_000, 9_999_999):
        t = clock.ticks_of(i)
        assert clock.index_of(t) == i
        assert clock.index_at(t) == i and clock.index_at(t - 1) == i - 1
    later = clock.retimed(rate * 2, clock.ticks_of(100) + 3)
    assert later.base_index == 101 and later.index_at(later.base_ticks) == 101
    iso = F.IsoFormatter()
    assert F.parse_iso_ticks(iso(START)) == START
    assert iso(START - START % F.TICKS_PER_S).endswith(":40Z")  # whole seconds: no fraction, like .NET


def test_paused_feed_emits_nothing() -> None:
    clock = F.FeedClock(rate=0.0, base_ticks=START, base_index=10)
    assert clock.index_at(START + 10**12) == 9


def test_tick_cursor_matches_random_access_and_sequences_invert() -> None:
    feed = F.TickFeed(seed=42)
    clock = F.FeedClock(rate=500.0, base_ticks=START)
    rendered = feed.cursor().render(3, 3 + 4 * F.N_SYMBOLS + 5, clock)
    payloads = [json.loads(item) for item in rendered.items]
    assert payloads == [feed.item(clock, i) for i in range(3, 3 + 4 * F.N_SYMBOLS + 5)]
    assert [F.TickFeed.sequence_of(clock, p) for p in payloads[:2]] == [("USDCHF", 0), ("AUDUSD", 0)]
    only_gold = feed.cursor(frozenset({F.SYMBOL_INDEX["XAUUSD"]})).render(0, 100, clock)
    assert {json.loads(i)["symbol"] for i in only_gold.items} == {"XAUUSD"}
    # Deterministic per seed, different across seeds.
    assert F.TickFeed(42).item(clock, 1000) == feed.item(clock, 1000) != F.TickFeed(43).item(clock, 1000)


def test_row_feeds_sequences_invert() -> None:
    ds = Dataset(EmulatorConfig(seed=7, mt4_users=300, anchor=1_767_225_600))
    feeds = F.Feeds.create(ds, rates={F.MARGIN_CALLS: 50.0, F.TRADES: 1000.0, F.USERS: 1000.0}, start=START)
    for name in (F.TRADES, F.USERS, F.MARGIN_CALLS):
        clock = feeds.clocks[name]
        source = getattr(feeds, name)
        for i in range(0, 400, 7):
            assert feeds.sequence_of(name, source.item(clock, i)) == ("", i), (name, i)
    assert feeds.sequence_of(F.SYMBOL_UPDATES, feeds.symbols.item(feeds.clocks[F.SYMBOL_UPDATES], 1)) is None
    # Margin updates: the same account twice within one second is ambiguous -> no sequence rather than a wrong one.
    fast = F.FeedClock(rate=100_000.0, base_ticks=START)
    assert feeds.margin_calls.sequence_of(fast, feeds.margin_calls.item(fast, 5000)) is None


def test_sequence_tracker_books_duplicates_jumps_and_disconnect_losses() -> None:
    ledger = GapLedger()
    tracker = SequenceTracker("StreamTicks", lambda p: (p[0], p[1]))
    assert tracker.observe(("A", 1), 1, ledger, 0.0) == (True, ("A", 1))
    assert tracker.observe(("A", 1), 1, ledger, 0.0)[0] is False  # duplicate
    tracker.observe(("A", 4), 1, ledger, 1.0)  # live jump: 2 missed
    gap = ledger.open_disconnect(
        reason="x", connection=1, transport="WebSockets", started_at=2.0, last_event_at=1.0, unsequenced=[]
    )
    tracker.observe(("B", 10), 2, ledger, 3.0)  # first event of a partition: nothing to compare
    tracker.observe(("A", 9), 2, ledger, 3.0)  # 5..8 lost across the disconnect
    assert tracker.duplicates == 1 and tracker.missed == 6
    assert [r.kind for r in ledger.records] == ["sequence", "disconnect"]
    assert ledger.records[0].missed == {"StreamTicks": 2}
    assert gap.missed == {"StreamTicks": 4} and gap.total_missed == 4


async def test_event_buffer_backpressure_batches_and_errors() -> None:
    buffer = EventBuffer(maxsize=4)
    buffer.attach()
    for i in range(4):
        buffer.push(HubEvent("c", i, 0.0, 1))
    assert buffer.full
    waiter = asyncio.create_task(buffer.wait_room())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert [e.payload for e in await buffer.get_batch(3)] == [0, 1, 2]
    await asyncio.wait_for(waiter, 1)
    assert [e.payload for e in await buffer.get_batch(10, wait_s=0.01)] == [3]
    buffer.detach(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        await buffer.get()
    assert await EventBuffer().get_batch(5, wait_s=0.01) == []


def test_hub_fault_specs_validate() -> None:
    rule = hub_faults.rule_from_spec({"fault": "drop", "after_messages": 3, "hub": "mt4", "times": None})
    assert rule.kind == "hub.drop" and rule.times is None and rule.options["after_messages"] == 3
    assert hub_faults.spec_of(rule)["close_message"] is False
    for bad in ({"fault": "nope"}, {"fault": "drop", "after_messages": -1}, {"fault": "delay_handshake", "x": 1}):
        with pytest.raises(ValueError):
            hub_faults.rule_from_spec(bad)


async def test_batch_writer_keeps_a_write_cancelled_mid_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_cplugin.parquet.hub_schemas import HUB_TICKS
    from airflow_provider_cplugin.realtime.sampler import BatchWriter, SampleRequest

    request = SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=["StreamTicks"], window_end=0.0,
        output_path=f"file://{tmp_path}", run_name="run", partition_date="2026-11-24", batch_rows=2,
    )  # fmt: skip
    writer = BatchWriter(HUB_TICKS, ObjectStoragePath(f"file://{tmp_path}"), "run", request)
    real_write = writer._write_file
    monkeypatch.setattr(writer, "_write_file", lambda *a: (time.sleep(0.3), real_write(*a))[1])
    tick = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}
    events = [raw_items([dict(tick, bid=1.1 + i / 100)], 1.0 + i) for i in range(5)]
    await writer.add(events[:2])  # batch 0 starts writing in its thread
    adding = asyncio.create_task(writer.add(events[2:4]))  # waits for batch 0 before starting batch 1
    await asyncio.sleep(0.05)
    adding.cancel()  # the trigger is cancelled while a write is in flight
    with pytest.raises(asyncio.CancelledError):
        await adding
    writer.pending = events[2:]  # what the sampler still holds when its finally runs close()
    await writer.close()
    landed = sorted(Path(f["path"].removeprefix("file://")).name for f in writer.files)
    assert landed == ["run__b00000.parquet", "run__b00001.parquet"]
    assert sum(f["rows"] for f in writer.files) == 5


def raw_items(payloads: list[Any], received_at: float, connection: int = 1) -> RawItems:
    """A run of stream item messages as the hub client hands them to a raw stream's consumer."""
    messages = (json.dumps({"type": 2, "invocationId": "0", "item": p}, separators=(",", ":")) for p in payloads)
    text = "".join(m + RS for m in messages)
    return RawItems(text, len(payloads), received_at, connection)


class _FakeStream:
    """Hands out prepared batches, as the hub client's buffer would after the window ended."""

    def __init__(self, batches: list[list[RawItems]]) -> None:
        self.batches = batches
        self.active = True

    async def get_raw(self, max_items: int = 10_000, wait_s: float | None = None) -> list[RawItems]:
        return self.batches.pop(0) if self.batches else []


class _FakeWriter:
    def __init__(self) -> None:
        self.landed: list[Any] = []
        self.late: list[Any] = []

    async def add(self, runs: list[RawItems]) -> None:
        self.landed.extend(m["item"] for run in runs for m in run.messages())

    def observe_late(self, runs: list[RawItems]) -> None:
        self.late.extend(m["item"] for run in runs for m in run.messages())


def _drain_setup(max_events: int | None) -> tuple[Any, Any, Any, float]:
    from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest, StreamState, _Budget

    window_end = time.time() - 1.0  # the window is over: everything is still in the buffer
    request = SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=["StreamTicks"],
        window_end=window_end, output_path="file:///tmp/x", run_name="run", partition_date="2026-11-24",
    )  # fmt: skip
    return HubSampler(request), StreamState("StreamTicks", False, {}), _Budget(max_events), window_end


async def test_drain_lands_on_time_events_still_buffered_and_counts_late_ones() -> None:
    sampler, state, budget, window_end = _drain_setup(None)
    on_time = [raw_items([{"n": i}], window_end - 0.5 + i / 100) for i in range(3)]
    late = [raw_items([{"n": 3 + i}], window_end + 0.1 + i / 100) for i in range(2)]
    writer = _FakeWriter()
    await sampler._drain(_FakeStream([on_time[:2], on_time[2:] + late]), writer, budget, state, None)
    assert writer.landed == [{"n": i} for i in range(3)]  # buffered before the window's end: landed though read after
    assert state.late == 2 and state.stopped_by == "window"  # after it: not landed, but counted
    assert writer.late == [{"n": 3}, {"n": 4}]  # and still sequence-tracked, never landed


async def test_drain_stops_at_max_events_and_counts_the_rest() -> None:
    sampler, state, budget, window_end = _drain_setup(2)
    runs = [raw_items([{"n": 0}, {"n": 1}, {"n": 2}], window_end - 0.5), raw_items([{"n": 3}, {"n": 4}], window_end)]
    writer = _FakeWriter()
    await sampler._drain(_FakeStream([runs]), writer, budget, state, None)
    # The limit falls inside a run: it is split there.
    assert writer.landed == [{"n": 0}, {"n": 1}] and state.over_limit == 3 and state.stopped_by == "max_events"
