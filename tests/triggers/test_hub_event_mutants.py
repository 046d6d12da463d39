"""Hub event triggers without the emulator: what makes watchers share one hub stream, secrets kept out of the kwargs
when a connection is configured, the filter re-checked once the platform type is known, and the watermark saved
before an event leaves and on a graceful stop. Batches are built by hand (:class:`HubBatch` of :class:`HubEvent`):
the watermark and the store contents are the truth here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hub_testing import MemoryStore

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.hub_source import HubBatch
from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger, HubEventTrigger

MARGIN = "StreamMarginCallUpdates"
SECRET = "s3cret-never-in-kwargs"


def batch(indexes: range, platform_type: str = "MT4") -> HubBatch:
    events = [HubEvent(MARGIN, {"login": 1000 + i, "levelType": 1, "level": 40.0}, 100.0 + i, 1, ("", i))
              for i in indexes]  # fmt: skip
    return HubBatch(events, "tp", platform_type)


async def replay(*batches: HubBatch) -> AsyncIterator[HubBatch]:
    for b in batches:
        yield b


def watcher(**kwargs: Any) -> HubEventTrigger:
    return HubEventTrigger(**{"stream": MARGIN, "platform_type": "MT4", "key_fields": ["login"], **kwargs})


BASE: dict[str, Any] = {"stream": "StreamTicks:EURUSD", "cplugin_conn_id": "a", "trade_platform": "tp",
                        "platform_type": "MT4", "sequences": None, "reconnect_delays": None}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [{"stream": "StreamTicks:GBPUSD"}, {"stream": "StreamTicks"}, {"stream": "StreamMarginCallUpdates"},
     {"cplugin_conn_id": "b"}, {"trade_platform": "other"}, {"platform_type": None},
     {"sequences": "m:f"}, {"reconnect_delays": [1.0]}],
)  # fmt: skip
def test_watchers_share_a_hub_stream_only_when_everything_that_shapes_it_is_equal(change: dict[str, Any]) -> None:
    one = HubEventTrigger(**BASE)
    assert one.shared_stream_key() == HubEventTrigger(**BASE, where=[], debounce_s=5, name="x").shared_stream_key()
    assert one.shared_stream_key() != HubEventTrigger(**{**BASE, **change}).shared_stream_key()


def test_kwargs_of_both_hub_triggers_carry_no_secret_of_the_configured_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    conn = {"conn_type": "cplugin", "host": "https://api.example.com", "login": "client-id", "password": SECRET,
            "extra": {"client_secret": SECRET, "auth_url": "https://auth.example.com"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_RISK", json.dumps(conn))
    triggers = [
        HubEventTrigger(stream=MARGIN, cplugin_conn_id="risk", where=[]),
        HubCaptureTrigger(stream="StreamTicks:EURUSD", cplugin_conn_id="risk", output_path=f"file://{tmp_path}"),
    ]
    for trigger in triggers:
        text = json.dumps(trigger.serialize()[1])
        assert SECRET not in text and "client-id" not in text


async def test_a_filter_on_fields_of_the_other_platform_fails_once_the_type_is_resolved() -> None:
    unresolved = HubEventTrigger(stream=MARGIN, where=[{"field": "direction", "op": "==", "value": "Enter"}])
    with pytest.raises(CPluginConfigError, match="not a field"):
        async for _ in unresolved.filter_shared_stream(replay(batch(range(3), platform_type="MT4"))):
            pass


async def test_the_watermark_is_in_the_store_before_each_event_leaves() -> None:
    # Each fire leaves with the store at its own index (realtime/watcher.py): a kill while a batch's fires are
    # handed over never fires one twice, and a restart counts everything after the last one that left as missed.
    store = MemoryStore()
    trigger = watcher(checkpoint_s=3600)
    trigger.asset_state_store = store  # type: ignore[assignment]
    stored_at_fire = []
    async for event in trigger.filter_shared_stream(replay(batch(range(0, 4)), batch(range(4, 6)))):
        stored_at_fire.append((event.payload["sequence"][1], store.seen().get("")))
    assert stored_at_fire == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]


async def test_a_stop_while_a_batchs_fires_leave_counts_the_undelivered_ones_as_missed() -> None:
    store = MemoryStore()
    first = watcher(checkpoint_s=3600)
    first.asset_state_store = store  # type: ignore[assignment]
    stream = first.filter_shared_stream(replay(batch(range(0, 6))))
    delivered = [(await anext(stream)).payload["sequence"][1] for _ in range(2)]
    await stream.aclose()  # the triggerer stops the watcher with four of the batch's fires not yet handed over
    assert delivered == [0, 1] and store.seen() == {"": 1}  # the last fire that left, not the batch's end
    again = watcher(checkpoint_s=3600)
    again.asset_state_store = store  # type: ignore[assignment]
    fired = [e.payload async for e in again.filter_shared_stream(replay(batch(range(8, 10))))]
    (restart,) = fired[0]["outages"]
    assert restart["kind"] == "restart" and restart["missed"] == 6  # 2-5 never handed over, 6-7 never received


async def test_a_graceful_stop_saves_the_watermark_even_without_a_fire() -> None:
    store = MemoryStore()
    where = [{"field": "login", "op": ">=", "value": 1003}]
    quiet = watcher(where=where, checkpoint_s=3600)
    quiet.asset_state_store = store  # type: ignore[assignment]
    assert [e async for e in quiet.filter_shared_stream(replay(batch(range(0, 3))))] == []  # no match, no fire
    assert store.seen() == {"": 2}
    again = watcher(where=where, checkpoint_s=3600)  # the same watcher, re-created after a restart
    again.asset_state_store = store  # type: ignore[assignment]
    fired = [e.payload async for e in again.filter_shared_stream(replay(batch(range(5, 8))))]
    assert [p["sequence"][1] for p in fired] == [5, 6, 7]
    (restart,) = fired[0]["outages"]
    assert restart["kind"] == "restart" and restart["missed"] == 2  # indexes 3 and 4 never arrived


def test_a_jump_after_a_partitions_first_event_past_an_outage_is_a_live_loss() -> None:
    from airflow_provider_cplugin.realtime.watcher import SequenceLedger

    ledger = SequenceLedger({"A": 5, "B": 1})
    outage: dict[str, Any] = {"kind": "disconnect", "missed": 0}
    ledger.open_outage(outage)
    assert [ledger.observe(s) for s in [("A", 8), ("A", 9), ("B", 2), ("A", 12), ("B", 5)]] == [True] * 5
    assert outage["missed"] == 2  # A: 6 and 7, lost over the outage (B's first event after it lost nothing)
    assert ledger.live_missed == 2 + 2  # A: 10, 11 and B: 3, 4, lost on the live connection afterwards


async def test_a_restarted_watcher_fed_again_from_its_watermark_fires_only_what_is_new() -> None:
    # The stream re-sends from the watermark itself (index 5) to a watcher re-created after a restart: the whole
    # batch looks increasing, but its first event was seen (and fired) before the restart.
    store = MemoryStore()
    first = watcher(checkpoint_s=3600)
    first.asset_state_store = store  # type: ignore[assignment]
    assert [e.payload["sequence"][1] async for e in first.filter_shared_stream(replay(batch(range(0, 6))))] == [
        *range(6)
    ]
    again = watcher(checkpoint_s=3600)
    again.asset_state_store = store  # type: ignore[assignment]
    fired = [e.payload async for e in again.filter_shared_stream(replay(batch(range(5, 8))))]
    assert [p["sequence"][1] for p in fired] == [6, 7]
    (restart,) = fired[0]["outages"]
    assert restart["kind"] == "restart" and restart["missed"] == 0


def test_a_whole_batch_with_a_live_jump_after_an_outage_goes_event_by_event() -> None:
    """The fast path's ledger (``advance``) books a partition's first jump past an outage to the outage, and hands
    any later jump back to ``observe`` as a live loss."""
    from airflow_provider_cplugin.realtime.watcher import SequenceLedger

    ledger = SequenceLedger({"A": 5})
    outage: dict[str, Any] = {"kind": "disconnect", "missed": 0}
    ledger.open_outage(outage)
    assert ledger.advance({"A": (8, 9, 2, True)})  # 6 and 7 lost over the outage
    assert not ledger.advance({"A": (12, 13, 2, True)})  # 10 and 11 lost live: not for the whole-batch path
    assert [ledger.observe(("A", i)) for i in (12, 13)] == [True, True]
    assert (outage["missed"], ledger.live_missed) == (2, 2)
