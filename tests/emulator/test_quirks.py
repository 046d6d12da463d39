"""Data quirks of the real service (emulator/quirks.py): each one as served, per request where it can be, and the
one switch (``$CPLUGIN_EMULATOR_QUIRKS``) that turns them on for a whole test run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from aiohttp.test_utils import TestClient
from emulator_support import MT4, MT5, Api, ClientFactory, get_token, make_config

from airflow_provider_cplugin.emulator.cli import build_parser, config_from_args
from airflow_provider_cplugin.emulator.data import DOTNET_MIN_TIME, MT5_LOGIN_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.emulator.quirks import ALL_QUIRKS, QUIRKS_ENV, parse_quirks

P4 = f"/api/v2/MT4/{MT4}"
P5 = f"/api/v2/MT5/{MT5}"
NAIVE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
ISO_ANY = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def datetimes(value: Any) -> list[str]:
    """Every ISO datetime string anywhere in a payload."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in datetimes(v)]
    if isinstance(value, list):
        return [t for v in value for t in datetimes(v)]
    return [value] if isinstance(value, str) and ISO_ANY.match(value) else []


def test_parse_quirks() -> None:
    assert parse_quirks("all") == frozenset(ALL_QUIRKS)
    assert parse_quirks(" Naive_Datetimes , dotnet_min_date ") == {"naive_datetimes", "dotnet_min_date"}
    assert parse_quirks("") == parse_quirks("none") == frozenset()
    with pytest.raises(ValueError, match="unknown emulator quirks \\['naive'\\]"):
        parse_quirks("naive")


def test_env_is_the_default_of_config_process_and_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(QUIRKS_ENV, "naive_datetimes,http400_validation")
    expected = {"naive_datetimes", "http400_validation"}
    assert make_config(quirks=parse_quirks("naive_datetimes,http400_validation")).quirks == expected
    assert Dataset(make_config()).config.quirks == frozenset()  # the support pins "no quirks"
    from airflow_provider_cplugin.emulator.config import EmulatorConfig

    assert EmulatorConfig().quirks == expected
    assert EmulatorProcess().quirks == expected
    assert EmulatorProcess(quirks=()).quirks == frozenset()
    assert config_from_args(build_parser().parse_args([])).quirks == expected
    args = build_parser().parse_args(["--quirks=dotnet_min_date", "--server-time-local"])
    assert config_from_args(args).quirks == {"dotnet_min_date", "local_server_time"}
    monkeypatch.setenv(QUIRKS_ENV, "bogus")
    with pytest.raises(ValueError, match="bogus"):
        EmulatorConfig()


def test_dates_as_dotnet_writes_them() -> None:
    plain = Dataset(make_config())
    quirky = Dataset(make_config(quirks=("dotnet_min_date", "naive_datetimes")))
    open_trade = quirky.mt4_open_trade(0)
    assert open_trade["closeTime"] == DOTNET_MIN_TIME == "0001-01-01T00:00:00"
    assert plain.mt4_open_trade(0)["closeTime"] == "1970-01-01T00:00:00Z"
    for row in (open_trade, quirky.mt4_closed_trade(3), quirky.mt5_order(0), quirky.mt5_user(1)):
        stamps = datetimes(row)
        assert stamps and all(NAIVE.match(t) for t in stamps), stamps
    # Same instants, only spelt without the offset.
    closed, closed_plain = quirky.mt4_closed_trade(3), plain.mt4_closed_trade(3)
    assert closed["openTime"] + "Z" == closed_plain["openTime"]
    # Daily reports are derived from the served trades: the spelling must not change them.
    day = plain.mt4_daily_days()[-1]
    assert list(quirky.mt4_daily_reports(5, [day])) == list(plain.mt4_daily_reports(5, [day]))
    only_min = Dataset(make_config(quirks=("dotnet_min_date",)))
    assert only_min.mt4_open_trade(0)["closeTime"] == DOTNET_MIN_TIME
    assert only_min.mt4_open_trade(0)["openTime"].endswith("Z")


