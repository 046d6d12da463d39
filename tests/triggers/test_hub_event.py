"""HubEventTrigger against the emulator's hubs: what it fires is checked against the emulator's feed (the payload
it generates at each index) and its hub stats (connections opened, stream records), never the trigger's summary."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager
from hub_testing import ready_hub, shaped, stream_records
from hub_testing import take as take_events

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs.feeds import FeedClock, MarginCallFeed
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime.filters import compile_filter
from airflow_provider_cplugin.results import WatcherEvent
from airflow_provider_cplugin.triggers.hub_event import HubEventTrigger

pytestmark = pytest.mark.timeout(120)

SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"
MARGIN = "StreamMarginCallUpdates"
IN_MARGIN_CALL = [{"field": "levelType", "op": "in", "value": ["MarginCall", "StopOut"]}]


@pytest.fixture(scope="module")
def process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=7) as emu:
        yield emu


@pytest.fixture
def emu(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(process, monkeypatch, margin_calls=50, trades=20)


def margin_truth(emu: EmulatorProcess) -> tuple[MarginCallFeed, FeedClock]:
    """The emulator's margin-call feed and clock: ``feed.item(clock, i)`` is exactly what it sends at index i."""
    config = emu.hub_config()
    return MarginCallFeed(Dataset(EmulatorConfig(**config["dataset"]))), FeedClock.from_dict(
        config["feeds"]["margin_calls"]
    )


def trigger(**kwargs: Any) -> HubEventTrigger:
    return HubEventTrigger(**{"stream": MARGIN, "platform_type": "MT4", "sequences": SEQUENCES, **kwargs})


async def take(events: AsyncIterator[TriggerEvent], count: int) -> list[dict[str, Any]]:
    return await take_events(events, count, shaped(WatcherEvent))


def records(emu: EmulatorProcess, target: str = MARGIN) -> list[dict[str, Any]]:
    return stream_records(emu, target)


async def test_fires_exactly_for_the_matching_events(emu: EmulatorProcess) -> None:
    fired = await take(trigger(where=IN_MARGIN_CALL).run(), 8)
    feed, clock = margin_truth(emu)
    (record,) = records(emu)
    indexes = [p["sequence"][1] for p in fired]
    assert indexes == sorted(indexes)
    # Truth: every index the emulator sent from the stream's first item to the last fired one.
    matching = [i for i in range(record["first_index"], indexes[-1] + 1) if feed.item(clock, i)["levelType"] in (1, 2)]
    assert indexes == matching
    for payload, index in zip(fired, indexes, strict=True):
        sent = feed.item(clock, index)
        assert payload["event"] == {k: sent[k] for k in payload["event"]}
        assert payload["key"] == {"login": sent["login"]} and payload["matches"] == 1
        assert set(payload["event"]) == {"login", "levelType", "group", "level", "equity", "margin"}
        assert payload["missed_live"] == 0 and payload["outages"] == []
    assert len(json.dumps(fired[0])) < 1500  # small: matched fields and counts, never the stream


async def test_debounce_and_every_n_follow_the_sent_sequence(emu: EmulatorProcess) -> None:
    fired = await take(trigger(where=IN_MARGIN_CALL, key_fields=[], every_n=3).run(), 4)
    feed, clock = margin_truth(emu)
    (record,) = records(emu)
    matching = [i for i in range(record["first_index"], fired[-1]["sequence"][1] + 1)
                if feed.item(clock, i)["levelType"] in (1, 2)]  # fmt: skip
    assert [p["sequence"][1] for p in fired] == matching[2::3]  # every third match of the one key
    assert all(p["matches"] == 3 and p["matched_since_last_fire"] == 3 for p in fired)

    emu._control("DELETE", "hub-stats")
    window = await take(trigger(where=IN_MARGIN_CALL, debounce_s=3600).run(), 6)
    logins = [p["key"]["login"] for p in window]
    assert len(set(logins)) == len(logins)  # never twice for one login within the window
    (record,) = records(emu)
    first_seen: dict[int, int] = {}
    for i in range(record["first_index"], window[-1]["sequence"][1] + 1):
        item = feed.item(clock, i)
        if item["levelType"] in (1, 2):
            first_seen.setdefault(item["login"], i)
    assert [p["sequence"][1] for p in window] == sorted(first_seen.values())  # each login's first match fired


