"""Pure data generators: determinism, internal consistency and the index <-> time mapping."""

from __future__ import annotations

from emulator_support import ANCHOR, make_config

from airflow_provider_cplugin.emulator.data import (
    MT4_GROUP_BY_NAME,
    MT4_LOGIN_BASE,
    MT4_TICKET_BASE,
    MT5_GROUP_BY_NAME,
    SYMBOL_BY_NAME,
    Dataset,
)


def test_same_seed_same_records_other_seed_differs() -> None:
    a, b, c = Dataset(make_config(seed=1)), Dataset(make_config(seed=1)), Dataset(make_config(seed=2))
    for i in (0, 17, 999):
        assert a.mt4_user(i) == b.mt4_user(i) and a.mt4_closed_trade(i) == b.mt4_closed_trade(i)
        assert a.mt5_deal(i) == b.mt5_deal(i)
    assert [a.mt4_user(i) for i in range(20)] != [c.mt4_user(i) for i in range(20)]


def test_field_names_match_the_sdk_models() -> None:
    ds = Dataset(make_config())
    assert "email" in ds.mt4_user(0) and "eMail" in ds.mt5_user(0)
    assert {"order", "login", "tradeCommand", "volumeLots", "tradeRecordState", "timeStamp", "marginRate"} <= set(
        ds.mt4_closed_trade(0)
    )
    assert ds.mt5_deal(0)["deal"] > 0


def test_trades_reference_existing_logins_groups_and_symbols() -> None:
    ds = Dataset(make_config(mt4_users=300))
    for j in range(ds.mt4_open_count):
        t = ds.mt4_open_trade(j)
        assert ds.mt4_user_index(t["login"]) is not None
        assert t["symbol"] in SYMBOL_BY_NAME and t["tradeRecordState"] == "OpenNormal"
        assert t["closeTime"] == "1970-01-01T00:00:00Z"
    for i in range(0, ds.mt4_closed_count, 7):
        t = ds.mt4_closed_trade(i)
        assert ds.mt4_user_index(t["login"]) is not None
        assert t["symbol"] in SYMBOL_BY_NAME or (t["tradeCommand"] == "Balance" and t["symbol"] == "")
        assert t["openTime"] <= t["closeTime"] == t["timeStamp"]
    for k in range(ds.mt5_position_count):
        p = ds.mt5_position(k)
        assert ds.mt5_user_index(p["login"]) is not None
    for i in range(50):
        assert ds.mt4_user(i)["group"] in MT4_GROUP_BY_NAME and ds.mt5_user(i)["group"] in MT5_GROUP_BY_NAME


def test_user_trade_slots_are_exact() -> None:
    ds = Dataset(make_config(mt4_users=97))
    owned: dict[int, list[int]] = {}
    for i in range(ds.mt4_closed_count):
        owned.setdefault(ds.mt4_trade_owner(i), []).append(i)
    for user, indexes in owned.items():
        assert list(ds.mt4_closed_trade_indexes(user)) == indexes
    assert len(owned) == 97  # every user has history


def test_close_times_are_monotonic_and_bisectable() -> None:
    ds = Dataset(make_config())
    times = [ds.mt4_closed_time(i) for i in range(ds.mt4_closed_count)]
    assert times == sorted(times)
    assert times[0] >= ANCHOR - 90 * 86_400 and times[-1] < ANCHOR
    for ts in (times[0] - 1, times[0], times[1234], times[1234] + 1, ANCHOR):
        i = ds.mt4_closed_index_at(ts)
        assert all(t < ts for t in times[:i]) and all(t >= ts for t in times[i:])


def test_margin_level_derives_from_balance_and_open_trades() -> None:
    ds = Dataset(make_config())
    with_trades = ds.mt4_trade_owner(3)
    level = ds.mt4_margin_level(with_trades)
    assert level is not None
    assert level["balance"] == ds.mt4_user(with_trades)["balance"]
    assert abs(level["free"] - (level["equity"] - level["margin"])) < 0.011
    assert level["levelType"] in {"Ok", "MarginCall", "StopOut"}
    # Users beyond the open-trade slots have no open trades -> no margin level.
    without = ds.mt4_trade_owner(ds.mt4_open_count)
    assert not ds.mt4_open_trade_indexes(without) and ds.mt4_margin_level(without) is None


def test_million_users_cost_nothing_until_read() -> None:
    ds = Dataset(make_config(mt4_users=1_000_000, trades_per_user=5))
    assert ds.mt4_closed_count == 5_000_000
    last = ds.mt4_user(999_999)
    assert last["login"] == MT4_LOGIN_BASE + 999_999
    t = ds.mt4_closed_trade(4_999_999)
    assert t["order"] == MT4_TICKET_BASE + 4_999_999 and ds.mt4_user_index(t["login"]) is not None