async def test_served_dates_and_server_time(make_client: ClientFactory) -> None:
    client = await make_client(quirks=("dotnet_min_date", "naive_datetimes", "local_server_time"))
    api = Api(client, await get_token(client))
    ds = Dataset(make_config(quirks=("dotnet_min_date", "naive_datetimes", "local_server_time")))
    trades = await api.data(f"{P4}/TradesGet", params={"limit": 1})
    assert trades == [ds.mt4_open_trade(0)] and trades[0]["closeTime"] == DOTNET_MIN_TIME
    user = await api.data(f"{P5}/UserGet/{MT5_LOGIN_BASE + 2}")
    assert all(NAIVE.match(t) for t in datetimes(user))
    platforms = await (await api.raw("GET", "/api/TradePlatforms")).json()
    assert platforms[0]["created"] == "2024-01-01T00:00:00"
    before = datetime.now(UTC).timestamp()
    served = await api.data(f"{P4}/ServerTime")
    after = datetime.now(UTC).timestamp()
    assert NAIVE.match(served)
    # Server-local wall clock (UTC+2 by default), no offset.
    local = datetime.fromisoformat(served).replace(tzinfo=UTC).timestamp() - 2 * 3600
    assert int(before) <= local <= after + 1


async def _problem(client: TestClient[Any, Any], token: str, path: str, **kwargs: Any) -> tuple[int, str, Any]:
    resp = await client.get(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    return resp.status, resp.content_type, json.loads(await resp.text())


async def test_http400_validation_problem_details(make_client: ClientFactory) -> None:
    client = await make_client(quirks=("http400_validation",))
    token = await get_token(client)
    status, ctype, body = await _problem(client, token, f"{P4}/UsersRequest", params={"limit": "abc"})
    assert (status, ctype) == (400, "application/problem+json")
    assert body["status"] == 400 and body["title"] == "One or more validation errors occurred."
    assert body["errors"] == {"limit": ["The value 'abc' is not valid for limit."]}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", body["traceId"])
    status, _, body = await _problem(client, token, f"{P4}/UsersRequest", params={"limit": "9999"})
    assert status == 400 and list(body["errors"]) == ["limit"]
    # Other handled failures keep the envelope: only bad parameters change.
    status, _, body = await _problem(client, token, f"{P4}/UserRecordGet/1")
    assert status == 200 and body["error"]["code"] == "NotFound"


async def test_http400_validation_per_request_by_fault_rule(make_client: ClientFactory) -> None:
    client = await make_client()
    token = await get_token(client)
    rule = {"path": "UsersRequest$", "quirks": ["http400_validation"], "times": 1}
    assert (await client.post("/_emulator/faults", json={"rules": [rule]})).status == 200
    status, _, body = await _problem(client, token, f"{P4}/UsersRequest", params={"cursor": "!!"})
    assert status == 400 and list(body["errors"]) == ["cursor"]
    status, _, body = await _problem(client, token, f"{P4}/UsersRequest", params={"cursor": "!!"})
    assert status == 200 and body["error"]["code"] == "Validation"
    bad = {"path": "x", "quirks": ["naive_datetimes"]}
    resp = await client.post("/_emulator/faults", json={"rules": [bad]})
    assert resp.status == 400 and "quirks" in await resp.text()


def test_process_plays_its_quirks() -> None:
    with EmulatorProcess(users=5, mt5_users=5, quirks="all") as emu:
        assert emu.quirks == frozenset(ALL_QUIRKS)
        form = urlencode(
            {"grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret}
        )
        with urlopen(Request(f"{emu.url}/connect/token", data=form.encode())) as resp:
            token = json.loads(resp.read())["access_token"]
        request = Request(f"{emu.url}{P4}/UsersRequest?limit=0", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(HTTPError) as caught:
            urlopen(request)
        assert caught.value.code == 400 and caught.value.headers["Content-Type"].startswith("application/problem+json")
        request = Request(f"{emu.url}{P4}/ServerTime", headers={"Authorization": f"Bearer {token}"})
        with urlopen(request) as resp:
            assert NAIVE.match(json.loads(resp.read())["data"])
