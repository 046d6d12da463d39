"""Integrity of the hub watchers and of continuous capture across restarts and disconnects.

Truth is the emulator: its stream records (``GET /_emulator/hub-stats``: the feed index of each invocation's first
and last item) and the feed index encoded in every payload. For a sequenced stream every index the emulator
scheduled is landed (or fired on) exactly once, or reported missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hub_testing import ready_hub, stream_records, take

from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger, HubEventTrigger

pytestmark = pytest.mark.timeout(150)

WATCH = "hub watchers"
CAPTURE = "continuous capture"
SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"
MARGIN = "StreamMarginCallUpdates"
CHILD = """
import asyncio, json, os, sys
sys.path[:0] = [sys.argv[3], os.path.dirname(sys.argv[3])]  # this file's folder and tests/ (hub_testing)
from test_watchers import FileStore
from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger

async def main():
    trigger = HubCaptureTrigger(**json.loads(sys.argv[1]))
    trigger.asset_state_store = FileStore(sys.argv[2])
    async for event in trigger.run():
        print(json.dumps(event.payload), flush=True)

asyncio.run(main())
"""


class FileStore:
    """The ``asset_state_store`` accessor Airflow injects (``aget``/``aset``), kept in a JSON file so a killed
    process's state is there for the next one, as the metadata DB keeps it for a restarted triggerer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.writes = 0

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        values = self._read()
        values[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        tmp.replace(self.path)  # atomic, like the DB row update
        self.writes += 1


@pytest.fixture(scope="module")
def process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=13) as emu:
        yield emu


