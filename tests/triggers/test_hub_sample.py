"""HubSampleTrigger / HubSampleOperator against the emulator's hubs (own emulator process, fast feeds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator
from airflow_provider_cplugin.parquet.hub_schemas import HUB_MT4_MARGIN_CALLS, HUB_TICKS
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger


@pytest.fixture(scope="module")
def hub_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=2000, seed=11) as emu:
        yield emu


@pytest.fixture
def emu(hub_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", hub_emulator.connection_json())
    hub_emulator.hub_config(rates={"ticks": 4000, "margin_calls": 100})
    return hub_emulator


def kwargs(emu: EmulatorProcess, tmp_path: Path, window: float, **extra: Any) -> dict[str, Any]:
    return {
        "cplugin_conn_id": "cplugin_default",
        "trade_platform": emu.mt4_trade_platform,
        "platform_type": "MT4",
        "streams": [{"method": "StreamTicks", "args": ["EURUSD"]}, {"method": "StreamMarginCallUpdates", "args": []}],
        "window_end": time.time() + window,
        "output_path": f"file://{tmp_path / 'landing'}",
        "run_name": "dag__sample__20261124T000000",
        "partition_date": "2026-11-24",
        "batch_rows": 300,
        **extra,
    }


async def collect(trigger: HubSampleTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def rows(summary: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in summary["files"]:
        if f["entity"] == entity:
            out.extend(pq.read_table(f["path"].removeprefix("file://")).to_pylist())
    return out


async def test_samples_a_window_into_typed_batches(emu: EmulatorProcess, tmp_path: Path) -> None:
    args = kwargs(emu, tmp_path, window=2.5)
    events = await collect(HubSampleTrigger(**args))
    assert len(events) == 1
    summary = events[0]
    assert summary["status"] == "success" and summary["gaps"] == [] and summary["connections"] == 1
    assert len(json.dumps(summary)) < 20_000  # paths and counts, never the events
    ticks = rows(summary, "hub_ticks")
    margins = rows(summary, "hub_mt4_margin_calls")
    assert len(ticks) == summary["events"]["StreamTicks(EURUSD)"] > 300  # more than one batch
    assert len(margins) == summary["events"]["StreamMarginCallUpdates"] > 0
    assert sum(f["rows"] for f in summary["files"]) == summary["total_events"]
    assert {t["symbol"] for t in ticks} == {"EURUSD"}
    assert max(t["_received_at"] for t in ticks + margins).timestamp() <= args["window_end"]  # the window, no more
    assert len({t["last_time"] for t in ticks}) == len(ticks)  # no duplicate
    for f in summary["files"]:
        schema = pq.read_schema(f["path"].removeprefix("file://"))
        expected = HUB_TICKS if f["entity"] == "hub_ticks" else HUB_MT4_MARGIN_CALLS
        assert schema.equals(expected.arrow_schema, check_metadata=False)
    names = sorted(Path(f["path"]).name for f in summary["files"] if f["entity"] == "hub_ticks")
    assert names == [f"dag__sample__20261124T000000__StreamTicks-EURUSD__b{i:05d}.parquet" for i in range(len(names))]


def test_serialized_trigger_carries_no_secret(emu: EmulatorProcess, tmp_path: Path) -> None:
    classpath, serialized = HubSampleTrigger(**kwargs(emu, tmp_path, window=1)).serialize()
    assert classpath == "airflow_provider_cplugin.triggers.hub_sample.HubSampleTrigger"
    text = json.dumps(serialized)
    assert emu.client_secret not in text and "token" not in text.lower() and "password" not in text
    assert HubSampleTrigger(**serialized).serialize() == (classpath, serialized)


async def test_restarted_trigger_continues_without_duplicates(emu: EmulatorProcess, tmp_path: Path) -> None:
    # Batches far larger than the window fills: whatever lands before the restart can only come from the
    # cancelled trigger flushing what it held.
    args = kwargs(emu, tmp_path, window=4.0, batch_rows=1_000_000)
    first = asyncio.create_task(collect(HubSampleTrigger(**args)))
    await asyncio.sleep(2.0)
    first.cancel()  # the triggerer goes away mid-window
    with contextlib.suppress(asyncio.CancelledError):
        await first
    ticks_dir = next((tmp_path / "landing" / "entity=hub_ticks").rglob("date=*"))
    landed_before = sorted(p.name for p in ticks_dir.glob("*.parquet"))
    assert len(landed_before) == 1, "what was collected before the cancel must land"
    assert pq.read_metadata(ticks_dir / landed_before[0]).num_rows > 100  # ~2 s of EURUSD ticks
    before_bytes = {n: (ticks_dir / n).read_bytes() for n in landed_before}

    (summary,) = await collect(HubSampleTrigger(**args))  # re-created with the same kwargs
    assert summary["earlier_batches"]["StreamTicks(EURUSD)"] == len(landed_before)
    after = sorted(p.name for p in ticks_dir.glob("*.parquet"))
    assert after[: len(landed_before)] == landed_before
    assert all((ticks_dir / n).read_bytes() == content for n, content in before_bytes.items())  # untouched
    assert [int(n[-13:-8]) for n in after] == list(range(len(after)))  # contiguous numbering
    all_times = [r["last_time"] for n in after for r in pq.read_table(ticks_dir / n).to_pylist()]
    assert len(all_times) == len(set(all_times))  # nothing landed twice

    (again,) = await collect(HubSampleTrigger(**args))  # restart after completion: manifest, no new sample
    assert again["resumed_from_manifest"] is True and again["files"] == summary["files"]


async def test_event_loop_is_not_blocked_while_writing(emu: EmulatorProcess, tmp_path: Path) -> None:
    emu.hub_config(rates={"ticks": 20_000})
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)

    probe = asyncio.create_task(ticker())
    (summary,) = await collect(
        HubSampleTrigger(**kwargs(emu, tmp_path, window=3.0, batch_rows=5000, streams=[{"method": "StreamTicks"}]))
    )
    stop.set()
    await probe
    assert len(summary["files"]) >= 5 and summary["total_events"] > 20_000
    worst, p99 = max(lags), statistics.quantiles(lags, n=100)[98]
    print(f"loop lag while sampling+writing: p50={statistics.median(lags) * 1000:.1f} ms "
          f"p99={p99 * 1000:.1f} ms max={worst * 1000:.1f} ms over {len(lags)} ticks")  # fmt: skip
    assert p99 < 0.050  # the bound, on p99 of a 5 ms ticker on a shared 2-core machine
    # Generous: the rare long stalls are gen-2 GC over Airflow's import-time heap, not our writes (see sampler).
    assert worst < 0.250


def test_operator_inline_and_validation(emu: EmulatorProcess, tmp_path: Path) -> None:
    op = HubSampleOperator(
        task_id="sample",
        streams=["StreamTicks:GBPUSD"],
        window=1.5,
        output_path=f"file://{tmp_path / 'inline'}",
        deferrable=False,
        platform_type="MT4",
    )
    assert [a.uri for a in op.outlets] == [f"file://{tmp_path / 'inline'}/entity=hub_ticks"]
    context = {
        "ti": SimpleNamespace(dag_id="d", task_id="sample", map_index=-1),
        "logical_date": None,
        "run_id": "manual__1",
        "data_interval_start": None,
        "dag_run": SimpleNamespace(run_after=__import__("datetime").datetime(2026, 11, 24)),
    }
    summary = op.execute(context)
    assert summary["events"]["StreamTicks(GBPUSD)"] > 0
    assert all("d__sample__manual__1" in f["path"] for f in summary["files"])

    with pytest.raises(CPluginConfigError, match=r"StreamTicks.*not a MT5 hub stream"):
        HubSampleOperator(task_id="bad", streams=["StreamTicks"], platform_type="MT5", deferrable=True)
    # Templated arguments are rendered at run time: parsing the DAG must not validate (or fail on) them.
    templated = HubSampleOperator(
        task_id="templated", streams=["{{ params.stream }}"], platform_type="{{ params.pt }}", deferrable=True
    )
    assert templated.outlets == []
