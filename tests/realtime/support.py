"""Helpers for the realtime tests: an in-process emulator with hubs, a counting token provider, control calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from airflow_provider_cplugin.emulator.app import create_app
from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.hubs import HubsState, get_hubs
from airflow_provider_cplugin.emulator.hubs.feeds import FeedClock, sequencer
from airflow_provider_cplugin.realtime import HubClient, HubEvent
from airflow_provider_cplugin.realtime.gaps import SequenceFn

ANCHOR = 1_767_225_600
MT4 = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
MT5 = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"

# Short timings so reconnect and timeout paths run in well under a second.
FAST_CLIENT: dict[str, Any] = {
    "reconnect_delays": (0.0, 0.05, 0.1),
    "keep_alive_interval": 0.2,
    "server_timeout": 2.0,
    "handshake_timeout": 2.0,
    "request_timeout": 5.0,
    "allow_insecure_loopback": True,
}
FAST_HUB_SETTINGS: dict[str, float] = {"keep_alive_s": 0.2, "client_timeout_s": 5.0, "token_check_s": 0.05}


class Emulator:
    """One in-process emulator app on a loopback port, plus control helpers."""

    def __init__(self, server: TestServer, session: ClientSession) -> None:
        self.server = server
        self.session = session
        self.base = str(server.make_url("/")).rstrip("/")
        self.tokens_issued: list[str] = []

    @property
    def hubs(self) -> HubsState:
        return get_hubs(self.server.app)

    def hub_url(self, path: str = "/hubs/mt4/v2", platform: str | None = MT4) -> str:
        return f"{self.base}{path}" + (f"?tradePlatform={platform}" if platform else "")

    async def token(self) -> str:
        """A fresh token per call (the provider under test is 'called on every (re)connect')."""
        resp = await self.session.post(
            self.base + "/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cplugin-demo",
                "client_secret": "cplugin-demo-secret",
            },
        )
        assert resp.status == 200, await resp.text()
        token = str((await resp.json())["access_token"])
        self.tokens_issued.append(token)
        return token

    def client(self, path: str = "/hubs/mt4/v2", platform: str | None = MT4, **options: Any) -> HubClient:
        return HubClient(self.hub_url(path, platform), self.token, **{**FAST_CLIENT, **options})

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self.session.request(method, self.base + "/_emulator/" + path, json=body)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def set_faults(self, *rules: dict[str, Any]) -> None:
        await self.control("POST", "hub-faults", {"rules": list(rules)})

    async def configure(self, rates: dict[str, float] | None = None, **settings: float) -> dict[str, Any]:
        result: dict[str, Any] = await self.control(
            "POST", "hub-config", {"rates": rates or {}, "settings": {**FAST_HUB_SETTINGS, **settings}}
        )
        return result

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("GET", "hub-stats")
        return result

    def clock(self, feed: str) -> FeedClock:
        return self.hubs.feeds.clocks[feed]

    def sequence(self, feed: str) -> SequenceFn:
        fn = sequencer(feed, self.clock(feed), self.hubs.emulator.dataset)
        assert fn is not None
        return fn

    def stream_record(self, invocation_id: str) -> dict[str, Any]:
        for record in self.hubs.stats.streams:
            if record.invocation_id == invocation_id:
                return record.to_dict()
        raise AssertionError(f"no server record of stream {invocation_id}")


async def start_emulator(**config: Any) -> tuple[Emulator, Callable[[], Any]]:
    app = create_app(EmulatorConfig(**{"anchor": ANCHOR, "mt4_users": 1000, "mt5_users": 200, **config}))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = ClientSession()
    emulator = Emulator(server, session)
    await emulator.configure()

    async def close() -> None:
        await session.close()
        await server.close()

    return emulator, close


async def collect(source: Any, count: int, wait_s: float = 10.0) -> list[HubEvent]:
    """The next ``count`` events of an iterator (fails after ``wait_s``)."""
    events: list[HubEvent] = []
    async with asyncio.timeout(wait_s):
        async for event in source:
            events.append(event)
            if len(events) >= count:
                break
    return events


async def until(predicate: Callable[[], bool], wait_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + wait_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
