"""Continuous capture's rolling without the emulator: a hand-fed hub source (``capture.hub_batches`` replaced), so
the truth is exactly the ticks fed. A file is cut at ``roll_rows`` rows, and a quiet stream still gets its file
after ``roll_s`` seconds (bounded wait: the test fails with an assertion, never by pytest's timeout)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.realtime import capture
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.hub_source import HubBatch
from airflow_provider_cplugin.realtime.watcher import StateSlot

CHANNEL = "StreamTicks(EURUSD)"
log = logging.getLogger(__name__)


def ticks(indexes: range) -> HubBatch:
    events = [
        HubEvent(CHANNEL, {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"},
                 1_767_225_600.0 + i / 1000, 1, ("EURUSD", i))
        for i in indexes
    ]  # fmt: skip
    return HubBatch(events, "tp", "MT4")


def feed(monkeypatch: pytest.MonkeyPatch, *batches: HubBatch, quiet_s: float = 0.0, then_live: bool = False) -> None:
    """The source yields ``batches``, ``quiet_s`` apart (a stream with nothing to send in between), then idles, or
    with ``then_live`` goes on with 10 ticks every 20 ms (a live stream)."""

    async def source(kwargs: dict[str, Any]) -> AsyncIterator[HubBatch]:
        for n, b in enumerate(batches):
            if n and quiet_s:
                await asyncio.sleep(quiet_s)  # the stimulus: a quiet stream, not a synchronisation
            yield b
        next_index = batches[-1].events[-1].sequence[1] + 1 if batches else 0  # type: ignore[index]
        while then_live:
            await asyncio.sleep(0.02)
            yield ticks(range(next_index, next_index + 10))
            next_index += 10
        await asyncio.Event().wait()

    monkeypatch.setattr(capture, "hub_batches", source)


async def files(tmp_path: Path, count: int, bound_s: float = 20, **kwargs: Any) -> list[dict[str, Any]]:
    run = capture.HubCapture(
        {"stream": "StreamTicks:EURUSD", "name": "ticks", "output_path": f"file://{tmp_path}", **kwargs},
        StateSlot(None, "k", log), log,
    ).run()  # fmt: skip
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(bound_s):
            async for landed in run:
                out.append(dict(landed))
                if len(out) == count:
                    break
    except TimeoutError:
        pass  # asserted below: fewer files than expected
    finally:
        await run.aclose()  # type: ignore[attr-defined]
    return out


def indexes(landed: dict[str, Any]) -> list[int]:
    return pq.read_table(landed["path"].removeprefix("file://")).column("_sequence").to_pylist()


async def test_files_are_cut_at_roll_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Live after the big batches, as a stream usually is.
    feed(monkeypatch, ticks(range(0, 120)), ticks(range(120, 250)), ticks(range(250, 330)), then_live=True)
    landed = await files(tmp_path, 3, roll_s=3600, roll_rows=100)
    assert [p["rows"] for p in landed] == [100, 100, 100]
    assert [indexes(p) for p in landed] == [list(range(k, k + 100)) for k in (0, 100, 200)]


async def test_a_stream_quiet_for_roll_s_gets_its_file_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed(monkeypatch, ticks(range(0, 7)), ticks(range(7, 10)), ticks(range(10, 12)), quiet_s=0.5)
    landed = await files(tmp_path, 1, roll_s=0.2, roll_rows=100_000)
    assert len(landed) == 1, "no file for ticks pending longer than roll_s"
    assert indexes(landed[0]) == list(range(7)) and landed[0]["missed"] == 0  # cut while quiet, before index 7


async def test_a_quiet_streams_last_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feed(monkeypatch, ticks(range(0, 7)))
    landed = await files(tmp_path, 1, bound_s=5, roll_s=0.2, roll_rows=100_000)
    assert len(landed) == 1, "the file was landed but its event never left"


async def test_an_outage_of_unknown_loss_makes_the_files_missed_count_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disconnect closed before the first sequenced event: nothing tells how many events it lost.
    first = ticks(range(10, 15))
    first.gaps = [{"kind": "disconnect", "reason": "dropped", "started_at": 1.0, "ended_at": 2.0, "connection": 1}]
    feed(monkeypatch, first, then_live=True)
    landed = await files(tmp_path, 2, roll_s=3600, roll_rows=5)
    assert [g["kind"] for g in landed[0]["gaps"]] == ["disconnect"] and landed[0]["gaps"][0]["missed"] is None
    assert landed[0]["missed"] is None  # unknown, never 0
    assert landed[1]["gaps"] == [] and landed[1]["missed"] == 0


async def test_a_later_clients_events_land_with_connections_numbered_after_the_earlier_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The source's second client (after one that gave up with two connections): its connection 1 is number 3.
    later = ticks(range(0, 5))
    later.connection_offset = 2
    feed(monkeypatch, later, then_live=True)
    (landed,) = await files(tmp_path, 1, roll_s=3600, roll_rows=5)
    column = pq.read_table(landed["path"].removeprefix("file://")).column("_connection").to_pylist()
    assert column == [3] * 5
