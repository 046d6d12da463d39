"""The emulator's hubs driven by public SignalR clients nobody here wrote, over every transport each supports.

* ``@microsoft/signalr`` (official; Node, ``tests/emulator/node``): WebSockets, Server-Sent Events, Long Polling.
* ``signalrcore`` (used by the vendor's Python SDK): WebSockets and SSE on the authenticated hubs; its Long
  Polling never sends the token on a poll (only on negotiate and sends), so it can only reach the test hub
  (a real ASP.NET Core server with ``[Authorize]`` refuses those polls the same way).
* ``pysignalr``: WebSockets (its only transport). Its ``access_token_factory`` is applied after the first
  negotiate, so the token goes in ``headers``.

Each client subscribes, receives, unsubscribes and is refused without a token; received ticks are checked
against the emulator's generators (``TickFeed``), not against the client's own account. The keep-alive test
(one per client, concurrently) idles past the server's 30 s client timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs.feeds import (
    N_SYMBOLS,
    SYMBOL_INDEX,
    WINDOW,
    FeedClock,
    Mt5MarginCallFeed,
    TickFeed,
    now_ticks,
    parse_iso_ticks,
)
from airflow_provider_cplugin.emulator.process import EmulatorProcess

signalrcore_builder = pytest.importorskip("signalrcore.hub_connection_builder")
signalrcore_types = pytest.importorskip("signalrcore.types")
pysignalr_client = pytest.importorskip("pysignalr.client")

pytestmark = pytest.mark.timeout(150)

NODE_DIR = Path(__file__).parent / "node"
COUNT = 5
IDLE_S = 32.0  # > the server's 30 s client timeout and two 15 s keep-alive periods
TICK_RATE = 200.0


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(mt5_users=50) as emulator:
        emulator.hub_config(rates={"ticks": TICK_RATE})  # server timings stay ASP.NET's defaults (15 s / 30 s)
        yield emulator


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``client.mjs`` with ``@microsoft/signalr`` installed by ``npm ci`` from the committed lock."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the @microsoft/signalr client cannot run")
    work = tmp_path_factory.mktemp("node")
    for name in ("package.json", "package-lock.json", "client.mjs"):
        shutil.copy(NODE_DIR / name, work / name)
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"npm registry unreachable, @microsoft/signalr not installed: {done.stderr[-300:]}")
    return work / "client.mjs"


def _token(emu: EmulatorProcess) -> str:
    form = {"grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret}
    request = urllib.request.Request(emu.url + "/connect/token", data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(json.loads(resp.read())["access_token"])


def _hub_stats(emu: EmulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(emu.url + "/_emulator/hub-stats", timeout=30) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def _url(emu: EmulatorProcess, hub: str) -> str:
    return {
        "v2": f"{emu.url}/hubs/mt4/v2?tradePlatform={emu.mt4_trade_platform}",
        "v1": f"{emu.url}/hubs/mt4/v1",
        "mt5": f"{emu.url}/hubs/mt5/v2?tradePlatform={emu.mt5_trade_platform}",
        "test": f"{emu.url}/hubs/test",
    }[hub]


# --------------------------------------------------------------------------- truth


class Truth:
    """What the emulator generated: tick and MT5 margin-call payloads recomputed from its generators."""

    def __init__(self, emu: EmulatorProcess) -> None:
        with urllib.request.urlopen(emu.url + "/_emulator/hub-config", timeout=30) as resp:
            config = json.loads(resp.read())
        self.clock = FeedClock.from_dict(config["feeds"]["ticks"])
        self.dataset = Dataset(EmulatorConfig(**config["dataset"]))
        self.ticks = TickFeed(self.dataset.config.seed)

    def check_v2_ticks(self, ticks: list[dict[str, Any]]) -> list[int]:
        """Every tick equals the generated one at the index its ``lastTime`` encodes; returns those indexes."""
        indexes = []
        for tick in ticks:
            i = self.clock.index_of(parse_iso_ticks(tick["lastTime"]))
            assert tick == self.ticks.item(self.clock, i), f"tick {tick} is not what the emulator generated"
            indexes.append(i)
        return indexes

    def check_v1_ticks(self, symbol: str, ticks: list[dict[str, Any]]) -> None:
        """v1 ticks have no time: they must be the symbol's quotes at consecutive per-symbol indexes."""
        s = SYMBOL_INDEX[symbol]
        quotes = [(t["Bid"], t["Ask"]) for t in ticks]
        assert all(t["Symbol"] == symbol for t in ticks)
        newest = self.clock.index_at(now_ticks()) // N_SYMBOLS
        first = newest - 4000
        levels = [self.ticks.level(s, first)]
        for k in range(first + 1, newest + 2):
            levels.append(levels[-1] + self.ticks.step(s, k) - self.ticks.step(s, k - WINDOW))
        series = [self.ticks.quote(s, level) for level in levels]
        starts = [j for j in range(len(series) - len(quotes) + 1) if series[j : j + len(quotes)] == quotes]
        assert starts, f"{symbol} v1 ticks {quotes} are not consecutive generated quotes"

    def check_mt5_margin_calls(self, items: list[dict[str, Any]]) -> None:
        """No time or counter in these items: each must be a payload the generator can produce."""
        feed = Mt5MarginCallFeed(self.dataset)
        assert len(items) >= COUNT
        for item in items:
            assert set(item) == {"login", "type", "direction"}
            assert item["type"] in feed.TYPES and item["direction"] in feed.DIRECTIONS
            assert self.dataset.mt5_user_index(int(item["login"])) is not None


