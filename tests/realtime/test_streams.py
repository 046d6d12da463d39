"""Happy paths against the emulated hubs: what the server sent is exactly what the client got."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from airflow_provider_cplugin.emulator.hubs import feeds as F
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime import (
    LONG_POLLING,
    WEBSOCKETS,
    ConnectionState,
    EventBuffer,
    HubAuthError,
    HubClient,
    HubInvocationError,
    HubNegotiationError,
    HubStream,
    HubTimeoutError,
)
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_url

from .support import MT4, MT5, Emulator, collect, until

pytestmark = pytest.mark.timeout(60)


async def _drain_after_cancel(stream: HubStream) -> list[F.Row]:
    """Cancel with drain: what the server sent before it saw the cancel still arrives, then the iteration ends."""
    await stream.cancel(drain=True)
    return [event.payload async for event in stream]


def _expected(emu: Emulator, feed: str, record: dict[str, object], step: int = 1) -> list[object]:
    clock = emu.clock(feed)
    source = getattr(emu.hubs.feeds, feed)
    first, last = record["first_index"], record["last_index"]
    assert isinstance(first, int) and isinstance(last, int)
    return [json.loads(json.dumps(source.item(clock, i))) for i in range(first, last + 1, step)]


@pytest.mark.parametrize("rate", [400, 30_000])
@pytest.mark.parametrize("transport", [WEBSOCKETS, LONG_POLLING])
async def test_window_of_ticks_received_equals_sent(emu: Emulator, transport: str, rate: int) -> None:
    await emu.configure(rates={F.TICKS: rate})
    async with emu.client(transports=[transport]) as client:
        assert client.transport == transport
        stream = await client.stream("StreamTicks", sequence=emu.sequence(F.TICKS))
        window = await collect(stream, 200)
        assert stream.invocation_id is not None
        record_id = stream.invocation_id
        # The server may have sent more before it saw the cancel; the completion closes the window.
        window_payloads = [e.payload for e in window] + await _drain_after_cancel(stream)
    record = emu.stream_record(record_id)
    assert record["state"] == "cancelled"
    assert record["items"] == len(window_payloads) == stream.received
    assert window_payloads == _expected(emu, F.TICKS, record)
    assert stream.duplicates == 0 and stream.missed == 0
    assert client.gaps == []
    assert all(e.connection == 1 for e in window)
    assert [e.sequence for e in window[:3]] == [
        F.TickFeed.sequence_of(emu.clock(F.TICKS), e.payload) for e in window[:3]
    ]


async def test_filtered_tick_stream_and_row_streams(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 400, F.MARGIN_CALLS: 100, F.TRADES: 100, F.USERS: 100, F.SYMBOL_UPDATES: 100})
    async with emu.client() as client:
        streams = {
            F.TICKS: await client.stream("StreamTicks", "EURUSD", sequence=emu.sequence(F.TICKS)),
            F.MARGIN_CALLS: await client.stream("StreamMarginCallUpdates", sequence=emu.sequence(F.MARGIN_CALLS)),
            F.TRADES: await client.stream("StreamTrades", sequence=emu.sequence(F.TRADES)),
            F.USERS: await client.stream("StreamUserUpdates", sequence=emu.sequence(F.USERS)),
            F.SYMBOL_UPDATES: await client.stream("StreamSymbolUpdates"),
        }
        got = {feed: [e.payload for e in await collect(s, 20)] for feed, s in streams.items()}
        ids = {feed: s.invocation_id for feed, s in streams.items()}
        for feed, s in streams.items():
            got[feed] += await _drain_after_cancel(s)
    for feed, payloads in got.items():
        record = emu.stream_record(str(ids[feed]))
        assert record["items"] == len(payloads), feed
        step = F.N_SYMBOLS if feed == F.TICKS else 1
        assert payloads == _expected(emu, feed, record, step), feed
    assert {p["symbol"] for p in got[F.TICKS]} == {"EURUSD"}
    # Enums are ints on the hub (unlike REST); trades cycle Added -> Updated -> Deleted.
    assert all(isinstance(p["cmd"], int) for p in got[F.TRADES])
    assert [p["kind"] for p in got[F.TRADES][:3]] in (
        ["Added", "Updated", "Deleted"],
        ["Updated", "Deleted", "Added"],
        ["Deleted", "Added", "Updated"],
    )
    assert {p["levelType"] for p in got[F.MARGIN_CALLS]} <= {0, 1, 2}
    assert streams[F.TICKS].missed == 0 and streams[F.TRADES].missed == 0 and streams[F.USERS].missed == 0


async def test_connection_status_subscription_and_on_tick(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 400})
    client = emu.client()
    status = client.listen("OnConnectionStatus")  # registered before start: the first push is not missed
    ticks = client.listen("OnTick", sequence=emu.sequence(F.TICKS))
    seen: list[list[object]] = []
    client.on("OnTick", seen.append)
    async with client:
        assert (await collect(status, 1))[0].payload == {"connected": True}
        sub = await client.subscribe("SubscribeToTicks", "XAUUSD", undo="UnsubscribeFromTicks")
        events = await collect(ticks, 10)
        assert {e.payload["symbol"] for e in events} == {"XAUUSD"}
        assert ticks.missed == 0
        await sub.cancel()
        with pytest.raises(HubInvocationError, match="Unknown symbol 'NOPE'"):
            await client.invoke("SubscribeToTicks", "NOPE")
        with pytest.raises(HubInvocationError, match="Method does not exist"):
            await client.invoke("NoSuchMethod")
        with pytest.raises(HubInvocationError, match="expects 1"):
            await client.invoke("SubscribeToTicks")
        with pytest.raises(HubTimeoutError, match="no completion"):  # the library's error, not a bare TimeoutError
            await client.invoke("SubscribeToTicks", "XAUUSD", timeout=0)
    assert len(seen) >= 10 and seen[0][0] == events[0].payload
    assert client.state == ConnectionState.STOPPED


async def test_shared_buffer_merges_streams_and_stop_ends_iteration(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 200, F.TRADES: 200})
    merged = EventBuffer()
    async with emu.client() as client:
        ticks = await client.stream("StreamTicks", buffer=merged, sequence=emu.sequence(F.TICKS))
        trades = await client.stream("StreamTrades", buffer=merged, sequence=emu.sequence(F.TRADES))
        events = await collect(merged, 60)
        assert {e.channel for e in events} == {"StreamTicks", "StreamTrades"}
    # stop() ended both streams: the iteration finishes (bounded, so a hang fails here with a message).
    async with asyncio.timeout(10):
        rest = [e async for e in merged]
    for channel, stream, feed in (("StreamTicks", ticks, F.TICKS), ("StreamTrades", trades, F.TRADES)):
        got = [e.payload for e in events + rest if e.channel == channel]
        sent = _expected(emu, feed, emu.stream_record(str(stream.invocation_id)))
        # Each stream's share of the merged buffer is, in order, a prefix of what the emulator sent for it.
        assert got and got == sent[: len(got)], channel
    assert len(events) + len(rest) == ticks.received + trades.received
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("signalr")] == []


async def test_mt5_hub_test_hub_and_skip_negotiation(emu: Emulator) -> None:
    await emu.configure(rates={F.MT5_MARGIN_CALLS: 200, F.SERVER_TIME: 50, F.TICKS: 200})
    async with emu.client("/hubs/mt5/v2", MT5) as client:
        stream = await client.stream("StreamMarginCallUpdates")
        first = (await collect(stream, 5))[0].payload
        assert set(first) == {"login", "type", "direction"}
        with pytest.raises(HubInvocationError):
            await client.invoke("SubscribeToTicks", "EURUSD")
    # Test hub: no token, server time pushed as an event.
    async with HubClient(emu.hub_url("/hubs/test", None), None, allow_insecure_loopback=True) as client:
        times = await collect(client.listen("ServerTime"), 3)
        assert all(isinstance(e.payload, str) and e.payload.endswith("Z") for e in times)
    # Direct WebSocket connect (legacy docs use skipNegotiation).
    async with emu.client(skip_negotiation=True, transports=[WEBSOCKETS]) as client:
        assert client.connection_id is None
        assert len(await collect(await client.stream("StreamTicks"), 5)) == 5


async def test_binding_and_auth_errors(emu: Emulator) -> None:
    with pytest.raises(HubNegotiationError) as wrong:
        await emu.client(platform=MT5).start()
    assert wrong.value.status == 404
    with pytest.raises(HubNegotiationError) as missing:
        await emu.client(platform=None).start()
    assert missing.value.status == 400

    async def bad_token() -> str:
        return "not-a-token"

    client = HubClient(emu.hub_url(), bad_token, allow_insecure_loopback=True)
    with pytest.raises(HubAuthError) as denied:
        await client.start()
    assert denied.value.status == 401
    assert client.state == ConnectionState.DISCONNECTED
    await client.stop()


def test_url_rules() -> None:
    with pytest.raises(CPluginConfigError, match="allow_insecure_loopback"):
        HubClient("http://127.0.0.1:1/hubs/mt4/v2")
    with pytest.raises(CPluginConfigError, match="only allowed to loopback"):
        HubClient("http://example.com/hubs/mt4/v2", allow_insecure_loopback=True)
    with pytest.raises(CPluginConfigError, match="user:password"):
        HubClient("https://u:p@example.com/hubs/mt4/v2")
    HubClient("https://cloud.mywebapi.com/hubs/mt4/v2?tradePlatform=" + MT4)
    assert hub_url("https://cloud.mywebapi.com/", "mt4", MT4) == (
        "https://cloud.mywebapi.com/hubs/mt4/v2?tradePlatform=" + MT4
    )
    assert hub_url("https://x", "MT5", MT5, override="https://y/h?a=1").endswith("?a=1&tradePlatform=" + MT5)
    with pytest.raises(CPluginConfigError):
        check_stream("MT5", "StreamTicks")
    check_stream("MT4", "StreamTicks")


async def test_token_provider_from_the_async_hook(emu: Emulator, airflow_conn: Callable[..., str]) -> None:
    """The trigger will pass ``CPluginWebApiAsyncHook.get_token``: it satisfies the provider contract."""
    from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches
    from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

    conn = {
        "conn_type": "cplugin",
        "host": emu.base,
        "login": "cplugin-demo",
        "password": "cplugin-demo-secret",
        "extra": {"env": "custom", "auth_url": emu.base, "trade_platform": MT4, "allow_insecure_loopback": True},
    }
    conn_id = airflow_conn("cplugin_realtime_test", conn)
    clear_token_caches()
    hook = CPluginWebApiAsyncHook(conn_id)
    try:
        config = await hook.get_config()
        client = HubClient(hub_url(config.api_base_url, "MT4", MT4), hook.get_token, allow_insecure_loopback=True)
        async with client:
            assert client.state == ConnectionState.CONNECTED
    finally:
        await hook.close()
        clear_token_caches()


async def test_invoke_when_not_connected_is_a_clear_error(emu: Emulator) -> None:
    client = emu.client()
    with pytest.raises(Exception, match="not connected"):
        await client.invoke("SubscribeToTicks", "EURUSD")
    await client.stop()
    await until(lambda: client.state == ConnectionState.STOPPED)


async def test_control_routes(emu: Emulator) -> None:
    await emu.set_faults({"fault": "drop", "after_messages": 5, "hub": "/hubs/mt5", "times": None})
    faults = await emu.control("GET", "hub-faults")
    assert faults["rules"] == [
        {"fault": "drop", "hub": "/hubs/mt5", "times": None, "after_messages": 5, "close_message": False}
    ]
    # Hub rules live in the emulator's shared fault store: /_emulator/reset clears them too.
    await emu.control("POST", "reset")
    assert (await emu.control("GET", "hub-faults"))["rules"] == []
    bad = await emu.session.post(emu.base + "/_emulator/hub-faults", json={"rules": [{"fault": "explode"}]})
    assert bad.status == 400 and "unknown hub fault" in (await bad.json())["error"]
    config = await emu.configure(rates={F.TICKS: 1234})
    assert config["feeds"][F.TICKS]["rate"] == 1234 and config["settings"]["keep_alive_s"] == 0.2
    bad = await emu.session.post(emu.base + "/_emulator/hub-config", json={"rates": {"nope": 1}})
    assert bad.status == 400
    async with emu.client() as client:
        await collect(await client.stream("StreamTicks"), 3)
        stats = await emu.stats()
        assert stats["connections"][0]["transport"] == WEBSOCKETS and stats["handshakes"] == 1
        assert stats["streams"][0]["target"] == "StreamTicks" and stats["streams"][0]["items"] >= 3
    await emu.control("DELETE", "hub-stats")
    assert (await emu.stats())["handshakes"] == 0
