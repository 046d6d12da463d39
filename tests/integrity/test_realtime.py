"""Integrity of realtime hub sampling, checked against what the emulator sent (its hub stream records).

For a sequenced stream every feed index the emulator scheduled between the first item of the run's first
invocation and the last item of its last one is exactly one of: landed, reported missed, quarantined (rejects)
or reported as received after the window. The sampler's own summary is only compared with that truth.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
import pytest
from hub_testing import ready_hub, stream_records

from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS, SYMBOL_INDEX
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger

pytestmark = pytest.mark.timeout(120)

AREA = "realtime sampling"
SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"
RUN = "dag__sample__20261124T000000"
CHILD = """
import asyncio, json, sys
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger

async def main():
    async for event in HubSampleTrigger(**json.loads(sys.argv[1])).run():
        with open(sys.argv[2], "w") as f:
            json.dump(event.payload, f)

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=7) as emu:
        yield emu


@pytest.fixture
def emu(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(process, monkeypatch, ticks=2000, symbols=5, margin_calls=50)


def request(emu: EmulatorProcess, tmp_path: Path, window: float, streams: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "cplugin_conn_id": "cplugin_default",
        "trade_platform": emu.mt4_trade_platform,
        "platform_type": "MT4",
        "streams": [{"method": m, "args": [a] if a else []} for m, _, a in (s.partition(":") for s in streams)],
        "window_end": time.time() + window,
        "output_path": f"file://{tmp_path / 'landing'}",
        "run_name": RUN,
        "partition_date": "2026-11-24",
        "sequences": SEQUENCES,
        **extra,
    }


def records(emu: EmulatorProcess, target: str, args: list[str]) -> list[dict[str, Any]]:
    found = stream_records(emu, target, args)
    assert found, f"the emulator never served {target}{args}"
    return found


def scheduled(emu: EmulatorProcess, target: str, args: list[str]) -> int:
    """Feed indexes the stream's invocations covered, first item of the first to last item of the last."""
    served = [r for r in records(emu, target, args) if r["first_index"] is not None]
    first, last = min(r["first_index"] for r in served), max(r["last_index"] for r in served)
    if target == "StreamTicks" and args:  # one symbol: every N_SYMBOLS-th index
        assert first % N_SYMBOLS == last % N_SYMBOLS == SYMBOL_INDEX[args[0]]
        return (last - first) // N_SYMBOLS + 1
    return last - first + 1


def landed(tmp_path: Path, channel_slug: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((tmp_path / "landing").rglob(f"{RUN}__{channel_slug}__b*.parquet")):
        for row in pq.read_table(path).to_pylist():
            out.append({**row, "_file": str(path)})
    return out


def accounted(summary: dict[str, Any], channel: str) -> int:
    missed = summary["missed"][channel]
    assert missed is not None, f"{channel} is sequenced: its missed count must be known"
    late = summary["not_landed"][channel]
    return summary["events"][channel] + missed + summary["rejects"]["events"][channel] + late["after_window"]


def sample(kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """The trigger's events, run in this process."""

    async def run() -> list[dict[str, Any]]:
        return [e.payload async for e in HubSampleTrigger(**kwargs).run()]

    return asyncio.run(run())


def spawn(kwargs: dict[str, Any], out: Path) -> subprocess.Popen[bytes]:
    """The trigger's run() in its own process (a triggerer), its one event written to ``out``."""
    with open(out.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(kwargs), str(out)], stdout=log, stderr=log, env=os.environ.copy()
        )


def wait_for(predicate: Any, deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.matrix(
    area=AREA,
    fault="triggerer killed (kill -9) mid-window",
    expected="time-cut batches kept; restart gap counts the missed events; sent = landed + missed + late",
)
def test_killed_triggerer_accounts_for_every_event(emu: EmulatorProcess, tmp_path: Path) -> None:
    streams = ["StreamTicks:EURUSD", "StreamTicks", "StreamSymbolUpdates"]
    # Batches never fill by rows: whatever lands before the kill was cut by time.
    kwargs = request(emu, tmp_path, 60.0, streams, flush_interval=1.0, batch_rows=1_000_000)
    first = spawn(kwargs, tmp_path / "first.out")
    try:
        wait_for(lambda: landed(tmp_path, "StreamTicks-EURUSD") and landed(tmp_path, "StreamTicks"), 50, "a time cut")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    before = {slug: len(landed(tmp_path, slug)) for slug in ("StreamTicks-EURUSD", "StreamTicks")}

    second = spawn(kwargs, tmp_path / "second.out")
    assert second.wait(timeout=150) == 0
    summary = json.loads((tmp_path / "second.out").read_text())

    assert summary["status"] == "success" and summary["connections"] == 2 and not summary["complete"]
    restart = [g for g in summary["gaps"] if g["kind"] == "restart"]
    assert len(restart) == 1 and restart[0]["unsequenced"] == ["StreamSymbolUpdates"]
    assert restart[0]["ended_at"] > restart[0]["started_at"]
    assert summary["missed"]["StreamSymbolUpdates"] is None  # no sequence: unknown, not 0
    on_disk = sorted(str(p) for p in (tmp_path / "landing").rglob(f"{RUN}__*__b*.parquet"))
    assert sorted(f["path"].removeprefix("file://") for f in summary["files"]) == on_disk  # every file of the run

    for channel, slug, target, args in (
        ("StreamTicks(EURUSD)", "StreamTicks-EURUSD", "StreamTicks", ["EURUSD"]),
        ("StreamTicks", "StreamTicks", "StreamTicks", []),
    ):
        rows = landed(tmp_path, slug)
        assert summary["events"][channel] == len(rows) > before[slug]
        assert summary["missed"][channel] > 0 and restart[0]["missed"][channel] == summary["missed"][channel]
        keys = [(r["_sequence_key"], r["_sequence"]) for r in rows]
        assert None not in {k for k, _ in keys} and len(set(keys)) == len(keys)  # keyed, no duplicate
        connections = [r["_connection"] for r in rows]
        assert set(connections) == {1, 2} and connections == sorted(connections)  # continues across instances
        served = records(emu, target, args)
        assert len(served) == 2 and served[0]["state"] == "aborted"
        # Truth: every index the emulator scheduled over both invocations is landed, missed or late.
        assert scheduled(emu, target, args) == accounted(summary, channel)


@pytest.mark.matrix(
    area=AREA,
    fault="one event with bid 'abc'",
    expected="event quarantined in a rejects file (payload, stream, reason, time); others landed",
)
def test_malformed_event_is_quarantined_not_fatal(emu: EmulatorProcess, tmp_path: Path) -> None:
    emu.set_hub_faults([{"fault": "corrupt_item", "after_messages": 200, "field": "bid", "value": "abc"}])
    kwargs = request(emu, tmp_path, 8.0, ["StreamTicks:EURUSD", "StreamMarginCallUpdates"], batch_rows=100_000)
    (event,) = sample(kwargs)
    assert event["status"] == "success" and event["rejects"]["total"] == 1
    (rejects_file,) = event["rejects"]["files"]
    (line,) = Path(rejects_file.removeprefix("file://")).read_text().splitlines()
    reject = json.loads(line)
    assert reject["stream"] == "StreamTicks(EURUSD)" and "bid" in reject["reason"] and reject["received_at"]
    assert json.loads(reject["payload"])["bid"] == "abc"
    assert len(landed(tmp_path, "StreamTicks-EURUSD")) == event["events"]["StreamTicks(EURUSD)"] > 100
    assert len(landed(tmp_path, "StreamMarginCallUpdates")) == event["events"]["StreamMarginCallUpdates"] > 0
    assert scheduled(emu, "StreamTicks", ["EURUSD"]) == accounted(event, "StreamTicks(EURUSD)")


@pytest.mark.matrix(
    area=AREA,
    fault="server completes a stream before the window ends",
    expected="'completed' gap and a warning; what it sent is landed",
)
def test_stream_completed_early_is_a_gap(
    emu: EmulatorProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emu.set_hub_faults([{"fault": "complete_stream", "after_items": 40, "stream": "^StreamTicks$"}])
    kwargs = request(emu, tmp_path, 5.0, ["StreamTicks:EURUSD", "StreamMarginCallUpdates"])
    (event,) = sample(kwargs)
    (completed,) = [g for g in event["gaps"] if g["kind"] == "completed"]
    assert "StreamTicks(EURUSD)" in completed["reason"] and event["missed"]["StreamTicks(EURUSD)"] is None
    assert not event["complete"]
    (served,) = records(emu, "StreamTicks", ["EURUSD"])
    assert served["state"] == "completed" and served["items"] == 40
    assert len(landed(tmp_path, "StreamTicks-EURUSD")) == event["events"]["StreamTicks(EURUSD)"] == 40
    assert event["events"]["StreamMarginCallUpdates"] > 0  # the other stream went on to the window's end
    assert any("completed StreamTicks(EURUSD)" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


CONTEXT = {
    "ti": SimpleNamespace(dag_id="d", task_id="sample", map_index=-1),
    "logical_date": None,
    "run_id": "manual__1",
    "data_interval_start": None,
    "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 24)),
}


@pytest.mark.matrix(
    area=AREA,
    fault="bad operator arguments (batch_rows 0, window 'abc', duplicate stream...)",
    expected="CPluginConfigError naming the argument, before deferring; nothing written",
)
@pytest.mark.parametrize(
    ("field", "arguments"),
    [
        ("batch_rows", {"batch_rows": 0}),
        ("batch_rows", {"batch_rows": -5}),
        ("batch_bytes", {"batch_bytes": 0}),
        ("window", {"window": 0}),
        ("window", {"window": "abc"}),
        ("window", {"window": float("nan")}),
        ("max_events", {"max_events": -1}),
        ("streams", {"streams": []}),
        ("streams", {"streams": ["StreamTicks:EURUSD", "StreamTicks:EURUSD"]}),
        ("streams", {"streams": [{"method": "StreamTicks", "args": [5]}]}),
        ("streams", {"streams": [{"method": "StreamTrades", "args": ["x"]}]}),
        ("streams", {"streams": "StreamTicks"}),
        ("transports", {"transports": ["Carrier pigeon"]}),
        ("transports", {"transports": []}),
        ("flush_interval", {"flush_interval": 0}),
        ("output_path", {"output_path": "relative/dir"}),
    ],
)
def test_bad_arguments_fail_before_deferring(
    process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, field: str, arguments: dict[str, Any]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", process.connection_json())
    options: dict[str, Any] = {
        "task_id": "sample",
        "streams": ["StreamTicks:EURUSD"],
        "window": 5,
        "platform_type": "{{ params.pt }}",  # templated: nothing is checked at parse time, all at execute
        "output_path": f"file://{tmp_path / 'landing'}",
        "deferrable": True,
        **arguments,
    }
    op = HubSampleOperator(**options)
    op.platform_type = "MT4"  # what rendering would give
    with pytest.raises(CPluginConfigError) as failed:
        op.execute(CONTEXT)  # a TaskDeferred here would mean it deferred with a bad argument
    assert failed.value.field == field
    assert not (tmp_path / "landing").exists()
