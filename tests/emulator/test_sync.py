"""MT4 sync sessions, snapshots and Idempotency-Key replay."""

from __future__ import annotations

from emulator_support import ANCHOR, MT4, Api, make_config

from airflow_provider_cplugin.emulator.data import Dataset

P = f"/api/v2/MT4/{MT4}"
DS = Dataset(make_config())
TZ = 2 * 3600  # default server-local offset


async def test_trades_sync_drains_rows_modified_since_server_local_timestamp(api: Api) -> None:
    since_utc = ANCHOR - 3 * 86_400
    body = await api.post(f"{P}/TradesSyncStart?timestamp={since_utc + TZ}")
    assert body["data"] is True and body["error"] is None
    drained: list[dict[str, object]] = []
    while batch := await api.data(f"{P}/TradesSyncRead?limit=40"):
        assert len(batch) <= 40
        drained.extend(batch)
    closed = [DS.mt4_closed_trade(i) for i in range(DS.mt4_closed_index_at(since_utc), DS.mt4_closed_count)]
    opened = [DS.mt4_open_trade(j) for j in range(DS.mt4_open_index_at(since_utc), DS.mt4_open_count)]
    assert drained == closed + opened
    assert all(str(t["timeStamp"]) >= "2025-12-29T00:00:00Z" for t in drained)
    orders = [t["order"] for t in drained]
    assert orders == sorted(orders)


async def test_trades_sync_zero_means_everything(api: Api) -> None:
    await api.post(f"{P}/TradesSyncStart?timestamp=0")
    rows = await api.data(f"{P}/TradesSyncRead")
    assert len(rows) == DS.mt4_closed_count + DS.mt4_open_count


async def test_users_sync(api: Api) -> None:
    since_utc = ANCHOR - 30 * 86_400
    await api.post(f"{P}/UsersSyncStart?timestamp={since_utc + TZ}")
    first = await api.data(f"{P}/UsersSyncRead?limit=10")
    rest = await api.data(f"{P}/UsersSyncRead")
    assert await api.data(f"{P}/UsersSyncRead") == []
    expected = [DS.mt4_user(i) for i in range(1000) if DS.mt4_user_last_date(i) >= since_utc]
    assert first + rest == expected and len(first) == 10


async def test_sync_read_without_start_and_bad_params(api: Api) -> None:
    assert (await api.get(f"{P}/TradesSyncRead"))["error"]["code"] == "MT4Error"
    assert (await api.get(f"{P}/UsersSyncRead"))["error"]["code"] == "MT4Error"
    assert (await api.post(f"{P}/TradesSyncStart?timestamp=-1"))["error"]["code"] == "Validation"
    assert (await api.post(f"{P}/TradesSyncStart?timestamp=4294967296"))["error"]["code"] == "Validation"
    await api.post(f"{P}/TradesSyncStart?timestamp=0")
    assert (await api.get(f"{P}/TradesSyncRead?limit=1000001"))["error"]["code"] == "Validation"


async def test_snapshots(api: Api) -> None:
    trades = await api.data(f"{P}/TradesSnapshot")
    assert trades == [DS.mt4_open_trade(j) for j in range(DS.mt4_open_count)]
    assert len(await api.data(f"{P}/TradesSnapshot?limit=3")) == 3
    users = await api.data(f"{P}/UsersSnapshot?limit=25")
    assert users == [DS.mt4_user(i) for i in range(25)]
    assert (await api.get(f"{P}/UsersSnapshot?limit=0"))["error"]["code"] == "Validation"
    assert "paging" not in (await api.get(f"{P}/UsersSnapshot?limit=1"))["meta"]


async def test_idempotency_key_replays_the_stored_envelope(api: Api) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await api.raw("POST", f"{P}/TradesSyncStart?timestamp=0", headers=headers)
    first_body = await first.read()
    await api.data(f"{P}/TradesSyncRead?limit=5")
    again = await api.raw("POST", f"{P}/TradesSyncStart?timestamp=0", headers=headers)
    assert await again.read() == first_body and again.headers["Idempotent-Replayed"] == "true"
    # The replay did not restart the session: the drain continues after the first 5 rows.
    assert (await api.data(f"{P}/TradesSyncRead?limit=1"))[0] == DS.mt4_closed_trade(5)
    other = await api.raw("POST", f"{P}/TradesSyncStart?timestamp=0", headers={"Idempotency-Key": "k-2"})
    assert await other.read() != first_body  # new key, new activityId
    stats = await (await api.client.get("/_emulator/stats")).json()
    assert stats["idempotent_replays"] == 1


async def test_post_accepts_json_patch_content_type(api: Api) -> None:
    body = await api.post(
        f"{P}/UsersSyncStart?timestamp=0", data=b"{}", headers={"Content-Type": "application/json-patch+json"}
    )
    assert body["data"] is True


def test_sync_trades_slices_match_the_whole_sequence() -> None:
    from airflow_provider_cplugin.emulator.rest_mt4_sync import sync_trades

    since = ANCHOR - 3 * 86_400
    count, rows = sync_trades(DS, since, 0, 10**9)
    whole = list(rows)
    assert count == len(whole) > 0
    closed = DS.mt4_closed_count - DS.mt4_closed_index_at(since)
    for position in (0, 1, closed - 1, closed, closed + 1, len(whole) - 1, len(whole), len(whole) + 5):
        for limit in (1, 3, 1000):
            n, part = sync_trades(DS, since, position, limit)
            expected = whole[position : position + limit]
            assert (n, list(part)) == (len(expected), expected), (position, limit)