async def test_ten_watchers_share_one_hub_connection(emu: EmulatorProcess) -> None:
    """Airflow's SharedStreamManager (what the triggerer runs) gives ten watchers of one stream one WebSocket."""
    manager = SharedStreamManager()
    levels = [20, 30, 40, 50, 60, 70, 80, 90, 100, 110]
    watchers = [trigger(where=[{"field": "level", "op": "<", "value": lv}], key_fields=[], name=f"w{lv}")
                for lv in levels]  # fmt: skip
    keys = {w.shared_stream_key() for w in watchers}
    assert len(keys) == 1
    (key,) = keys
    streams = [
        w.filter_shared_stream(manager.subscribe(trigger_id=n, trigger=w, key=key)) for n, w in enumerate(watchers)
    ]
    try:
        results = await asyncio.gather(*(take(s, 3) for s in streams))
    finally:
        for n in range(len(watchers)):
            await manager.unsubscribe(n, key)
    stats = emu._control("GET", "hub-stats")
    assert stats["connections_opened"] == 1 and stats["handshakes"] == 1
    assert stats["invocations"] == {MARGIN: 1} and len(records(emu)) == 1
    feed, clock = margin_truth(emu)
    for level, fired in zip(levels, results, strict=True):
        assert all(p["watcher"] == f"w{level}" for p in fired)
        assert all(feed.item(clock, p["sequence"][1])["level"] < level for p in fired)


def test_kwargs_are_plain_data_and_round_trip() -> None:
    t = trigger(where=IN_MARGIN_CALL, debounce_s=30, cplugin_conn_id="risk")
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_cplugin.triggers.hub_event.HubEventTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    again = HubEventTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs) and again.shared_stream_key() == t.shared_stream_key()
    assert "password" not in json.dumps(kwargs) and "token" not in json.dumps(kwargs)
    assert again.where == IN_MARGIN_CALL


def test_watcher_kwargs_hash_the_same_after_the_db_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow links a watcher's trigger row to its asset by hashing the kwargs before and after the DB round trip
    (``add_asset_trigger_references``): a hash that changes leaves the watcher unlinked and never run (found on the
    e2e deployment: the margin-call watcher had no ``asset_watcher`` row)."""
    from airflow.models.trigger import Trigger
    from airflow.serialization.encoders import encode_trigger
    from airflow.triggers.base import BaseEventTrigger
    from cryptography.fernet import Fernet

    from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    from airflow.models import crypto

    crypto.get_fernet.cache_clear()
    try:
        for t in (
            trigger(
                where=[*IN_MARGIN_CALL, {"any": [{"field": "level", "op": "<", "value": 50}]}], key_fields=["login"]
            ),
            HubCaptureTrigger(stream="StreamTicks:EURUSD", platform_type="MT4", name="ticks"),
        ):
            encoded = encode_trigger(t)
            row = Trigger(classpath=encoded["classpath"], kwargs=encoded["kwargs"])
            assert BaseEventTrigger.hash(row.classpath, row.kwargs) == BaseEventTrigger.hash(
                encoded["classpath"], encoded["kwargs"]
            ), type(t).__name__
    finally:
        crypto.get_fernet.cache_clear()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"stream": "StreamNope"}, "stream"),
        ({"stream": "StreamTrades", "platform_type": "MT5"}, "stream"),
        ({"platform_type": "MT6"}, "platform_type"),
        ({"debounce_s": 0}, "debounce_s"),
        ({"every_n": 1.5}, "every_n"),
        ({"key_fields": ["nope"]}, "key_fields"),
        ({"where": [{"field": "level", "op": "<", "value": "x"}]}, "where[0].value"),
        ({"sequences": "no_colon"}, "sequences"),
        ({"reconnect_delays": [-1]}, "reconnect_delays"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(CPluginConfigError) as info:
        HubEventTrigger(**{"stream": MARGIN, **kwargs})
    assert info.value.field == field


def test_filter_checked_against_the_resolved_platform() -> None:
    # Type unknown at parse time: fields of either platform pass, the resolved one is enforced when batches come.
    HubEventTrigger(stream=MARGIN, where=[{"field": "direction", "op": "==", "value": "Enter"}])
    with pytest.raises(CPluginConfigError):
        compile_filter([{"field": "direction", "op": "==", "value": "Enter"}], "MT4", MARGIN)
