from __future__ import annotations

import pytest
from emulator_support import MT5, Api, make_config

from airflow_provider_cplugin.emulator.data import (
    MT5_DEAL_BASE,
    MT5_LOGIN_BASE,
    MT5_POSITION_BASE,
    Dataset,
)
from airflow_provider_cplugin.emulator.rest_mt5 import groups_matching

P = f"/api/v2/MT5/{MT5}"
DS = Dataset(make_config())


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ("*", None),
        ("real\\*", {"real\\standard", "real\\pro"}),
        ("REAL\\*", {"real\\standard", "real\\pro"}),
        ("demo\\*,!demo\\pro", {"demo\\standard"}),
        ("*,!*", set()),
        ("real\\pro", {"real\\pro"}),
        ("nothing", set()),
    ],
)
def test_group_masks(mask: str, expected: set[str] | None) -> None:
    assert groups_matching(mask) == (None if expected is None else frozenset(expected))


async def test_time_user_symbol_group(api: Api) -> None:
    time_cfg = await api.data(f"{P}/TimeGet")
    assert time_cfg["timeZone"] == 120 and time_cfg["daylight"] is False
    user = await api.data(f"{P}/UserGet/{MT5_LOGIN_BASE + 3}")
    assert user == DS.mt5_user(3) and "eMail" in user
    assert (await api.get(f"{P}/UserGet/{MT5_LOGIN_BASE + 200}"))["error"]["code"] == "NotFound"
    assert (await api.data(f"{P}/SymbolGet/XAUUSD"))["digits"] == 2
    assert (await api.get(f"{P}/SymbolGet/NOPE"))["error"]["code"] == "NotFound"
    assert (await api.data(f"{P}/GroupGet/real%5Cpro"))["group"] == "real\\pro"
    assert (await api.get(f"{P}/GroupGet/nope"))["error"]["code"] == "NotFound"


async def test_positions_by_mask_paged(api: Api) -> None:
    rows, _ = await api.pages(f"{P}/PositionByGroup/real%5C*", limit=9)
    expected = [
        DS.mt5_position(k)
        for k in range(DS.mt5_position_count)
        if DS.mt5_user_group(DS.mt5_owner(k)).name.startswith("real\\")
    ]
    assert rows == expected and rows
    everything, pages = await api.pages(f"{P}/PositionByGroup/*", limit=30)
    assert [p["position"] for p in everything] == list(
        range(MT5_POSITION_BASE, MT5_POSITION_BASE + DS.mt5_position_count)
    )
    assert pages == 4


async def test_deals_and_orders(api: Api) -> None:
    deals, _ = await api.pages(f"{P}/DealByGroup/*", limit=400)
    assert [d["deal"] for d in deals] == list(range(MT5_DEAL_BASE, MT5_DEAL_BASE + DS.mt5_deal_count))
    assert deals[77] == DS.mt5_deal(77)
    assert [d["time"] for d in deals] == sorted(d["time"] for d in deals)
    orders = await api.data(f"{P}/OrderByGroup/*")
    assert len(orders) == DS.mt5_order_count and orders[0] == DS.mt5_order(0)
    none = await api.get(f"{P}/DealByGroup/nomatch")
    assert none["data"] == [] and none["meta"]["paging"] == {"nextCursor": None, "hasMore": False}


async def test_mt5_has_no_mt4_endpoints(api: Api) -> None:
    resp = await api.raw("GET", f"{P}/UsersRequest")
    assert resp.status == 404
