from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from emulator_support import MT4, MT5, Api, ClientFactory, get_token, make_config

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE, Dataset

USERS = f"/api/v2/MT4/{MT4}/UsersRequest"


async def test_trade_platforms_is_a_bare_array(api: Api) -> None:
    resp = await api.raw("GET", "/api/TradePlatforms")
    assert resp.status == 200
    platforms = await resp.json()
    assert isinstance(platforms, list)
    assert {(p["id"], p["type"]) for p in platforms} == {(MT4, "MT4"), (MT5, "MT5")}
    for p in platforms:
        assert {"id", "name", "type", "login", "organizationId", "organization", "created"} <= set(p)


async def test_ping(api: Api) -> None:
    resp = await api.raw("GET", f"/api/TradePlatforms/{MT4}/Ping")
    assert resp.status == 200 and await resp.json() is True
    resp = await api.raw("GET", "/api/TradePlatforms/00000000-0000-0000-0000-000000000000/Ping")
    assert resp.status == 404


async def test_server_time_is_utc_now(api: Api) -> None:
    for platform, kind in ((MT4, "MT4"), (MT5, "MT5")):
        body = await api.get(f"/api/v2/{kind}/{platform}/ServerTime")
        assert "paging" not in body["meta"]
        served = datetime.fromisoformat(body["data"].replace("Z", "+00:00"))
        assert abs((served - datetime.now(UTC)).total_seconds()) < 5


async def test_user_record_get_and_request(api: Api) -> None:
    expected = Dataset(make_config()).mt4_user(7)
    for name in ("UserRecordGet", "UserRecordRequest"):
        body = await api.get(f"/api/v2/MT4/{MT4}/{name}/{MT4_LOGIN_BASE + 7}")
        assert body["error"] is None and "paging" not in body["meta"]
        assert body["data"] == expected


async def test_unknown_login_is_not_found_envelope(api: Api) -> None:
    for name in ("UserRecordGet", "UserRecordRequest"):
        body = await api.get(f"/api/v2/MT4/{MT4}/{name}/1")
        assert body["error"]["code"] == "NotFound"


async def test_bad_platforms(api: Api) -> None:
    unknown = await api.get("/api/v2/MT4/11111111-2222-4333-8444-555555555555/ServerTime")
    assert unknown["error"]["code"] == "NotFound"
    wrong_kind = await api.get(f"/api/v2/MT4/{MT5}/ServerTime")
    assert wrong_kind["error"]["code"] == "Validation"
    wrong_kind5 = await api.get(f"/api/v2/MT5/{MT4}/ServerTime")
    assert wrong_kind5["error"]["code"] == "Validation"
    malformed = await api.get("/api/v2/MT4/not-a-guid/ServerTime")
    assert malformed["error"]["code"] == "Validation"
    upper = await api.get(f"/api/v2/MT4/{MT4.upper()}/ServerTime")
    assert upper["error"] is None


async def test_users_request_pages_cover_every_login_once(api: Api) -> None:
    rows, pages = await api.pages(USERS, limit=300)
    logins = [r["login"] for r in rows]
    assert logins == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + 1000))
    assert pages == 4


async def test_users_request_exact_multiple_of_limit(api: Api) -> None:
    rows, pages = await api.pages(USERS, limit=250)
    assert len(rows) == 1000 and pages == 4  # last page is full and says hasMore=false


async def test_users_request_without_limit_returns_all_in_one_page(api: Api) -> None:
    body = await api.get(USERS)
    assert len(body["data"]) == 1000
    assert body["meta"]["paging"] == {"nextCursor": None, "hasMore": False}


async def test_users_request_large_streamed_body(make_client: ClientFactory) -> None:
    client = await make_client(mt4_users=12_345)
    api = Api(client, await get_token(client))
    body = await api.get(USERS)
    assert [r["login"] for r in body["data"]] == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + 12_345))
    assert body["meta"]["paging"]["hasMore"] is False


async def test_limit_validation(api: Api) -> None:
    for bad in ("5001", "0", "-1", "abc"):
        body = await api.get(USERS, params={"limit": bad})
        assert body["error"]["code"] == "Validation", bad
    assert len((await api.get(USERS, params={"limit": "5000"}))["data"]) == 1000


async def test_bad_cursor_is_validation(api: Api) -> None:
    body = await api.get(USERS, params={"limit": 10, "cursor": "%%%not-base64"})
    assert body["error"]["code"] == "Validation"


async def test_sdk_null_query_values_are_ignored(api: Api) -> None:
    body = await api.get(USERS, params={"limit": "null", "cursor": "null"})
    assert len(body["data"]) == 1000


async def test_users_request_is_deterministic_per_seed(make_client: ClientFactory) -> None:
    async def first_page(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
        api = Api(client, await get_token(client))
        return list((await api.get(USERS, params={"limit": 50}))["data"])

    a = await first_page(await make_client(seed=7))
    b = await first_page(await make_client(seed=7))
    c = await first_page(await make_client(seed=8))
    assert a == b
    assert a != c
    assert a == [Dataset(make_config(seed=7)).mt4_user(i) for i in range(50)]


async def test_never_redirects_and_unknown_route_is_404(api: Api) -> None:
    resp = await api.raw("GET", f"/api/v2/MT4/{MT4}/NoSuchEndpoint", allow_redirects=False)
    assert resp.status == 404


async def test_million_users_last_page_by_cursor(make_client: ClientFactory) -> None:
    import base64

    client = await make_client(mt4_users=1_000_000)
    api = Api(client, await get_token(client))
    cursor = base64.b64encode(str(MT4_LOGIN_BASE + 999_997).encode()).decode()
    body = await api.get(USERS, params={"limit": 5000, "cursor": cursor})
    assert [u["login"] for u in body["data"]] == [MT4_LOGIN_BASE + 999_998, MT4_LOGIN_BASE + 999_999]
    assert body["meta"]["paging"] == {"nextCursor": None, "hasMore": False}
    page = await api.get(USERS, params={"limit": 5000})
    assert len(page["data"]) == 5000 and page["meta"]["paging"]["hasMore"] is True