@pytest.fixture
def emu(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(process, monkeypatch, margin_calls=50, ticks=3000)


def records(emu: EmulatorProcess, target: str) -> list[dict[str, Any]]:
    return stream_records(emu, target)


def watcher(**kwargs: Any) -> HubEventTrigger:
    return HubEventTrigger(
        **{"stream": MARGIN, "platform_type": "MT4", "sequences": SEQUENCES, "key_fields": [], **kwargs}
    )


def capture_kwargs(tmp_path: Path) -> dict[str, Any]:
    return {
        "stream": "StreamTicks:EURUSD", "platform_type": "MT4", "output_path": f"file://{tmp_path / 'landing'}",
        "roll_s": 0.5, "roll_rows": 200, "sequences": SEQUENCES,
    }  # fmt: skip


def spawn(kwargs: dict[str, Any], state: Path) -> subprocess.Popen[str]:
    """A capture in its own process (a triggerer to kill), printing each landed file's event."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(kwargs), str(state), str(Path(__file__).parent)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )  # fmt: skip


def landed_sequences(payloads: list[dict[str, Any]]) -> list[int]:
    paths = [p["path"].removeprefix("file://") for p in payloads]
    return pq.read_table(paths).column("_sequence").to_pylist() if paths else []


# --------------------------------------------------------------------------------------------- watchers


@pytest.mark.matrix(
    area=WATCH,
    fault="watcher re-created after a restart",
    expected="no second fire for an event; restart outage with the exact missed count in the next event",
)
async def test_watcher_restart_resumes_from_the_watermark(emu: EmulatorProcess, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    first = watcher()
    first.asset_state_store = store
    before = await take(first.run(), 5)
    await asyncio.sleep(0.5)  # the feed goes on while no watcher listens
    second = watcher()
    second.asset_state_store = store
    after = await take(second.run(), 3)
    one, two = records(emu, MARGIN)
    fired = [p["sequence"][1] for p in before + after]
    assert fired == sorted(set(fired))  # nothing fired twice
    assert fired[: len(before)] == list(range(one["first_index"], one["first_index"] + len(before)))
    last, resumed = before[-1]["sequence"][1], after[0]["sequence"][1]
    assert resumed == two["first_index"]  # the second stream's first item, by the emulator's record
    (outage,) = after[0]["outages"]
    assert outage["kind"] == "restart" and outage["missed"] == resumed - last - 1 > 0
    assert outage["started_at"] == before[-1]["received_at"] and outage["ended_at"] == after[0]["received_at"]
    assert after[1]["outages"] == []  # reported once


@pytest.mark.matrix(
    area=WATCH,
    fault="stream re-sends events already fired on (after a restart)",
    expected="dropped below the watermark: no second fire",
)
async def test_watcher_does_not_fire_again_for_resent_events(tmp_path: Path) -> None:
    from airflow_provider_cplugin.realtime.events import HubEvent
    from airflow_provider_cplugin.realtime.hub_source import HubBatch

    def batch(indexes: range) -> HubBatch:
        payloads = [{"login": 1000 + i, "levelType": 1} for i in indexes]
        return HubBatch(
            [HubEvent(MARGIN, p, 100.0 + i, 1, ("", i)) for p, i in zip(payloads, indexes, strict=True)], "tp", "MT4"
        )

    async def replay(*batches: HubBatch) -> AsyncIterator[HubBatch]:
        for b in batches:
            yield b

    store = FileStore(tmp_path / "state.json")
    first = watcher(key_fields=["login"])
    first.asset_state_store = store
    fired = [e.payload async for e in first.filter_shared_stream(replay(batch(range(0, 5))))]
    second = watcher(key_fields=["login"])
    second.asset_state_store = store
    refired = [e.payload async for e in second.filter_shared_stream(replay(batch(range(3, 9))))]
    assert [p["sequence"][1] for p in fired] == [0, 1, 2, 3, 4]
    assert [p["sequence"][1] for p in refired] == [5, 6, 7, 8]
    assert refired[0]["outages"][0]["kind"] == "restart" and refired[0]["outages"][0]["missed"] == 0


@pytest.mark.matrix(
    area=WATCH,
    fault="hub connection dropped mid-stream (TCP abort)",
    expected="reconnected; disconnect outage with the exact missed count in the next event",
)
async def test_watcher_reports_a_dropped_connection(emu: EmulatorProcess) -> None:
    emu.set_hub_faults([{"fault": "drop", "after_messages": 40, "hub": "/hubs/mt4/v2", "times": 1}])
    fired = await take(watcher(reconnect_delays=[0.0, 0.5]).run(), 60)
    one, two = records(emu, MARGIN)
    indexes = [p["sequence"][1] for p in fired]
    assert indexes == sorted(set(indexes))
    (n,) = [k for k, p in enumerate(fired) if p["outages"]]
    (outage,) = fired[n]["outages"]
    assert outage["kind"] == "disconnect" and indexes[n] == two["first_index"]
    # Truth: the first connection's items the watcher evaluated, then the emulator's second stream from its start.
    assert indexes[:n] == list(range(one["first_index"], indexes[n - 1] + 1))
    assert outage["missed"] == two["first_index"] - indexes[n - 1] - 1
    stats = emu._control("GET", "hub-stats")
    assert stats["connections_opened"] == 2


# --------------------------------------------------------------------------------------------- capture


@pytest.mark.matrix(
    area=CAPTURE,
    fault="triggerer killed (kill -9) while capturing",
    expected="the next instance resumes numbering; landed = sent - reported missed, no tick twice",
)
async def test_capture_across_a_kill9_lands_or_reports_every_tick(emu: EmulatorProcess, tmp_path: Path) -> None:
    kwargs = capture_kwargs(tmp_path)
    state = tmp_path / "state.json"
    child = spawn(kwargs, state)
    assert child.stdout is not None
    before: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while len(before) < 3 and time.monotonic() < deadline:
            line = await asyncio.to_thread(child.stdout.readline)
            if line.startswith("{"):
                before.append(json.loads(line))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(before) >= 3
    second = HubCaptureTrigger(**kwargs)
    store = FileStore(state)
    second.asset_state_store = store
    after = await take(second.run(), 3)
    first_record = records(emu, "StreamTicks")[0]
    recovered = [p for p in after if p.get("recovered")]
    fresh = [p for p in after if not p.get("recovered")]
    landed = landed_sequences(before + fresh) + landed_sequences(recovered)
    assert len(landed) == len(set(landed))  # no tick landed twice
    sent = range(first_record["first_index"] // N_SYMBOLS, max(landed) + 1)
    missed = sum(p["missed"] for p in after)
    assert sorted(landed) == [k for k in sent if k in set(landed)]
    assert len(sent) == len(landed) + missed  # landed = sent - reported missed
    restart = [g for p in after for g in p["gaps"] if g["kind"] == "restart"]
    assert len(restart) == 1 and restart[0]["missed"] > 0
    assert [p["batch"] for p in after] == list(range(after[0]["batch"], after[0]["batch"] + len(after)))
    visible = [f.name for f in (tmp_path / "landing").rglob("*.parquet") if not f.name.startswith(".")]
    assert sorted(visible) == sorted(Path(p["path"]).name for p in before + after)  # every file reported once


@pytest.mark.matrix(
    area=CAPTURE,
    fault="killed between a file's rename and its state write",
    expected="the next instance reports that file first; its ticks are not counted missed",
)
async def test_capture_file_landed_but_not_recorded_is_reported(emu: EmulatorProcess, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state.json")
    snapshots: list[str] = []
    real_aset = store.aset

    async def aset(key: str, value: Any) -> None:
        snapshots.append(store.path.read_text() if store.path.exists() else "{}")
        await real_aset(key, value)

    one = HubCaptureTrigger(**capture_kwargs(tmp_path))
    one.asset_state_store = store
    store.aset = aset  # type: ignore[method-assign]
    before = await take(one.run(), 2)
    store.path.write_text(snapshots[1])  # the state as it was before the second file was recorded
    store.aset = real_aset  # type: ignore[method-assign]
    two = HubCaptureTrigger(**capture_kwargs(tmp_path))
    two.asset_state_store = store
    after = await take(two.run(), 2)
    assert after[0]["recovered"] is True and after[0]["path"] == before[1]["path"]
    assert after[0]["rows"] == before[1]["rows"]
    landed = landed_sequences(before) + landed_sequences(after[1:])
    record = records(emu, "StreamTicks")[0]
    sent = range(record["first_index"] // N_SYMBOLS, max(landed) + 1)
    assert len(landed) == len(set(landed))
    assert len(sent) == len(landed) + sum(p["missed"] for p in after)
    assert after[0]["gaps"] == []  # the recovered file was landed before the restart
