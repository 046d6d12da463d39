"""HubClient's public API on its less travelled paths, checked against what the emulator did (its hub stats and
stream records), never against the client's own summary alone: argument checks, start/stop life cycle, stats,
wait_connected, callbacks on/off, fire-and-forget send, non-resumable streams and pending invocations on a lost
connection, and a server offering no transport the client allows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from airflow_provider_cplugin.emulator.hubs import feeds as F
from airflow_provider_cplugin.realtime import (
    LONG_POLLING,
    WEBSOCKETS,
    ConnectionState,
    HubClient,
    HubError,
)
from airflow_provider_cplugin.realtime.errors import HubConnectionLostError, HubTransportError

from .support import MT4, Emulator, collect, until

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"transports": ["ServerSentEvents"]}, "transports must be a non-empty subset"),
        ({"transports": []}, "transports must be a non-empty subset"),
        ({"transports": [LONG_POLLING], "skip_negotiation": True}, "skip_negotiation needs the WebSockets"),
        ({"keep_alive_interval": 5.0, "server_timeout": 5.0}, "server_timeout must be larger"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HubClient(f"http://127.0.0.1:1/hubs/mt4/v2?tradePlatform={MT4}", None, allow_insecure_loopback=True, **options)


async def test_start_twice_connects_once_and_a_stopped_client_stays_stopped(emu: Emulator) -> None:
    states: list[ConnectionState] = []

    def broken(state: ConnectionState, error: BaseException | None) -> None:
        raise RuntimeError("a listener bug")  # logged, never breaks the client

    client = emu.client()
    client.on_state(lambda state, error: states.append(state))
    client.on_state(broken)
    await client.start()
    await client.start()  # already connected: nothing new
    await client.wait_connected(timeout=5)
    assert emu.hubs.stats.negotiations == 1 and client.connection_number == 1
    await client.stop()
    await client.stop()  # safe twice
    assert states == [ConnectionState.CONNECTING, ConnectionState.CONNECTED, ConnectionState.STOPPED]
    with pytest.raises(HubError, match="was stopped"):
        await client.start()
    with pytest.raises(HubError, match="client stopped"):
        await client.stream("StreamTicks")
    with pytest.raises(HubError, match="client stopped"):
        await client.wait_connected(timeout=5)
    assert emu.hubs.stats.negotiations == 1


async def test_state_callback_failure_is_logged(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    def broken(state: ConnectionState, error: BaseException | None) -> None:
        raise RuntimeError("a listener bug")

    client = emu.client()
    client.on_state(broken)
    with caplog.at_level(logging.ERROR, logger="airflow_provider_cplugin.realtime.client"):
        async with client:
            assert client.state == ConnectionState.CONNECTED
    assert [r.getMessage() for r in caplog.records].count("state callback failed") == 3  # each change, logged


@pytest.mark.parametrize("transport", [WEBSOCKETS, LONG_POLLING])
async def test_stats_count_what_the_emulator_sent(emu: Emulator, transport: str) -> None:
    await emu.configure(rates={F.TICKS: 400})
    async with emu.client(transports=[transport]) as client:
        stream = await client.stream("StreamTicks", "EURUSD", sequence=emu.sequence(F.TICKS))
        got = await collect(stream, 10)
        stats = client.stats()  # a cancelled stream leaves the stats: take them while it runs
        received = stream.received
        await stream.cancel(drain=True)
        rest = [e async for e in stream]
    record = emu.stream_record(str(stream.invocation_id))
    channel = stats["channels"][stream.name]
    assert record["state"] == "cancelled"
    assert stream.received == record["items"] == len(got) + len(rest)  # the truth, once the stream is complete
    assert channel == {"received": received, "delivered": received, "duplicates": 0, "missed": 0}
    assert 10 <= received <= record["items"] and stats["messages"] >= received
    assert stats["connections"] == 1 and stats["gaps"] == 0 and stats["state"] == str(ConnectionState.CONNECTED)


async def test_callbacks_off_and_fire_and_forget_send(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 400})
    kept: list[Any] = []
    dropped: list[Any] = []
    removed_by_target: list[Any] = []

    async def async_callback(args: list[Any]) -> None:  # coroutine callbacks are awaited
        kept.append(args[0])

    client = emu.client()
    client.on("OnTick", async_callback)
    client.on("OnTick", dropped.append)
    client.on("OnTick", lambda args: 1 / 0)  # a failing callback is logged, the others still run
    client.on("OnConnectionStatus", removed_by_target.append)
    client.off("OnTick", dropped.append)
    client.off("OnTick", print)  # never registered: nothing happens
    client.off("OnConnectionStatus")
    ticks = client.listen("OnTick")
    async with client:
        await client.send("SubscribeToTicks", "USDJPY")  # no completion awaited
        events = await collect(ticks, 5)
    assert {e.payload["symbol"] for e in events} == {"USDJPY"}
    assert len(kept) >= 5 and kept[:5] == [e.payload for e in events]
    assert dropped == [] and removed_by_target == []
    # The emulator saw the subscription although the client never waited for its completion.
    assert emu.hubs.stats.invocations["SubscribeToTicks"] == 1


async def test_non_resumable_stream_ends_with_the_loss_and_a_pending_call_fails(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 400})
    # The emulator drops the connection after 40 messages, once: the client reconnects.
    await emu.set_faults({"fault": "drop", "after_messages": 40, "times": 1})
    async with emu.client() as client:
        fixed = await client.stream("StreamTicks", "EURUSD", resume=False)
        resumed = await client.stream("StreamTicks", "GBPUSD")
        with pytest.raises(HubConnectionLostError):
            async for _ in fixed:
                pass
        await client.wait_connected(timeout=10)
        assert client.connection_number == 2
        assert len(await collect(resumed, 3)) == 3  # the resumable one goes on
        assert fixed.invocations == 1 and resumed.invocations == 2
    targets = [(r.arguments, r.connection_id) for r in emu.hubs.stats.streams]
    assert [a for a, _ in targets].count(["EURUSD"]) == 1 and [a for a, _ in targets].count(["GBPUSD"]) == 2


async def test_pending_invocation_fails_when_the_server_stalls(emu: Emulator) -> None:
    # The server stops answering: the client's server timeout (0.6 s here) declares the connection lost, and the
    # invocation waiting for its completion fails with the loss instead of waiting for ever.
    await emu.set_faults({"fault": "stall", "after_messages": 1, "delay_s": 30.0})  # after the status push
    async with emu.client(reconnect_delays=(), server_timeout=0.6, keep_alive_interval=0.1) as client:
        with pytest.raises(HubConnectionLostError, match="connection lost"):
            await client.invoke("SubscribeToTicks", "EURUSD", timeout=20)
        await until(lambda: client.state == ConnectionState.DISCONNECTED, what="the client giving up")
        with pytest.raises(HubConnectionLostError):
            await client.wait_connected(timeout=5)
        assert client.error is not None


async def test_server_offering_no_allowed_transport_is_refused_before_connecting() -> None:
    seen: list[str] = []

    async def negotiate(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response(
            {
                "negotiateVersion": 1,
                "connectionId": "c",
                "connectionToken": "t",
                "availableTransports": [{"transport": "ServerSentEvents", "transferFormats": ["Text"]}],
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", negotiate)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = f"{server.make_url('/hubs/mt4/v2')}?tradePlatform={MT4}"
        client = HubClient(url, None, allow_insecure_loopback=True)
        with pytest.raises(HubTransportError, match=r"server offers \['ServerSentEvents'\], client allows"):
            await client.start()
        assert client.state == ConnectionState.DISCONNECTED
        await client.stop()
    finally:
        await server.close()
    assert seen == ["/hubs/mt4/v2/negotiate"]  # negotiated once, no transport attempted


async def test_closed_listener_gets_nothing_more(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 400})
    client = emu.client()
    closed = client.listen("OnTick")
    open_ = client.listen("OnTick")
    async with client:
        await client.subscribe("SubscribeToTicks", "EURUSD", undo="UnsubscribeFromTicks")
        await collect(open_, 2)
        await closed.close()
        received = closed.received
        await collect(open_, 5)
        assert closed.received == received and open_.received >= 7
        async with asyncio.timeout(5):  # a closed listener's iteration ends after what it held
            leftover = [e async for e in closed]
        assert len(leftover) <= received