def _ticks(events: list[dict[str, Any]], symbol: str) -> list[dict[str, Any]]:
    """The tick payloads of ``symbol`` among recorded events (the tick is an event's last argument)."""
    out = []
    for event in events:
        if event["target"].lower() == "ontick":
            tick = event["args"][-1]
            if tick.get("symbol", tick.get("Symbol")) == symbol:
                out.append(tick)
    return out


def _check_scenario(truth: Truth, hub: str, out: dict[str, Any]) -> None:
    assert out.get("error") is None, out.get("error")
    events = out["events"]
    if hub == "test":
        times = [e["args"][0] for e in events if e["target"] == "ServerTime"]
        assert len(times) >= COUNT and times == sorted(times) and all(t.endswith("Z") for t in times)
        return
    if hub == "mt5":
        truth.check_mt5_margin_calls([e["args"][0] for e in events if e["target"] == "OnMarginCall"][:COUNT])
        return
    eur = _ticks(events, "EURUSD")
    assert len(eur) >= COUNT
    assert out["eurAfterUnsubscribe"] == 0, "ticks of an unsubscribed symbol kept coming"
    assert len(_ticks(events, "GBPUSD")) >= COUNT
    if hub == "v1":
        assert out["connect"] is True and out["ping"] is True and out["subscribe"] is True
        assert all(e["args"][0] == out["platform"] for e in events if e["target"].lower() == "ontick")
        truth.check_v1_ticks("EURUSD", eur[:COUNT])
    else:
        assert events[0]["target"] == "OnConnectionStatus" and events[0]["args"] == [{"connected": True}]
        indexes = truth.check_v2_ticks(eur[:COUNT])
        per_symbol = [i // N_SYMBOLS for i in indexes]
        assert per_symbol == list(range(per_symbol[0], per_symbol[0] + COUNT)), "EURUSD ticks skipped or repeated"


# --------------------------------------------------------------------------- @microsoft/signalr (Node)


async def _run_node(
    script: Path, emu: EmulatorProcess, hub: str, transport: str, *, token: bool = True, **extra: Any
) -> dict[str, Any]:
    options = {
        "url": _url(emu, hub),
        "hub": hub,
        "transport": transport,
        "platform": emu.mt4_trade_platform,
        "clientId": emu.client_id,
        "count": COUNT,
        **extra,
    }
    if token and hub != "test":
        options["tokenUrl"] = emu.url + "/connect/token"
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        json.dumps(options),
        cwd=script.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CPLUGIN_CLIENT_SECRET": emu.client_secret},
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    result["platform"] = emu.mt4_trade_platform
    return result


NODE_CASES = [
    ("v2", "WebSockets", {}),
    ("v2", "ServerSentEvents", {}),
    ("v2", "LongPolling", {}),
    # The seed's own example: /hubs/mt4/v1 over WebSockets with skipNegotiation.
    ("v1", "WebSockets", {"skipNegotiation": True}),
    ("v1", "LongPolling", {}),
    ("mt5", "ServerSentEvents", {}),
    ("test", "LongPolling", {}),
]


@pytest.mark.parametrize(("hub", "transport", "extra"), NODE_CASES, ids=[f"{h}-{t}" for h, t, _ in NODE_CASES])
async def test_microsoft_signalr(
    node_client: Path, emu: EmulatorProcess, hub: str, transport: str, extra: dict[str, Any]
) -> None:
    before = _hub_stats(emu)["transports"].get(transport, 0)
    out = await _run_node(node_client, emu, hub, transport, **extra)
    _check_scenario(Truth(emu), hub, out)
    assert _hub_stats(emu)["transports"].get(transport, 0) == before + 1, "the client did not use that transport"


@pytest.mark.parametrize("transport", ["WebSockets", "ServerSentEvents", "LongPolling"])
async def test_microsoft_signalr_refused_without_token(node_client: Path, emu: EmulatorProcess, transport: str) -> None:
    refused = _hub_stats(emu)["unauthorized"]
    out = await _run_node(node_client, emu, "v2", transport, token=False)
    assert "401" in str(out["error"]) and out.get("connectionId") is None
    assert _hub_stats(emu)["unauthorized"] == refused + 1


# --------------------------------------------------------------------------- signalrcore (threads)


class _Recorder:
    """Thread-safe event log with a wait on a predicate (signalrcore calls back from its own threads)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, target: str, args: list[Any]) -> None:
        with self._cond:
            self.events.append({"target": target, "args": args})
            self._cond.notify_all()

    def wait(self, predicate: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 15.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out waiting for {what}")

    def since(self, mark: int, symbol: str) -> int:
        with self._cond:
            return len(_ticks(self.events[mark:], symbol))


def _signalrcore_scenario(emu: EmulatorProcess, hub: str, transport: str, idle_s: float = 0.0) -> dict[str, Any]:
    types = signalrcore_types
    options: dict[str, Any] = {"transport": getattr(types.HttpTransportType, transport)}
    if hub != "test":
        options["access_token_factory"] = lambda: _token(emu)
    builder = signalrcore_builder.HubConnectionBuilder().with_url(_url(emu, hub), options=options)
    if idle_s:
        # signalrcore sends keep-alive pings only from its reconnect machinery (WebSockets; its SSE/LP checkers
        # never ping): without it an idle connection is closed by any ASP.NET Core server after 30 s.
        builder = builder.with_automatic_reconnect({"type": "raw", "keep_alive_interval": 10, "max_attempts": 1})
    conn = builder.build()
    rec = _Recorder()
    opened = threading.Event()
    errors: list[Any] = []
    conn.on_open(opened.set)
    conn.on_error(errors.append)
    for target in ("OnTick", "onTick", "OnConnectionStatus", "ServerTime", "OnMarginCall"):
        conn.on(target, lambda args, t=target: rec.add(t, args))

    def invoke(method: str, *args: Any) -> Any:
        done = threading.Event()
        result: list[Any] = []
        conn.invoke(method, list(args), on_invocation=lambda m: (result.append(m.result), done.set()))
        if not done.wait(10):
            raise AssertionError(f"{method}: no completion ({errors})")
        return result[0]

    out: dict[str, Any] = {"platform": emu.mt4_trade_platform}
    conn.start()
    try:
        assert opened.wait(10), f"signalrcore did not connect over {transport}"
        if hub == "test":
            rec.wait(lambda ev: sum(e["target"] == "ServerTime" for e in ev) >= COUNT, "ServerTime")
        else:
            v1 = hub == "v1"
            args = (lambda s: [emu.mt4_trade_platform, s]) if v1 else (lambda s: [s])
            if v1:
                out["connect"], out["ping"] = (
                    invoke("Connect", emu.mt4_trade_platform),
                    invoke("Ping", emu.mt4_trade_platform),
                )
            out["subscribe"] = invoke("SubscribeToTicks", *args("EURUSD"))
            rec.wait(lambda ev: len(_ticks(ev, "EURUSD")) >= COUNT, "EURUSD ticks")
            invoke("UnsubscribeFromTicks", *args("EURUSD"))
            mark = len(rec.events)
            invoke("SUBSCRIBETOTICKS", *args("GBPUSD"))  # method names are case-insensitive
            rec.wait(lambda ev: len(_ticks(ev[mark:], "GBPUSD")) >= COUNT, "GBPUSD ticks")
            out["eurAfterUnsubscribe"] = rec.since(mark, "EURUSD")
            invoke("UnsubscribeFromTicks", *args("GBPUSD"))
            if idle_s:
                idle_from = len(rec.events)
                time.sleep(idle_s)  # the idle period is the subject of the test, not a synchronisation
                out["eventsWhileIdle"] = len(rec.events) - idle_from
                again = len(rec.events)
                invoke("SubscribeToTicks", *args("EURUSD"))
                rec.wait(lambda ev: len(_ticks(ev[again:], "EURUSD")) >= 1, "a tick after the idle period")
        out["errors"] = [str(getattr(e, "error", e)) for e in errors]
    finally:
        conn.stop()
    out["events"] = rec.events
    return out


SIGNALRCORE_CASES = [
    ("v2", "web_sockets"),
    ("v2", "server_sent_events"),
    ("v1", "web_sockets"),
    ("test", "long_polling"),
]


@pytest.mark.parametrize(("hub", "transport"), SIGNALRCORE_CASES, ids=[f"{h}-{t}" for h, t in SIGNALRCORE_CASES])
async def test_signalrcore(emu: EmulatorProcess, hub: str, transport: str) -> None:
    out = await asyncio.to_thread(_signalrcore_scenario, emu, hub, transport)
    assert out["errors"] == []
    _check_scenario(Truth(emu), hub, out)


def test_signalrcore_refused_without_token(emu: EmulatorProcess) -> None:
    conn = signalrcore_builder.HubConnectionBuilder().with_url(_url(emu, "v2")).build()
    refused = _hub_stats(emu)["unauthorized"]
    # signalrcore's negotiate goes through urllib, whose HTTPError surfaces before its own UnAuthorizedHubError.
    with pytest.raises(urllib.error.HTTPError) as error:
        conn.start()
    assert error.value.code == 401
    assert _hub_stats(emu)["unauthorized"] == refused + 1


# --------------------------------------------------------------------------- pysignalr (asyncio)


async def _pysignalr_scenario(emu: EmulatorProcess, hub: str, idle_s: float = 0.0) -> dict[str, Any]:
    headers = {} if hub == "test" else {"Authorization": f"Bearer {await asyncio.to_thread(_token, emu)}"}
    client = pysignalr_client.SignalRClient(_url(emu, hub), headers=headers, retry_count=1)
    events: list[dict[str, Any]] = []
    changed = asyncio.Event()
    opened = asyncio.Event()

    def handler(target: str) -> Callable[[list[Any]], Any]:
        async def on_event(args: list[Any]) -> None:
            events.append({"target": target, "args": args})
            changed.set()

        return on_event

    for target in ("OnTick", "onTick", "OnConnectionStatus", "ServerTime"):
        client.on(target, handler(target))

    async def on_open() -> None:
        opened.set()

    client.on_open(on_open)

    async def wait(predicate: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(15):
            while not predicate():
                changed.clear()
                await changed.wait()

    async def invoke(method: str, *args: Any) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def on_completion(message: Any) -> None:
            done.set_result(message)

        await client.send(method, list(args), on_invocation=on_completion)
        message = await asyncio.wait_for(done, 10)
        assert getattr(message, "error", None) is None, message.error
        return message.result

    out: dict[str, Any] = {"platform": emu.mt4_trade_platform}
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(opened.wait(), 10)
        out["connectionUrl"] = client._transport._url  # the id pysignalr connected with (negotiate version 0)
        if hub == "test":
            await wait(lambda: sum(e["target"] == "ServerTime" for e in events) >= COUNT, "ServerTime")
        else:
            v1 = hub == "v1"
            args = (lambda s: [emu.mt4_trade_platform, s]) if v1 else (lambda s: [s])
            if v1:
                out["connect"] = await invoke("Connect", emu.mt4_trade_platform)
                out["ping"] = await invoke("Ping", emu.mt4_trade_platform)
            out["subscribe"] = await invoke("SubscribeToTicks", *args("EURUSD"))
            await wait(lambda: len(_ticks(events, "EURUSD")) >= COUNT, "EURUSD ticks")
            await invoke("unsubscribefromticks", *args("EURUSD"))  # method names are case-insensitive
            mark = len(events)
            await invoke("SubscribeToTicks", *args("GBPUSD"))
            await wait(lambda: len(_ticks(events[mark:], "GBPUSD")) >= COUNT, "GBPUSD ticks")
            out["eurAfterUnsubscribe"] = len(_ticks(events[mark:], "EURUSD"))
            await invoke("UnsubscribeFromTicks", *args("GBPUSD"))
            if idle_s:
                idle_from = len(events)
                await asyncio.sleep(idle_s)  # the idle period is the subject of the test, not a synchronisation
                out["eventsWhileIdle"] = len(events) - idle_from
                again = len(events)
                await invoke("SubscribeToTicks", *args("EURUSD"))
                await wait(lambda: len(_ticks(events[again:], "EURUSD")) >= 1, "a tick after the idle period")
                out["connectionUrlAfterIdle"] = client._transport._url
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    out["events"] = events
    return out


@pytest.mark.parametrize("hub", ["v2", "v1", "test"])
async def test_pysignalr(emu: EmulatorProcess, hub: str) -> None:
    before = _hub_stats(emu)["transports"].get("WebSockets", 0)
    out = await _pysignalr_scenario(emu, hub)
    _check_scenario(Truth(emu), hub, out)
    assert _hub_stats(emu)["transports"].get("WebSockets", 0) == before + 1


async def test_pysignalr_refused_without_token(emu: EmulatorProcess) -> None:
    from pysignalr.exceptions import AuthorizationError

    refused = _hub_stats(emu)["unauthorized"]
    client = pysignalr_client.SignalRClient(_url(emu, "v2"), retry_count=1)
    with pytest.raises(AuthorizationError):
        await asyncio.wait_for(client.run(), 10)
    assert _hub_stats(emu)["unauthorized"] == refused + 1


# --------------------------------------------------------------------------- keep-alive (> 30 s idle)


@pytest.mark.slow
async def test_every_client_survives_an_idle_keep_alive_period(node_client: Path, emu: EmulatorProcess) -> None:
    """One idle connection per client, side by side: nothing sent by anyone's code for 32 s, then it still works.

    The server pings every 15 s and drops a client silent for 30 s: only the clients' own keep-alive pings keep
    their connections, so no connection may be closed for "client timeout" and none may have reconnected."""
    stats = _hub_stats(emu)
    timeouts, pings, opened = stats["closes"].get("client timeout", 0), stats["pings_received"], stats["handshakes"]
    node, core, pys = await asyncio.gather(
        _run_node(node_client, emu, "v2", "WebSockets", idleMs=int(IDLE_S * 1000)),
        asyncio.to_thread(_signalrcore_scenario, emu, "v2", "web_sockets", IDLE_S),
        _pysignalr_scenario(emu, "v2", IDLE_S),
    )
    for out in (node, core, pys):
        _check_scenario(Truth(emu), "v2", out)
        assert out["eventsWhileIdle"] == 0
    assert node["connectionIdAfterIdle"] == node["connectionId"] and node["closedError"] is None
    assert core["errors"] == []
    assert pys["connectionUrlAfterIdle"] == pys["connectionUrl"]
    stats = _hub_stats(emu)
    assert stats["closes"].get("client timeout", 0) == timeouts
    assert stats["handshakes"] == opened + 3, "a client reconnected during the idle period"
    # Each client pinged at least twice in 32 s (every 15 s); the server counted them.
    assert stats["pings_received"] - pings >= 6
