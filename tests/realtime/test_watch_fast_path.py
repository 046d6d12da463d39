"""The watchers' fast path equals the event-by-event path.

A watcher filters a batch with Arrow kernels on the batch's columns and moves its sequence watermark once per
partition (``Watcher.process_batch``, in a worker thread); whatever it cannot take that way goes event by event
(``Watcher.process``). These tests hold the two to the same answers: the vectorised filter against the predicate
on the emulator's own payloads and on hostile columns (mixed types, nulls, missing fields, bools for numbers), and
two watchers fed the same batches (clean, re-sent, with holes, across a restart and a disconnect) against each other
— payloads fired, state saved — with the fast path checked to be the one actually taken for clean batches.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
import types
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs.feeds import FeedClock, MarginCallFeed
from airflow_provider_cplugin.realtime import watcher as watcher_module
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.filters import Debouncer, VectorUnsupported, compile_filter
from airflow_provider_cplugin.realtime.hub_source import HubBatch
from airflow_provider_cplugin.realtime.watcher import StateSlot, Watcher

MARGIN = "StreamMarginCallUpdates"
LOG = logging.getLogger(__name__)

FILTERS: list[list[dict[str, Any]]] = [
    [{"field": "levelType", "op": "in", "value": ["MarginCall", "StopOut"]}],
    [{"field": "level", "op": "<", "value": 80}, {"field": "group", "op": "group_mask", "value": "real*,!real-vip"}],
    [{"field": "level", "op": ">=", "value": 100.5}],
    [{"field": "login", "op": "not_in", "value": [100001, 100002, 100003]}],
    [{"field": "group", "op": "==", "value": "real"}],
    [{"field": "group", "op": "!=", "value": "real"}],
    [{"field": "equity", "op": "<=", "value": 5000}],
    [{"any": [{"field": "levelType", "op": "==", "value": "StopOut"}, {"field": "margin", "op": ">", "value": 900}]}],
]


def margin_items(count: int) -> list[dict[str, Any]]:
    feed = MarginCallFeed(Dataset(EmulatorConfig(seed=7, mt4_users=500)))
    clock = FeedClock(rate=10.0, base_ticks=0)
    return [feed.item(clock, i) for i in range(count)]


def batch_of(payloads: list[Any], sequences: list[tuple[str, int] | None] | None = None) -> HubBatch:
    seqs = sequences or [None] * len(payloads)
    events = [HubEvent(MARGIN, p, 100.0 + n / 1000, 1, s) for n, (p, s) in enumerate(zip(payloads, seqs, strict=True))]
    return HubBatch(events, "tp", "MT4")


@pytest.mark.parametrize("where", FILTERS)
def test_vector_filter_equals_the_predicate_on_emulator_payloads(where: list[dict[str, Any]]) -> None:
    import pyarrow.compute as pc

    items = margin_items(600)
    compiled = compile_filter(where, "MT4", MARGIN)
    assert compiled.vector is not None
    mask = compiled.vector(batch_of(items))  # clean columns: the kernels must take them
    assert pc.indices_nonzero(mask).to_pylist() == [i for i, p in enumerate(items) if compiled.matches(p)]


def test_vector_filter_never_disagrees_on_hostile_columns() -> None:
    """Mixed types, nulls, missing fields, bools where numbers are expected: the kernels give the predicate's answer
    or decline (VectorUnsupported), never a different one."""
    rng = random.Random(3)
    values: list[Any] = [None, True, False, 0, 1, 2, 1.0, 79.5, 80, 150.25, "real", "real-vip", "demo", "80", [1]]
    fields = ["level", "group", "login", "levelType", "margin"]
    wheres = [
        *FILTERS,
        [{"field": "levelType", "op": "==", "value": 1}],
        [{"field": "login", "op": "in", "value": [1, 2]}],
    ]
    declined = agreed = 0
    for _ in range(300):
        homogeneous = rng.random() < 0.5
        pool = [rng.choice(values)] if homogeneous else values
        payloads: list[Any] = []
        for _ in range(rng.randint(1, 12)):
            payload = {f: rng.choice(pool) for f in fields if rng.random() < 0.9}
            payloads.append(payload)
        for where in wheres:
            compiled = compile_filter(where, "MT4", MARGIN)
            assert compiled.vector is not None
            try:
                mask = compiled.vector(batch_of(payloads)).to_pylist()
            except VectorUnsupported:
                declined += 1
                continue
            assert mask == [compiled.matches(p) for p in payloads], (where, payloads)
            agreed += 1
    assert agreed > 500 and declined > 50  # both branches exercised


def watcher(where: list[dict[str, Any]], **debounce: Any) -> Watcher:
    compiled = compile_filter(where, "MT4", MARGIN)
    return Watcher(
        "w", compiled, ["login"], ["login", "level"], Debouncer(debounce.get("debounce_s"), debounce.get("every_n")),
        StateSlot(None, "k", LOG), 5.0, LOG,
    )  # fmt: skip


def sequenced(items: list[dict[str, Any]], indexes: list[int]) -> HubBatch:
    # Two partitions, interleaved like the emulator's per-account rotation.
    return batch_of([items[i] for i in indexes], [(str(i % 2), i // 2) for i in indexes])


def scenario(items: list[dict[str, Any]]) -> list[HubBatch]:
    return [
        sequenced(items, list(range(0, 100))),  # clean
        sequenced(items, list(range(100, 200))),  # clean
        sequenced(items, list(range(150, 260))),  # re-sent (repeats below the watermark)
        sequenced(items, [*range(260, 300), *range(310, 360)]),  # a hole on the live connection
        sequenced(items, list(range(360, 420))),  # clean again
        HubBatch(
            sequenced(items, list(range(440, 480))).events,
            "tp",
            "MT4",
            gaps=[{"connection": 1, "kind": "disconnect", "reason": "x", "started_at": 1.0, "ended_at": 2.0}],
        ),
        sequenced(items, list(range(480, 600))),  # clean
    ]


def fresh(batch: HubBatch) -> HubBatch:
    return HubBatch(copy.deepcopy(batch.events), batch.trade_platform, batch.platform_type,
                    batch.connection_offset, copy.deepcopy(batch.gaps))  # fmt: skip


FROZEN = 1_000_000.0  # wall clock of the states compared (the debounce windows kept depend on it)


@pytest.fixture(autouse=True)
def frozen_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = types.SimpleNamespace(
        time=lambda: FROZEN, monotonic=time.monotonic, strftime=time.strftime, gmtime=time.gmtime
    )
    monkeypatch.setattr(watcher_module, "time", clock)


def run_both(fast: Watcher, slow: Watcher, batches: list[HubBatch]) -> list[bool]:
    """Feed both watchers the same batches; assert the same fires and state after each; which batches went fast."""
    took_fast = []
    for batch in batches:
        fires = fast._fast(fresh(batch))
        took_fast.append(fires is not None)
        if fires is None:  # declined: nothing moved, so process_batch's own fallback is what runs
            fires, _ = fast.process_batch(fresh(batch))
        # Each fire with the state as of its own event (the fast path rebuilds the watermark prefix of the batch).
        assert fires == [(payload, slow._state(FROZEN)) for payload in slow.process(fresh(batch))]
        assert fast._state(0.0) == slow._state(0.0)
        assert (fast.evaluated, fast.matched, fast.ledger.live_missed) == (
            slow.evaluated, slow.matched, slow.ledger.live_missed,
        )  # fmt: skip
    return took_fast


@pytest.mark.parametrize("where", FILTERS[:3])
@pytest.mark.parametrize("debounce", [{}, {"debounce_s": 0.03}, {"every_n": 3}])
def test_fast_path_equals_event_by_event(where: list[dict[str, Any]], debounce: dict[str, Any]) -> None:
    items = margin_items(900)
    fast, slow = watcher(where, **debounce), watcher(where, **debounce)
    assert run_both(fast, slow, scenario(items)) == [True, True, False, False, True, False, True]

    # A restart: both re-created from the saved state; the first batch re-sends some and jumps past the rest.
    state = fast._state(0.0) | {"v": 1}
    fast, slow = watcher(where, **debounce), watcher(where, **debounce)
    for w in (fast, slow):
        w.slot.memory = copy.deepcopy(state)
        asyncio.run(w.load())
    restarts = [fast._restart, slow._restart]
    after = [sequenced(items, list(range(700, 800))), sequenced(items, list(range(800, 900)))]
    assert run_both(fast, slow, after) == [True, True]
    # Both partitions jumped from index 299 to 350: 2 x 50 missed, booked on the restart outage, now closed.
    assert [(r["missed"], r["ended_at"]) for r in restarts if r] == [(100, 100.0)] * 2


class FakeStream:
    """What ``decode_batch`` reads of a raw ``HubStream``: its name and its sequence tracking."""

    name = MARGIN

    def __init__(self, sequenced: bool) -> None:
        self.tracker = object() if sequenced else None
        self.last: dict[str, int] = {}

    def observe(self, payload: Any, connection: int, received_at: float) -> tuple[bool, tuple[str, int] | None]:
        key, index = str(payload["login"] % 2), payload["updated"]
        deliver = index > self.last.get(key, -1)
        self.last[key] = max(index, self.last.get(key, -1))
        return deliver, (key, index)


def raw_runs(payloads: list[dict[str, Any]], per_run: int) -> list[Any]:
    import orjson

    from airflow_provider_cplugin.realtime.events import RS, RawItems

    runs = []
    for start in range(0, len(payloads), per_run):
        chunk = payloads[start : start + per_run]
        text = "".join(orjson.dumps({"type": 2, "invocationId": "1", "item": p}).decode() + RS for p in chunk)
        runs.append(RawItems(text, len(chunk), 100.0 + start, 1))
    return runs


@pytest.mark.parametrize("sequenced", [False, True])
def test_raw_batch_is_the_same_batch_as_decoded_events(sequenced: bool) -> None:
    """The source's Arrow batch (C++ reader, no Python object per event) gives the watchers the same columns,
    rows and fires as the same items decoded one by one."""
    from airflow_provider_cplugin.parquet.hub_schemas import STREAM_ENTITIES
    from airflow_provider_cplugin.realtime.hub_source import decode_batch
    from airflow_provider_cplugin.realtime.item_decode import ItemDecoder

    items = margin_items(300)
    for n, item in enumerate(items):
        item["updated"] = n // 2 if n % 7 else max(n // 2 - 3, 0)  # some repeats for the sequence function to drop
    decoder = ItemDecoder(STREAM_ENTITIES[("MT4", MARGIN)], MARGIN)
    meta = {"trade_platform": "tp", "platform_type": "MT4", "connection_offset": 0}
    raw = decode_batch(FakeStream(sequenced), decoder, raw_runs(items, 64), meta)  # type: ignore[arg-type]
    assert raw.rows is not None  # the fast reader took it
    slow_stream = FakeStream(sequenced)
    events = []
    for n, p in enumerate(items):
        deliver, seq = slow_stream.observe(p, 1, 0.0) if sequenced else (True, None)
        if deliver:
            events.append(HubEvent(MARGIN, p, 100.0 + n // 64 * 64, 1, seq))
    decoded = HubBatch(events, "tp", "MT4")
    assert len(raw) == len(decoded) < (len(items) if sequenced else len(items) + 1)
    for field in ("login", "level", "levelType", "group"):
        assert raw.column(field).to_pylist() == decoded.column(field).to_pylist()
    assert [(e.payload, e.received_at, e.sequence) for e in raw.events] == [
        (e.payload, e.received_at, e.sequence) for e in events
    ]
    assert raw.partitions() == decoded.partitions()
    for where in FILTERS:
        one, two = watcher(where, debounce_s=0.5), watcher(where, debounce_s=0.5)
        assert one.process_batch(raw)[0] == two.process_batch(decoded)[0]


def test_a_malformed_record_is_set_apart_and_the_rest_tracked_once() -> None:
    """A record that is not JSON in a sequenced batch: it travels in ``malformed`` with its text, every other item
    is delivered once with its sequence (tracking the batch twice would drop them all as repeats)."""
    from airflow_provider_cplugin.parquet.hub_schemas import STREAM_ENTITIES
    from airflow_provider_cplugin.realtime.events import RS, RawItems
    from airflow_provider_cplugin.realtime.hub_source import decode_batch
    from airflow_provider_cplugin.realtime.item_decode import ItemDecoder

    items = margin_items(40)
    for n, item in enumerate(items):
        item["updated"] = n // 2
    (run,) = raw_runs(items, 40)
    records = run.records()
    broken = RawItems("".join(r + RS for r in [*records[:10], '{"type":2,"item":', *records[10:]]), 41, 100.0, 1)
    decoder = ItemDecoder(STREAM_ENTITIES[("MT4", MARGIN)], MARGIN)
    meta = {"trade_platform": "tp", "platform_type": "MT4", "connection_offset": 0}
    batch = decode_batch(FakeStream(True), decoder, [broken], meta)  # type: ignore[arg-type]
    assert [(e.payload, reason.startswith("not JSON")) for e, reason in batch.malformed] == [
        ('{"type":2,"item":', True)
    ]
    assert [e.payload for e in batch.events] == items
    assert [e.sequence for e in batch.events] == [(str(p["login"] % 2), p["updated"]) for p in items]
