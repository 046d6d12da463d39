"""MT4 issue-4 surface against the pure generators."""

from __future__ import annotations

from datetime import UTC, datetime

from emulator_support import ANCHOR, MT4, Api, ClientFactory, get_token, make_config

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE, MT4_TICKET_BASE, SYMBOLS, Dataset, iso

P = f"/api/v2/MT4/{MT4}"
DS = Dataset(make_config())


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


async def test_user_records_request_repeated_and_comma_joined(api: Api) -> None:
    data = await api.data(f"{P}/UserRecordsRequest?logins=10003,10001&logins=10003&logins=42")
    assert sorted(u["login"] for u in data) == [10001, 10003]
    assert {u["login"]: u for u in data}[10001] == DS.mt4_user(1)
    assert await api.data(f"{P}/UserRecordsRequest") == []


async def test_online_paging_and_warmup(make_client: ClientFactory) -> None:
    warm = Api(client := await make_client(), await get_token(client))
    all_online = await warm.data(f"{P}/OnlineRequest")
    expected = [{"login": MT4_LOGIN_BASE + i, "group": DS.mt4_user_group(i).name} for i in range(1000)]
    assert all_online == [o for o in expected if DS.mt4_is_online(o["login"] - MT4_LOGIN_BASE)]
    assert 20 < len(all_online) < 100  # ~5 %
    for name in ("OnlineGet", "OnlineRequest"):
        rows, _ = await warm.pages(f"{P}/{name}", limit=7)
        assert rows == all_online

    cold = Api(client := await make_client(online_warmup_s=60), await get_token(client))
    body = await cold.get(f"{P}/OnlineGet")
    assert body["error"]["code"] == "NoConnect"
    assert (await cold.get(f"{P}/OnlineRequest"))["error"] is None  # live variant is not cached


async def test_trades_get_pages_by_ticket(api: Api) -> None:
    rows, pages = await api.pages(f"{P}/TradesGet", limit=128)
    assert [t["order"] for t in rows] == list(range(DS.mt4_open_ticket_base, DS.mt4_open_ticket_base + 500))
    assert pages == 4 and rows[5] == DS.mt4_open_trade(5)


async def test_trades_request_group_filter(api: Api) -> None:
    rows, _ = await api.pages(f"{P}/TradesRequest", limit=50, group="real-pro")
    assert rows and all(DS.mt4_user(t["login"] - MT4_LOGIN_BASE)["group"] == "real-pro" for t in rows)
    everything = await api.data(f"{P}/TradesRequest")
    assert [t for t in everything if DS.mt4_user_group(t["login"] - MT4_LOGIN_BASE).name == "real-pro"] == rows
    assert await api.data(f"{P}/TradesRequest?group=REAL-PRO") == []  # exact, case-sensitive


async def test_trades_get_by_login(api: Api) -> None:
    user = DS.mt4_trade_owner(0)
    login, group = MT4_LOGIN_BASE + user, DS.mt4_user_group(user).name
    data = await api.data(f"{P}/TradesGetByLogin/{login}/{group}")
    assert data == [DS.mt4_open_trade(j) for j in DS.mt4_open_trade_indexes(user)] and data
    assert all(t["login"] == login for t in data)
    assert await api.data(f"{P}/TradesGetByLogin/{login}/other-group") == []


async def test_trade_records_request_mixes_closed_and_open(api: Api) -> None:
    open_ticket = DS.mt4_open_ticket_base + 3
    data = await api.data(f"{P}/TradeRecordsRequest?orders={MT4_TICKET_BASE + 1},{open_ticket}&orders=5")
    assert data == [DS.mt4_closed_trade(1), DS.mt4_open_trade(3)]


async def test_reports_request_returns_exactly_the_window(api: Api) -> None:
    logins = [MT4_LOGIN_BASE + u for u in (3, 50, 51, 700)]
    start, end = ANCHOR - 40 * 86_400, ANCHOR - 10 * 86_400
    data = await api.data(
        f"{P}/ReportsRequest", params=[("from", iso(start)), ("to", iso(end)), *[("logins", str(x)) for x in logins]]
    )
    expected = [
        t
        for t in (DS.mt4_closed_trade(i) for i in range(DS.mt4_closed_count))
        if t["login"] in logins and start <= ts(t["closeTime"]) < end
    ]
    assert data == expected and len(expected) > 4
    # Boundaries: a trade closing exactly at `from` is in, one closing exactly at `to` is out.
    edge = DS.mt4_closed_trade(2000)
    login = edge["login"]
    at = edge["closeTime"]
    inside = await api.data(f"{P}/ReportsRequest?from={at}&to={iso(ts(at) + 1)}&logins={login}")
    assert edge in inside
    outside = await api.data(f"{P}/ReportsRequest?from={iso(ts(at) - 1)}&to={at}&logins={login}")
    assert edge not in outside


