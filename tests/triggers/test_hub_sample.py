"""HubSampleTrigger / HubSampleOperator against the emulator's hubs (own emulator process, fast feeds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from hub_testing import ready_hub
from result_shapes import ShapeCheck

from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.operators.hub_sample import HubSampleOperator
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.hub_schemas import HUB_MT4_MARGIN_CALLS, HUB_TICKS
from airflow_provider_cplugin.parquet.landing import ParquetLander
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.item_decode import ItemDecoder
from airflow_provider_cplugin.results import HubSampleFailure, HubSampleSummary
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger


@pytest.fixture(scope="module")
def hub_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=2000, seed=11) as emu:
        yield emu


@pytest.fixture
def emu(hub_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(hub_emulator, monkeypatch, ticks=4000, margin_calls=100)


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
        "sequences": "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences",
        **extra,
    }


def served(emu: EmulatorProcess, target: str, args: list[str]) -> list[dict[str, Any]]:
    """The emulator's records of the stream invocations (items sent, feed index range)."""
    stats = emu._control("GET", "hub-stats")
    return [r for r in stats["streams"] if r["target"] == target and r["arguments"] == args]


async def until_sent(
    emu: EmulatorProcess, target: str, args: list[str], items: int, before: float, also: Any = lambda: True
) -> int:
    """Wait (polling the emulator's stream records, off the event loop) until it has sent ``items`` events on the
    stream and ``also()`` holds; returns the items sent by then. Fails with a message if that has not happened by
    the wall-clock time ``before``."""
    while True:
        records = await asyncio.to_thread(served, emu, target, args)
        sent = records[-1]["items"] if records else 0
        if records and sent >= items and also():
            return int(sent)
        assert time.time() < before, f"by the deadline the emulator had sent {sent} of {items} items on {target}"
        await asyncio.sleep(0.05)


