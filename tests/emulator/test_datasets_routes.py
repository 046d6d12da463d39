"""Emulator routes of the warehouse datasets: shapes vs the SDK 0.2.1 models, agreement with the trades, prices
and users the emulator already serves, and sync-session semantics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from emulator_support import ANCHOR, MT4, MT5, Api, make_config

from airflow_provider_cplugin.emulator.data import MT4_GROUPS, MT4_LOGIN_BASE, Dataset

P = f"/api/v2/MT4/{MT4}"
P5 = f"/api/v2/MT5/{MT5}"
DS = Dataset(make_config())
TZ = 2 * 3600
DAY = 86_400

# Field names and JSON types of SDK 0.2.1 (dist/generated/model/*.d.ts): `number` → int | float.
NUM = (int, float)
SDK_DAILY_REPORT = {
    "login": NUM, "ctm": str, "group": str, "bank": str, "balancePrev": NUM, "balance": NUM, "deposit": NUM,
    "credit": NUM, "profitClosed": NUM, "profit": NUM, "equity": NUM, "margin": NUM, "marginFree": NUM,
}  # fmt: skip
SDK_TICK = {"time": str, "bid": NUM, "ask": NUM, "dataFeed": NUM, "flags": str}
SDK_BAR = {"time": str, "open": NUM, "high": NUM, "low": NUM, "close": NUM, "volume": NUM}
SDK_MT4_GROUP_FIELDS = set(
    [
        "group",
        "enable",
        "timeout",
        "otpMode",
        "company",
        "signature",
        "supportPage",
        "supportEmail",
        "copies",
        "reports",
        "defaultLeverage",
        "defaultDeposit",
        "maxSecurities",
        "secMarginsTotal",
        "currency",
        "credit",
        "marginCall",
        "marginMode",
        "marginStopout",
        "interestRate",
        "useSwap",
        "newsMode",
        "groupRights",
        "checkIEPrices",
        "maxPositions",
        "closeReopen",
        "hedgeProhibited",
        "closeFIFO",
        "hedgeLargeLeg",
        "marginControllingType",
        "archivePeriod",
        "archiveMaxBalance",
        "stopoutSkipHedged",
        "archivePendingPeriod",
    ]
)


def assert_shape(row: dict[str, Any], sdk: dict[str, Any]) -> None:
    assert set(row) == set(sdk)
    for name, kind in sdk.items():
        assert isinstance(row[name], kind) and not isinstance(row[name], bool), (name, row[name])


def local_day(d: str) -> int:
    return int(time.mktime(time.strptime(d, "%Y-%m-%d")) - time.timezone) // DAY


# --------------------------------------------------------------------------- daily reports


async def test_daily_reports_shape_and_agreement_with_trades(api: Api) -> None:
    logins = [MT4_LOGIN_BASE + i for i in (0, 7, 123)] + [MT4_LOGIN_BASE + 10**6]  # the last is unknown
    rows = await api.data(
        f"{P}/DailyReportsRequest",
        params=[("from", "2025-12-01T00:00:00"), ("to", "2025-12-31T00:00:00")] + [("logins", x) for x in logins],
    )
    days = [d for d in DS.mt4_daily_days() if local_day("2025-12-01") <= d <= local_day("2025-12-31")]
    assert len(days) == 31
    assert rows == [r for i in (0, 7, 123) for r in DS.mt4_daily_reports(i, days)]
    for row in rows:
        assert_shape(row, SDK_DAILY_REPORT)
        assert row["ctm"].endswith("T00:00:00")  # server-local wall clock, no offset
    # closed P/L of a day = profits of the trades the emulator serves as closed in that server-local day
    login = MT4_LOGIN_BASE + 7
    trades = await api.data(f"{P}/TradesUserHistory/{login}")
    for row in (r for r in rows if r["login"] == login):
        start = local_day(row["ctm"][:10]) * DAY - TZ
        closed = [t for t in trades if start <= _ts(t["closeTime"]) < start + DAY]
        assert row["profitClosed"] == round(sum(t["profit"] for t in closed if t["tradeCommand"] != "Balance"), 2)
        assert row["deposit"] == round(sum(t["profit"] for t in closed if t["tradeCommand"] == "Balance"), 2)
        flows = sum(t["profit"] + t["commission"] + t["storage"] + t["taxes"] for t in closed)
        assert row["balance"] - row["balancePrev"] == pytest.approx(flows, abs=0.011)
        assert row["equity"] == pytest.approx(row["balance"] + row["credit"] + row["profit"], abs=0.011)
    # the last day's balance is the user's balance now (nothing closes after it in the generated history)
    last = await api.data(
        f"{P}/DailyReportsRequest", params={"from": "2025-12-31T00:00:00", "to": "2025-12-31T00:00:00", "logins": login}
    )
    user = await api.data(f"{P}/UserRecordGet/{login}")
    later = [t for t in trades if _ts(t["closeTime"]) >= ANCHOR - TZ]
    flows_after = sum(t["profit"] + t["commission"] + t["storage"] + t["taxes"] for t in later)
    assert last[0]["balance"] == pytest.approx(user["balance"] - flows_after, abs=0.011)


def _ts(text: str) -> int:
    return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone)


async def test_daily_reports_ex_groups_by_login_and_validation(api: Api) -> None:
    params = {
        "from": "2025-12-20T00:00:00",
        "to": "2025-12-21T00:00:00",
        "logins": f"{MT4_LOGIN_BASE},{MT4_LOGIN_BASE + 1}",
    }
    flat = await api.data(f"{P}/DailyReportsRequest", params=params)
    grouped = await api.data(f"{P}/DailyReportsRequestEx", params=params)
    assert sorted(grouped) == [str(MT4_LOGIN_BASE), str(MT4_LOGIN_BASE + 1)]
    assert [r for k in sorted(grouped) for r in grouped[k]] == flat and len(flat) == 4
    body = await api.get(f"{P}/DailyReportsRequest", params={"from": "2025-12-20T00:00:00", "to": "2025-12-21"})
    assert body["error"]["code"] == "Validation"


async def test_daily_sync_semantics(api: Api) -> None:
    # reading without a start: the non-Ok manager answer the reference allows
    body = await api.post(f"{P}/DailySyncRead")
    assert body["error"]["code"] == "MT4Error"
    # a second start replaces the first: only the later (narrower) window is drained
    await api.post(f"{P}/DailySyncStart?timestamp=0")
    since_local = local_day("2025-12-30") * DAY  # reports of days ending at/after the 30th's midnight
    assert (await api.post(f"{P}/DailySyncStart?timestamp={since_local}"))["data"] is True
    rows = (await api.post(f"{P}/DailySyncRead"))["data"]
    days = [d for d in DS.mt4_daily_days() if (d + 1) * DAY >= since_local]
    assert [r["ctm"][:10] for r in rows[:3]] == ["2025-12-29", "2025-12-30", "2025-12-31"]
    assert rows == [r for u in range(DS.mt4_user_count) for r in DS.mt4_daily_reports(u, days)]
    # the read dropped the snapshot
    assert (await api.post(f"{P}/DailySyncRead"))["error"]["code"] == "MT4Error"


# --------------------------------------------------------------------------- groups


async def test_groups_request_is_paged_by_name_and_matches_groups_get(api: Api) -> None:
    rows, pages = await api.pages(f"{P}/GroupsRequest", limit=3)
    cached = await api.data(f"{P}/GroupsGet")
    assert pages == 2 and [g["group"] for g in rows] == sorted(g.name for g in MT4_GROUPS)
    assert sorted(cached, key=lambda g: g["group"]) == rows
    assert set(rows[0]) == SDK_MT4_GROUP_FIELDS
    users = await api.data(f"{P}/UsersRequest")
    assert {u["group"] for u in users} <= {g["group"] for g in rows}  # every user's group is configured
    one = await api.data(f"{P}/GroupRecordGet/real-pro")
    assert one == next(g for g in rows if g["group"] == "real-pro")
    assert (await api.get(f"{P}/GroupRecordGet/REAL-PRO"))["error"]["code"] == "NotFound"


# --------------------------------------------------------------------------- ticks and bars


async def test_ticks_request(api: Api) -> None:
    start, end = "2025-12-31T10:00:00Z", "2025-12-31T10:10:00Z"
    ticks = await api.data(f"{P}/TicksRequest/EURUSD", params={"start": start, "end": end})
    assert ticks == list(DS.mt4_ticks("EURUSD", _ts(start), _ts(end)))
    assert 30 <= len(ticks) <= 60  # ~70 % of the 60 ten-second slots
    for tick in ticks:
        assert_shape(tick, SDK_TICK)
        assert start <= tick["time"] <= end and tick["ask"] > tick["bid"]
    normal = await api.data(f"{P}/TicksRequest/EURUSD", params={"start": start, "end": end, "flags": "Normal"})
    assert normal == [t for t in ticks if t["flags"] == "Normal"] and len(normal) < len(ticks)
    assert (await api.get(f"{P}/TicksRequest/NOPE", params={"start": start, "end": end}))["error"]["code"] == "NotFound"
    # the last tick before the anchor sits on the last quote (TickInfoLast)
    last = await api.data(f"{P}/TickInfoLast/EURUSD")
    near = await api.data(
        f"{P}/TicksRequest/EURUSD", params={"start": "2025-12-31T23:59:00Z", "end": "2026-01-01T00:00:00Z"}
    )
    assert abs(near[-1]["bid"] - last["bid"]) <= 0.0001


async def test_chart_request_modes(api: Api) -> None:
    params = {"period": "H1", "start": "2025-12-31T10:00:00Z", "end": "2025-12-31T13:00:00Z"}
    inside = await api.data(f"{P}/ChartRequest/XAUUSD", params=params)
    ranged = await api.data(f"{P}/ChartRequest/XAUUSD", params={**params, "mode": "RangeIn"})
    assert [b["time"] for b in inside] == ["2025-12-31T10:00:00Z", "2025-12-31T11:00:00Z", "2025-12-31T12:00:00Z"]
    assert [b["time"] for b in ranged] == [b["time"] for b in inside] + ["2025-12-31T13:00:00Z"]
    for bar in ranged:
        assert_shape(bar, SDK_BAR)
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"]) <= bar["high"]
    assert [a["close"] for a in ranged[:-1]] == [b["open"] for b in ranged[1:]]  # continuous
    last = await api.data(f"{P}/ChartRequest/XAUUSD", params={**params, "mode": "RangeLast"})
    assert [b["time"] for b in last] == ["2025-12-31T13:00:00Z"]
    daily = await api.data(
        f"{P}/ChartRequest/XAUUSD",
        params={"period": "D1", "start": "2025-12-30T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    )
    assert [b["time"][:10] for b in daily] == ["2025-12-30", "2025-12-31"]  # no bar still forming at the anchor
    assert daily[-1]["close"] == (await api.data(f"{P}/TickInfoLast/XAUUSD"))["bid"]
    bad = await api.get(f"{P}/ChartRequest/XAUUSD", params={**params, "period": "H2"})
    assert bad["error"]["code"] == "Validation"


async def test_mt4_only_routes_are_absent_for_mt5(api: Api) -> None:
    resp = await api.raw("GET", f"{P5}/TicksRequest/EURUSD")
    assert resp.status == 404 or (await resp.json())["error"] is not None
