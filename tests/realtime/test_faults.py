"""Failure paths: drops, malformed frames, token expiry, refused negotiation, stalls, transport fallback."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable

import pytest

from airflow_provider_cplugin.emulator.hubs import feeds as F
from airflow_provider_cplugin.realtime import (
    LONG_POLLING,
    WEBSOCKETS,
    ConnectionState,
    HubClosedError,
    HubConnectionLostError,
    HubEvent,
    HubHandshakeError,
    HubInvocationError,
    HubNegotiationError,
    HubProtocolError,
)

from .support import MT5, Emulator, collect, until

pytestmark = pytest.mark.timeout(60)


async def _events_until_connection(source: object, connection: int, extra: int = 20) -> list[HubEvent]:
    """Read until ``extra`` events of connection number ``connection`` arrived."""
    events: list[HubEvent] = []
    after = 0
    async with asyncio.timeout(15):
        async for event in source:  # type: ignore[attr-defined]
            events.append(event)
            after += event.connection == connection
            if after >= extra:
                break
    return events


def _check_accounting(events: list[HubEvent], missed: int) -> None:
    """Per partition, what was received plus what the gap says was missed covers the index span exactly."""
    indexes: dict[Hashable, list[int]] = defaultdict(list)
    for event in events:
        assert event.sequence is not None
        indexes[event.sequence[0]].append(event.sequence[1])
    span = sum(max(v) - min(v) + 1 for v in indexes.values())
    assert all(v == sorted(set(v)) for v in indexes.values()), "duplicates or reordering delivered"
    assert sum(len(v) for v in indexes.values()) + missed == span


@pytest.mark.parametrize("transport", [WEBSOCKETS, LONG_POLLING])
async def test_drop_reconnect_resume_records_gap(emu: Emulator, transport: str) -> None:
    await emu.configure(rates={F.TICKS: 500})
    await emu.set_faults({"fault": "drop", "after_messages": 60})
    async with emu.client(transports=[transport]) as client:
        stream = await client.stream("StreamTicks", sequence=emu.sequence(F.TICKS))
        events = await _events_until_connection(stream, 2)
        first_id = emu.hubs.stats.streams[0].invocation_id
    assert client.connection_number == 2
    assert stream.invocations == 2 and stream.invocation_id != first_id  # re-invoked on the new connection
    assert len(emu.tokens_issued) == 2  # token provider called on connect and on reconnect
    [gap] = client.gaps
    assert gap.kind == "disconnect" and gap.connection == 1 and gap.transport == transport
    assert gap.ended_at is not None and gap.ended_at >= gap.started_at and gap.attempts == 1
    assert gap.last_event_at is not None and gap.last_event_at <= gap.started_at
    # Live feed: the events scheduled while reconnecting are gone, and the sequences say how many.
    assert gap.missed["StreamTicks"] > 0 and gap.total_missed == gap.missed["StreamTicks"] == stream.missed
    assert stream.duplicates == 0
    _check_accounting(events, gap.missed["StreamTicks"])
    # Everything written before the cut arrived: 60 messages = status push + 59 stream items.
    assert sum(e.connection == 1 for e in events) == 59
    assert gap.to_dict()["total_missed"] == gap.total_missed


async def test_subscriptions_and_listeners_survive_reconnect(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 800})
    await emu.set_faults({"fault": "drop", "after_messages": 30, "close_message": True})
    client = emu.client()
    ticks = client.listen("OnTick", sequence=emu.sequence(F.TICKS))
    plain = await client.stream("StreamTrades")  # no sequence: its loss is unknown
    async with client:
        await client.subscribe("SubscribeToTicks", "EURUSD", undo="UnsubscribeFromTicks")
        events = await _events_until_connection(ticks, 2, extra=5)
    [gap] = client.gaps
    assert "Connection dropped by the emulator" in gap.reason and "HubClosedError" in gap.reason
    assert gap.unsequenced == [plain.name] and gap.total_missed is None
    assert {e.payload["symbol"] for e in events} == {"EURUSD"}
    assert emu.hubs.stats.invocations["SubscribeToTicks"] == 2  # re-invoked after the reconnect


async def test_malformed_frame_is_a_clear_error(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 200})
    await emu.set_faults({"fault": "malformed", "after_messages": 5})
    client = emu.client(reconnect_delays=None)
    async with client:
        stream = await client.stream("StreamTicks")
        with pytest.raises(HubConnectionLostError) as lost:
            async for _ in stream:
                pass
    cause = lost.value.last_error
    assert isinstance(cause, HubProtocolError) and "malformed frame (invalid JSON" in str(cause)
    assert "reconnect disabled" in str(lost.value)
    assert client.gaps[0].error is not None and client.gaps[0].ended_at is None
    assert client.state == ConnectionState.STOPPED


async def test_malformed_frame_then_reconnect(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 200})
    await emu.set_faults({"fault": "malformed", "after_messages": 5})
    async with emu.client() as client:
        await _events_until_connection(await client.stream("StreamTicks"), 2, extra=3)
    assert "HubProtocolError: malformed frame" in client.gaps[0].reason


async def test_token_expiry_mid_session_reconnects_with_a_new_token(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 100})
    await emu.set_faults({"fault": "expire_token", "after_s": 0.3})
    async with emu.client() as client:
        events = await _events_until_connection(await client.stream("StreamTicks"), 2, extra=3)
    assert "Unauthorized: the access token has expired" in client.gaps[0].reason
    assert len(set(emu.tokens_issued)) == 2
    assert events[-1].connection == 2


async def test_natural_token_expiry_with_a_short_lifetime(make_emulator: object) -> None:
    emu: Emulator = await make_emulator(token_lifetime=1)  # type: ignore[operator]
    await emu.configure(rates={F.TICKS: 50})
    # ASP.NET Core's default keeps the connection past its token's expiry; a server with
    # CloseOnAuthenticationExpiration closes it, and the client must then reconnect with a new token.
    await emu.set_faults({"fault": "close_on_token_expiry", "times": None})
    async with emu.client() as client:
        await _events_until_connection(await client.stream("StreamTicks"), 2, extra=3)
    assert "expired" in client.gaps[0].reason
    assert len(emu.tokens_issued) >= 2


async def test_refused_negotiation(emu: Emulator) -> None:
    await emu.set_faults({"fault": "refuse_negotiate", "status": 503, "body": "pump warming up"})
    client = emu.client()
    with pytest.raises(HubNegotiationError) as refused:
        await client.start()  # the first start is not retried (SDK behaviour)
    assert refused.value.status == 503 and "pump warming up" in str(refused.value)
    await client.stop()

    # During a reconnect a refusal is one failed attempt of the policy.
    # Arm the refusals only once connected, so they hit the reconnect's negotiations.
    await emu.configure(rates={F.TICKS: 200})
    await emu.set_faults({"fault": "drop", "after_messages": 10})
    async with emu.client() as client:
        await emu.set_faults({"fault": "refuse_negotiate", "status": 503, "times": 2})
        await _events_until_connection(await client.stream("StreamTicks"), 2, extra=3)
    [gap] = client.gaps
    assert gap.attempts == 3 and gap.ended_at is not None


async def test_reconnect_gives_up_after_the_policy(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 200})
    await emu.set_faults({"fault": "drop", "after_messages": 10})
    client = emu.client(reconnect_delays=(0.0, 0.01))
    async with client:
        await emu.set_faults({"fault": "refuse_negotiate", "status": 503, "times": None})
        stream = await client.stream("StreamTicks")
        with pytest.raises(HubConnectionLostError, match="2 reconnect attempts failed"):
            async for _ in stream:
                pass
        assert client.state == ConnectionState.DISCONNECTED
        assert isinstance(client.error, HubConnectionLostError)
        # A stream or listener opened after giving up would never start: it fails at once instead of hanging.
        with pytest.raises(HubConnectionLostError):
            await client.stream("StreamTicks")
        with pytest.raises(HubConnectionLostError):
            client.listen("OnTick")
    assert client.gaps[0].attempts == 2 and client.gaps[0].ended_at is None
    await emu.set_faults()


async def test_server_stall_trips_the_server_timeout(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 100})
    await emu.set_faults({"fault": "stall", "after_messages": 5, "delay_s": 3.0})
    async with emu.client(server_timeout=0.6, keep_alive_interval=0.1) as client:
        await _events_until_connection(await client.stream("StreamTicks"), 2, extra=3)
    assert "HubTimeoutError" in client.gaps[0].reason


async def test_server_close_without_allow_reconnect_is_final(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 100})
    async with emu.client() as client:
        stream = await client.stream("StreamTicks")
        await collect(stream, 3)
        for conn in list(emu.hubs.connections.values()):
            conn.close("maintenance", False)
        with pytest.raises(HubConnectionLostError) as lost:
            async for _ in stream:
                pass
    assert isinstance(lost.value.last_error, HubClosedError) and lost.value.last_error.error == "maintenance"


async def test_websocket_refused_falls_back_to_long_polling(emu: Emulator) -> None:
    # An HTTP fault (emulator-wide fault store) refuses the first GET on the hub path: the WebSocket upgrade.
    await emu.control(
        "POST", "faults", {"rules": [{"path": "^/hubs/mt4/v2$", "method": "GET", "status": 400}], "append": True}
    )
    async with emu.client() as client:
        assert client.transport == LONG_POLLING
        assert len(await collect(await client.stream("StreamTicks"), 3)) == 3
    assert emu.hubs.stats.negotiations == 2  # fallback negotiates a fresh connection token


async def test_stop_cancels_everything(emu: Emulator) -> None:
    await emu.configure(rates={F.TICKS: 2000})
    client = emu.client(transports=[LONG_POLLING])
    await client.start()
    stream = await client.stream("StreamTicks")
    await collect(stream, 10)
    consumed: list[object] = []

    async def consume() -> None:
        async for event in stream:
            consumed.append(event)

    consumer = asyncio.create_task(consume())
    await until(lambda: len(consumed) >= 5, what="the consumer iterating the live stream")
    await client.stop()
    await asyncio.wait_for(consumer, 5)  # iteration ended, no exception
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("signalr")] == []
    await until(lambda: not emu.hubs.connections, what="server side closed")
    # Like the JS client: a Close message first (the server ends the connection), then DELETE (already gone).
    assert emu.hubs.stats.closes["client close"] == 1


async def test_delayed_handshake_times_out_and_delayed_negotiate_just_waits(emu: Emulator) -> None:
    await emu.set_faults({"fault": "delay_handshake", "delay_s": 2.0})
    client = emu.client(handshake_timeout=0.3)
    with pytest.raises(HubHandshakeError, match=r"no handshake response within 0\.3s"):
        await client.start()
    await emu.set_faults({"fault": "delay_negotiate", "delay_s": 0.3})
    started = asyncio.get_running_loop().time()
    async with emu.client() as client:
        assert client.state == ConnectionState.CONNECTED
    assert asyncio.get_running_loop().time() - started >= 0.3


async def test_stream_error_completion_ends_iteration_with_the_error(emu: Emulator) -> None:
    async with emu.client("/hubs/mt5/v2", MT5) as client:
        stream = await client.stream("StreamTicks")  # deferred server-side on MT5
        with pytest.raises(HubInvocationError, match="Method does not exist"):
            await collect(stream, 1)
        assert not stream.active and isinstance(stream.error, HubInvocationError)


async def test_server_rejects_an_unsupported_protocol_in_the_handshake(emu: Emulator) -> None:
    token = await emu.token()
    url = emu.hub_url().replace("http://", "ws://") + f"&access_token={token}"
    async with emu.session.ws_connect(url) as ws:
        await ws.send_str('{"protocol":"messagepack","version":1}\x1e')
        reply = await ws.receive()
        assert reply.data == '{"error":"The protocol \'messagepack\' is not supported."}\x1e'
        assert (await ws.receive()).type.name in ("CLOSE", "CLOSED")