async def collect(trigger: HubSampleTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def rows(summary: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in summary["files"]:
        if f["entity"] == entity:
            out.extend(pq.read_table(f["path"].removeprefix("file://")).to_pylist())
    return out


async def test_samples_a_window_into_typed_batches(emu: EmulatorProcess, tmp_path: Path, shape: ShapeCheck) -> None:
    args = kwargs(emu, tmp_path, window=8.0)  # the trigger starts slowly on a loaded machine: margin calls are sparse
    events = await collect(HubSampleTrigger(**args))
    assert len(events) == 1
    summary = events[0]
    shape(summary, HubSampleSummary)
    assert summary["status"] == "success" and summary["gaps"] == [] and summary["connections"] == 1
    assert summary["complete"] is True
    assert len(json.dumps(summary)) < 20_000  # paths and counts, never the events
    ticks = rows(summary, "hub_ticks")
    margins = rows(summary, "hub_mt4_margin_calls")
    # Truth: the emulator's record of what it sent on the EURUSD stream (one invocation, its feed index range).
    (record,) = served(emu, "StreamTicks", ["EURUSD"])
    sent = (record["last_index"] - record["first_index"]) // N_SYMBOLS + 1
    assert record["items"] == sent > 300  # more than one batch
    late = summary["not_landed"]["StreamTicks(EURUSD)"]["after_window"]
    assert len(ticks) + late == sent  # each event sent landed, or was received after the window and counted
    first_k = record["first_index"] // N_SYMBOLS
    assert sorted(t["_sequence"] for t in ticks) == list(range(first_k, first_k + len(ticks)))  # no hole, no dup
    (margin_record,) = served(emu, "StreamMarginCallUpdates", [])
    assert len(margins) + summary["not_landed"]["StreamMarginCallUpdates"]["after_window"] == margin_record["items"]
    assert len(margins) > 0 and {t["symbol"] for t in ticks} == {"EURUSD"}
    assert max(t["_received_at"] for t in ticks + margins).timestamp() <= args["window_end"]  # the window, no more
    for f in summary["files"]:
        schema = pq.read_schema(f["path"].removeprefix("file://"))
        expected = HUB_TICKS if f["entity"] == "hub_ticks" else HUB_MT4_MARGIN_CALLS
        assert schema.equals(expected.arrow_schema, check_metadata=False)
    names = sorted(Path(f["path"]).name for f in summary["files"] if f["entity"] == "hub_ticks")
    assert names == [f"dag__sample__20261124T000000__StreamTicks-EURUSD__b{i:05d}.parquet" for i in range(len(names))]


async def test_max_events_bounds_the_sample(emu: EmulatorProcess, tmp_path: Path) -> None:
    (summary,) = await collect(HubSampleTrigger(**kwargs(emu, tmp_path, window=30.0, max_events=120)))
    assert (
        summary["total_events"] == 120 == len(rows(summary, "hub_ticks")) + len(rows(summary, "hub_mt4_margin_calls"))
    )
    assert summary["seconds"] < 25  # stopped at the limit, not at the window's end
    assert sum(n["over_max_events"] for n in summary["not_landed"].values()) > 0  # counted, not silently dropped


async def test_finished_manifest_is_not_reused_for_another_window(
    emu: EmulatorProcess, tmp_path: Path, shape: ShapeCheck
) -> None:
    args = kwargs(emu, tmp_path, window=2.0)
    (first,) = await collect(HubSampleTrigger(**args))
    (same,) = await collect(HubSampleTrigger(**args))
    shape(same, HubSampleSummary)
    assert same["resumed_from_manifest"] is True and same["files"] == first["files"]
    (other,) = await collect(HubSampleTrigger(**{**args, "window_end": time.time() + 2.0}))
    assert "resumed_from_manifest" not in other
    assert other["instance_events"]["StreamTicks(EURUSD)"] > 0 and other["connections"] == 2
    assert [f["path"] for f in other["files"]][: len(first["files"])] != []  # earlier files kept in the totals
    assert {f["path"] for f in first["files"]} < {f["path"] for f in other["files"]}
    assert other["total_events"] == first["total_events"] + sum(other["instance_events"].values())


async def test_failure_yields_one_error_event_that_fails_the_operator(
    emu: EmulatorProcess, tmp_path: Path, shape: ShapeCheck
) -> None:
    emu.set_hub_faults([{"fault": "refuse_negotiate", "status": 503, "times": None}])
    events = await collect(HubSampleTrigger(**kwargs(emu, tmp_path, window=2.0, reconnect_delays=[])))
    assert len(events) == 1
    (event,) = events
    shape(event, HubSampleFailure)
    assert event["status"] == "error" and event["error_type"] == "HubNegotiationError" and "503" in event["message"]
    op = HubSampleOperator(task_id="t", streams=["StreamTicks:EURUSD"], window=1)
    with pytest.raises(AirflowException, match=r"hub sample failed.*503"):
        op.execute_complete({}, event)


async def test_unexpected_exceptions_propagate(
    monkeypatch: pytest.MonkeyPatch, emu: EmulatorProcess, tmp_path: Path
) -> None:
    from airflow_provider_cplugin.realtime import sampler

    async def broken(self: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sampler.HubSampler, "run", broken)
    with pytest.raises(ZeroDivisionError):
        await collect(HubSampleTrigger(**kwargs(emu, tmp_path, window=1.0)))


def test_serialized_trigger_carries_no_secret(emu: EmulatorProcess, tmp_path: Path) -> None:
    classpath, serialized = HubSampleTrigger(**kwargs(emu, tmp_path, window=1)).serialize()
    assert classpath == "airflow_provider_cplugin.triggers.hub_sample.HubSampleTrigger"
    text = json.dumps(serialized)
    assert emu.client_secret not in text and "token" not in text.lower() and "password" not in text
    assert HubSampleTrigger(**serialized).serialize() == (classpath, serialized)


async def test_restarted_trigger_continues_without_duplicates(emu: EmulatorProcess, tmp_path: Path) -> None:
    # Batches far larger than the window fills: whatever lands before the restart can only come from the
    # cancelled trigger flushing what it held.
    args = kwargs(emu, tmp_path, window=8.0, batch_rows=1_000_000)  # room to start on a loaded machine
    first = asyncio.create_task(collect(HubSampleTrigger(**args)))
    # Cancel once the trigger is sampling (its running manifest written after the streams opened) and the emulator
    # has sent it ~100 EURUSD ticks since: those are the events it holds when cancelled.
    manifests = tmp_path / "landing" / "_manifests"
    running = lambda: any(manifests.glob("*.json"))  # noqa: E731
    since = await until_sent(emu, "StreamTicks", ["EURUSD"], 0, args["window_end"] - 2.0, running)
    await until_sent(emu, "StreamTicks", ["EURUSD"], since + 100, before=args["window_end"] - 1.0)
    first.cancel()  # the triggerer goes away mid-window
    with contextlib.suppress(asyncio.CancelledError):
        await first
    ticks_dir = next((tmp_path / "landing" / "entity=hub_ticks").rglob("date=*"), None)
    assert ticks_dir is not None, "what was collected before the cancel must land"
    landed_before = sorted(p.name for p in ticks_dir.glob("*.parquet"))
    assert len(landed_before) == 1, "what was collected before the cancel must land"
    (record,) = served(emu, "StreamTicks", ["EURUSD"])
    assert 0 < pq.read_metadata(ticks_dir / landed_before[0]).num_rows <= record["items"]
    before_bytes = {n: (ticks_dir / n).read_bytes() for n in landed_before}

    (summary,) = await collect(HubSampleTrigger(**args))  # re-created with the same kwargs
    assert summary["earlier_batches"]["StreamTicks(EURUSD)"] == len(landed_before)
    after = sorted(p.name for p in ticks_dir.glob("*.parquet"))
    assert after[: len(landed_before)] == landed_before
    assert all((ticks_dir / n).read_bytes() == content for n, content in before_bytes.items())  # untouched
    assert [int(n[-13:-8]) for n in after] == list(range(len(after)))  # contiguous numbering
    all_rows = [r for n in after for r in pq.read_table(ticks_dir / n).to_pylist()]
    all_times = [r["last_time"] for r in all_rows]
    assert len(all_times) == len(set(all_times))  # nothing landed twice
    assert [r["_connection"] for r in all_rows] == sorted(r["_connection"] for r in all_rows)
    assert summary["connections"] == 2 == max(r["_connection"] for r in all_rows)
    assert summary["total_events"] == sum(f["rows"] for f in summary["files"])  # every file of the run
    (restart,) = [g for g in summary["gaps"] if g["kind"] == "restart"]
    assert restart["missed"]["StreamTicks(EURUSD)"] > 0

    (again,) = await collect(HubSampleTrigger(**args))  # restart after completion: manifest, no new sample
    assert again["resumed_from_manifest"] is True and again["files"] == summary["files"]


async def test_heavy_work_runs_off_the_event_loop(
    emu: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic stand-in for a loop-lag bound (measured by ``make bench``): decoding into Arrow and the
    Parquet writes run in worker threads, and the loop builds no object per event (no HubEvent, no dict)."""
    emu.hub_config(rates={"ticks": 20_000})
    loop_thread = threading.get_ident()
    threads: dict[str, list[int]] = {}

    def spy(cls: Any, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(*args: Any, **kw: Any) -> Any:
            threads.setdefault(name, []).append(threading.get_ident())
            return original(*args, **kw)

        monkeypatch.setattr(cls, name, wrapper)

    spy(ItemDecoder, "decode")
    spy(RecordBatchConverter, "convert")
    spy(ParquetLander, "write_batch")
    spy(HubEvent, "__init__")
    spy(orjson, "loads")
    (summary,) = await collect(
        HubSampleTrigger(**kwargs(emu, tmp_path, window=2.0, batch_rows=5000, streams=[{"method": "StreamTicks"}],
                                  sequences=None))
    )  # fmt: skip
    assert summary["status"] == "success" and summary["total_events"] > 10_000
    assert len(threads["decode"]) == len(threads["write_batch"]) == len(summary["files"]) >= 3
    assert loop_thread not in threads["decode"] + threads["write_batch"]
    # Clean items take the C++ reader, never the per-record converter; nothing decodes JSON per event.
    assert "convert" not in threads and "__init__" not in threads
    # The loop decodes only the few control messages (handshake answer, completion, pings), never the items.
    assert threads.get("loads", []).count(loop_thread) <= 5
    assert sum(f["rows"] for f in summary["files"]) == summary["total_events"]


def test_operator_inline_and_validation(emu: EmulatorProcess, tmp_path: Path, shape: ShapeCheck) -> None:
    op = HubSampleOperator(
        task_id="sample",
        streams=["StreamTicks:GBPUSD"],
        # The window starts before the hub connection: at load 3-4 connecting alone took 1.6 s (nothing landed).
        window=4.0,
        output_path=f"file://{tmp_path / 'inline'}",
        deferrable=False,
        platform_type="MT4",
    )
    assert op.outlets == [AssetAlias("cplugin:hub_ticks")]  # the Asset itself only gets an event once landed
    context = {
        "ti": SimpleNamespace(dag_id="d", task_id="sample", map_index=-1),
        "logical_date": None,
        "run_id": "manual__1",
        "data_interval_start": None,
        "dag_run": SimpleNamespace(run_after=__import__("datetime").datetime(2026, 11, 24)),
    }
    summary = op.execute(context)
    shape(summary, HubSampleSummary)
    # Truth: the emulator's record of the GBPUSD stream. Every event it sent landed or is counted as not landed.
    (record,) = served(emu, "StreamTicks", ["GBPUSD"])
    landed = rows(summary, "hub_ticks")
    not_landed = sum(summary["not_landed"]["StreamTicks(GBPUSD)"].values())
    assert summary["events"]["StreamTicks(GBPUSD)"] == len(landed) > 0
    assert len(landed) + not_landed == record["items"] and {t["symbol"] for t in landed} == {"GBPUSD"}
    assert all("d__sample__manual__1" in f["path"] for f in summary["files"])

    # Deferrable: the worker validates, then defers with a trigger whose kwargs hold ids, never a secret.
    deferring = HubSampleOperator(
        task_id="sample", streams=["StreamTicks:GBPUSD"], window=60, output_path=f"file://{tmp_path / 'd'}",
        deferrable=True, platform_type="MT4", output_conn_id="my_storage",
    )  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, HubSampleTrigger) and deferred.value.method_name == "execute_complete"
    _, trigger_kwargs = trigger.serialize()
    text = json.dumps(trigger_kwargs)
    assert emu.client_secret not in text and "token" not in text.lower() and "password" not in text.lower()
    assert trigger_kwargs["output_conn_id"] == "my_storage" and trigger_kwargs["cplugin_conn_id"] == "cplugin_default"
    assert 55 < trigger_kwargs["window_end"] - time.time() <= 60
    assert not (tmp_path / "d").exists()  # nothing written before the trigger runs

    with pytest.raises(CPluginConfigError, match=r"StreamTicks.*not a MT5 hub stream"):
        HubSampleOperator(task_id="bad", streams=["StreamTicks"], platform_type="MT5", deferrable=True)
    # Templated arguments are rendered at run time: parsing the DAG must not validate (or fail on) them.
    templated = HubSampleOperator(
        task_id="templated", streams=["{{ params.stream }}"], platform_type="{{ params.pt }}", deferrable=True
    )
    assert AssetAlias("cplugin:hub_ticks") in templated.outlets  # every hub entity's alias: known at run time
