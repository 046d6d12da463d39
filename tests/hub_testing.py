"""Pieces the hub trigger tests share: an emulator made ready for one test, its hub stream records (the truth),
the first events of a trigger, and an in-memory ``asset_state_store``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from result_shapes import shape_problems

from airflow_provider_cplugin.emulator.process import EmulatorProcess


def ready_hub(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, **rates: float) -> EmulatorProcess:
    """The connection in the environment, no hub fault, these feed rates and fresh hub stats."""
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", process.connection_json())
    process.set_hub_faults([])
    # Rates first: the sequence functions (and the truth) read the feed clocks, which a later rate change re-bases.
    process.hub_config(rates=rates)
    process._control("DELETE", "hub-stats")
    return process


def stream_records(emu: EmulatorProcess, target: str, args: list[str] | None = None) -> list[dict[str, Any]]:
    """The emulator's record of every invocation of ``target`` (with these arguments, when given)."""
    streams = emu._control("GET", "hub-stats")["streams"]
    return [r for r in streams if r["target"] == target and (args is None or r["arguments"] == args)]


async def take(
    events: AsyncIterator[TriggerEvent], count: int, check: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """The payloads of the first ``count`` events (60 s at most), then the trigger is closed as the triggerer does."""
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            async for event in events:
                if check is not None:
                    check(event.payload)
                out.append(event.payload)
                if len(out) >= count:
                    break
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return out


def shaped(result_type: Any) -> Callable[[dict[str, Any]], None]:
    """A ``take`` check: the payload has the shape of this result ``TypedDict``."""

    def check(payload: dict[str, Any]) -> None:
        problems = shape_problems(payload, result_type)
        assert not problems, problems

    return check


class MemoryStore:
    """The ``asset_state_store`` accessor Airflow injects into a watcher (``aget``/``aset``), values kept as JSON
    like the metadata DB keeps them."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)
        self.writes += 1

    def seen(self) -> dict[str, int]:
        """The watermark of the one watcher that wrote here."""
        (value,) = self.values.values()
        return dict(json.loads(value)["seen"])
