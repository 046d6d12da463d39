"""Fixtures: an in-process emulator (hubs included) per test, with fast hub timings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from .support import Emulator, start_emulator

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def make_emulator() -> AsyncIterator[EmulatorFactory]:
    closers: list[Callable[[], Any]] = []

    async def factory(**config: Any) -> Emulator:
        emulator, close = await start_emulator(**config)
        closers.append(close)
        return emulator

    yield factory
    for close in closers:
        await close()


@pytest.fixture
async def emu(make_emulator: EmulatorFactory) -> Emulator:
    return await make_emulator()