async def test_reports_request_validation(api: Api) -> None:
    for query in (
        "from=2025-12-01T00:00:00Z&logins=10001",
        "to=2025-12-01T00:00:00Z&logins=10001",
        "from=2025-12-01T00:00:00Z&to=2025-12-02T00:00:00Z",
        "from=2025-12-01T00:00:00Z&to=2025-12-02T00:00:00Z&logins=",
        "from=yesterday&to=2025-12-02T00:00:00Z&logins=10001",
        "from=2025-12-03T00:00:00Z&to=2025-12-02T00:00:00Z&logins=10001",
    ):
        body = await api.get(f"{P}/ReportsRequest?{query}")
        assert body["error"]["code"] == "Validation", query
    unknown = await api.data(f"{P}/ReportsRequest?from=2025-12-01T00:00:00Z&to=2026-01-01T00:00:00Z&logins=1")
    assert unknown == []


async def test_trades_user_history(api: Api) -> None:
    user = 12
    login = MT4_LOGIN_BASE + user
    everything = await api.data(f"{P}/TradesUserHistory/{login}")
    assert everything == [DS.mt4_closed_trade(i) for i in DS.mt4_closed_trade_indexes(user)]
    cut = everything[2]["closeTime"]
    tail = await api.data(f"{P}/TradesUserHistory/{login}?fromTime={cut}")
    assert tail == everything[2:]
    head = await api.data(f"{P}/TradesUserHistory/{login}?toTime={cut}")
    assert head == everything[:2]
    assert await api.data(f"{P}/TradesUserHistory/1") == []


async def test_margins(api: Api) -> None:
    margins = await api.data(f"{P}/MarginsGet")
    assert [m["login"] for m in margins] == sorted(m["login"] for m in margins)
    assert len(margins) == min(DS.mt4_user_count, DS.mt4_open_count)
    one = margins[10]
    assert await api.data(f"{P}/MarginLevelGet/{one['login']}") == one
    no_trades = MT4_LOGIN_BASE + DS.mt4_trade_owner(DS.mt4_open_count)
    assert (await api.get(f"{P}/MarginLevelGet/{no_trades}"))["error"]["code"] == "NotFound"
    assert (await api.get(f"{P}/MarginLevelGet/1"))["error"]["code"] == "NotFound"


async def test_prices_symbols_groups_common(api: Api) -> None:
    ticks = await api.data(f"{P}/TickInfoLast")
    assert [t["symbol"] for t in ticks] == [s.name for s in SYMBOLS]
    assert all(t["ask"] > t["bid"] > 0 for t in ticks)
    assert await api.data(f"{P}/TickInfoLast/EURUSD") == ticks[0]
    assert (await api.get(f"{P}/TickInfoLast/NOPE"))["error"]["code"] == "NotFound"
    cfg = await api.data(f"{P}/CfgRequestSymbol")
    assert {c["symbol"] for c in cfg} >= {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD"}
    assert (await api.data(f"{P}/CfgRequestSymbol/XAUUSD"))["digits"] == 2
    assert {g["name"] for g in await api.data(f"{P}/SymbolsGroupsGet")} == {"Forex", "Metals"}
    groups = await api.data(f"{P}/GroupsGet")
    assert {g["group"] for g in groups} == {DS.mt4_user_group(i).name for i in range(1000)}
    common = await api.data(f"{P}/ManagerCommon")
    assert common["timeZone"] == 2 and set(common) == {"name", "owner", "build", "version", "timeZone"}


async def test_server_local_time_zone_is_configurable(make_client: ClientFactory) -> None:
    client = await make_client(server_tz_offset_hours=-5)
    api = Api(client, await get_token(client))
    assert (await api.data(f"{P}/ManagerCommon"))["timeZone"] == -5


def test_now_is_a_real_utc_instant() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert ts(iso(ANCHOR)) == ANCHOR == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
