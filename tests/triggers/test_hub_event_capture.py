"""HubCaptureTrigger against the emulator: every tick the emulator scheduled on the stream is landed exactly once or
reported missed, across rolls and restarts (truth: the emulator's stream records and its feed index encoding)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hub_testing import ready_hub, shaped, take

from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS, SYMBOL_INDEX
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.parquet.hub_schemas import HUB_TICKS
from airflow_provider_cplugin.results import CaptureEvent
from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger

from .test_hub_event import SEQUENCES

pytestmark = pytest.mark.timeout(120)
EURUSD = SYMBOL_INDEX["EURUSD"]


@pytest.fixture(scope="module")
def process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=5) as emu:
        yield emu


@pytest.fixture
def emu(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(process, monkeypatch, ticks=3000)  # 300 EURUSD ticks/s


def capture(tmp_path: Path, **kwargs: Any) -> HubCaptureTrigger:
    return HubCaptureTrigger(**{
        "stream": "StreamTicks:EURUSD", "platform_type": "MT4", "output_path": f"file://{tmp_path}",
        "roll_s": 0.5, "roll_rows": 200, "sequences": SEQUENCES, **kwargs,
    })  # fmt: skip


async def files_of(trigger: HubCaptureTrigger, count: int) -> list[dict[str, Any]]:
    return await take(trigger.run(), count, shaped(CaptureEvent))


def sequences(payloads: list[dict[str, Any]]) -> list[int]:
    seqs: list[int] = []
    for p in payloads:
        table = pq.read_table(p["path"].removeprefix("file://"))
        assert table.num_rows == p["rows"] and table.schema.equals(HUB_TICKS.arrow_schema, check_metadata=False)
        received = table.column("_received_at").to_pylist()
        assert received[0].isoformat() == p["first_event_at"] and received[-1].isoformat() == p["last_event_at"]
        seqs.extend(table.column("_sequence").to_pylist())
    return seqs


def served(emu: EmulatorProcess) -> list[dict[str, Any]]:
    return [r for r in emu._control("GET", "hub-stats")["streams"] if r["target"] == "StreamTicks"]


async def test_rolls_files_by_rows_and_time_landing_every_sent_tick(emu: EmulatorProcess, tmp_path: Path) -> None:
    landed = await files_of(capture(tmp_path), 5)
    (record,) = served(emu)
    seqs = sequences(landed)
    first = record["first_index"] // N_SYMBOLS
    assert seqs == list(range(first, first + len(seqs)))  # every tick from the first sent, once, in order
    assert all(p["rows"] <= 200 and p["missed"] == 0 and p["gaps"] == [] for p in landed)
    assert [p["batch"] for p in landed] == list(range(5))
    assert len(json.dumps(landed[0])) < 2000  # the event names the file, never carries its rows


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"roll_s": 0}, "roll_s"), ({"roll_rows": 0}, "roll_rows"), ({"output_path": "relative/x"}, "output_path"),
     ({"name": "a__b"}, "name"), ({"stream": "StreamTrades:x"}, "stream")],
)  # fmt: skip
def test_bad_arguments_name_the_field(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(CPluginConfigError) as info:
        capture(tmp_path, **kwargs)
    assert info.value.field == field
