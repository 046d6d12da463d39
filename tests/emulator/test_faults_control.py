from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientConnectionError, ClientPayloadError
from aiohttp.test_utils import TestClient
from emulator_support import MT4, Api, ClientFactory, get_token

from airflow_provider_cplugin.emulator.faults import FaultRule, FaultStore

TIME = f"/api/v2/MT4/{MT4}/ServerTime"


async def set_faults(client: TestClient[Any, Any], rules: Any) -> Any:
    resp = await client.post("/_emulator/faults", json=rules)
    return resp.status, await resp.json()


async def test_429_with_retry_after_then_recovers(client: TestClient[Any, Any], api: Api) -> None:
    status, _ = await set_faults(client, [{"path": "ServerTime$", "status": 429, "retry_after": 2, "times": 2}])
    assert status == 200
    for _ in range(2):
        resp = await api.raw("GET", TIME)
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    assert (await api.raw("GET", TIME)).status == 200
    stats = await (await client.get("/_emulator/stats")).json()
    assert stats["faults_applied"] == 2 and stats["faults"] == []
    assert stats["statuses"] == {"429": 2, "200": 2}  # incl. the token request


async def test_malformed_body(client: TestClient[Any, Any], api: Api) -> None:
    await set_faults(client, [{"path": "ServerTime", "status": 200, "body": '{"data": [1, 2'}])
    resp = await api.raw("GET", TIME)
    assert resp.status == 200 and await resp.text() == '{"data": [1, 2'


async def test_envelope_error_rule(client: TestClient[Any, Any], api: Api) -> None:
    await set_faults(
        client,
        [{"path": "ServerTime", "envelope_error": {"code": "MT4Error", "managerCode": "NoConnect", "message": "x"}}],
    )
    body = await api.get(TIME)
    assert body["error"] == {"code": "MT4Error", "managerCode": "NoConnect", "message": "x"}


async def test_method_filter_redirect_and_delay(client: TestClient[Any, Any], api: Api) -> None:
    await set_faults(
        client,
        [
            {"path": "ServerTime", "method": "post", "status": 503},
            {"path": "ServerTime", "redirect": "http://elsewhere.invalid/", "status": 307},
        ],
    )
    resp = await api.raw("GET", TIME, allow_redirects=False)
    assert resp.status == 307 and resp.headers["Location"] == "http://elsewhere.invalid/"
    await set_faults(client, [{"path": "ServerTime", "delay_s": 0.3}])
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await api.get(TIME))["error"] is None
    assert loop.time() - started >= 0.3


async def test_faults_apply_to_the_token_endpoint(client: TestClient[Any, Any]) -> None:
    await set_faults(client, [{"path": "^/connect/token$", "status": 503}])
    resp = await client.post("/connect/token", data={"grant_type": "client_credentials"})
    assert resp.status == 503


async def test_drop_closes_the_connection(client: TestClient[Any, Any], api: Api) -> None:
    await set_faults(client, [{"path": "ServerTime", "drop": True}])
    with pytest.raises(ClientConnectionError):
        await (await api.raw("GET", TIME)).read()
    assert (await api.raw("GET", TIME)).status == 200


USERS = f"/api/v2/MT4/{MT4}/UsersRequest"


@pytest.mark.parametrize("users", [300, 12_345])  # one buffered answer, one streamed in chunks
async def test_truncate_cuts_the_body_mid_way(make_client: ClientFactory, users: int) -> None:
    client = await make_client(mt4_users=users)
    api = Api(client, await get_token(client))
    whole = await (await api.raw("GET", USERS)).read()
    await set_faults(client, [{"path": "UsersRequest$", "truncate": True}])
    resp = await api.raw("GET", USERS)
    assert resp.status == 200
    received = bytearray()
    with pytest.raises(ClientPayloadError):
        async for chunk in resp.content.iter_any():
            received += chunk
    assert 0 < len(received) < len(whole) and whole.startswith(bytes(received))
    assert (await api.raw("GET", USERS)).status == 200  # fired once


async def test_invalid_rules_are_rejected(client: TestClient[Any, Any]) -> None:
    for bad in ([{"status": 500}], [{"path": "(", "status": 500}], [{"path": "x", "bogus": 1}], {"rules": 3}):
        status, body = await set_faults(client, bad)
        assert status == 400 and body["error"]


async def test_append_and_reset(client: TestClient[Any, Any], api: Api) -> None:
    await set_faults(client, [{"path": "^/nowhere-a$", "status": 500}])
    _, body = await set_faults(client, {"rules": [{"path": "^/nowhere-b$", "status": 500}], "append": True})
    assert body["rules"] == 2
    await api.get(TIME)
    assert (await client.post("/_emulator/reset")).status == 200
    stats = await (await client.get("/_emulator/stats")).json()
    assert stats["faults"] == [] and stats["requests_total"] == 0 and stats["token_requests"] == 0


async def test_revoke_tokens_forces_refresh(client: TestClient[Any, Any], api: Api) -> None:
    assert (await api.raw("GET", TIME)).status == 200
    resp = await client.post("/_emulator/revoke-tokens")
    assert (await resp.json())["revoked"] == 1
    assert (await api.raw("GET", TIME)).status == 401
    fresh = Api(client, await get_token(client))
    assert (await fresh.raw("GET", TIME)).status == 200


async def test_stats_count_routes_and_tokens(client: TestClient[Any, Any], api: Api) -> None:
    await api.get(TIME)
    await api.get(TIME)
    await client.get("/api/v2/MT4/x/ServerTime")  # no token
    stats = await (await client.get("/_emulator/stats")).json()
    assert stats["token_requests"] == 1 and stats["tokens_issued"] == 1
    assert stats["requests"]["GET /api/v2/MT4/{tradePlatform}/ServerTime"] == 3
    assert stats["unauthorized"] == 1


def test_fault_store_consumes_times_in_order() -> None:
    store = FaultStore()
    store.set([FaultRule(path="x", times=1, status=500), FaultRule(path="x", times=None, status=502)])
    first = store.take("http", "GET", "/x")
    assert first is not None and first.status == 500
    for _ in range(3):
        rule = store.take("http", "GET", "/x")
        assert rule is not None and rule.status == 502
    assert store.take("hub", "GET", "/x") is None


# -- paging rewrites: the REAL answer of a paged call, broken in one precise way ------------------------------


async def page(api: Api, limit: int, cursor: str | None = None) -> dict[str, Any]:
    return await api.get(USERS, params={"limit": limit, **({"cursor": cursor} if cursor else {})})


def logins(body: dict[str, Any]) -> list[int]:
    return [row["login"] for row in body["data"]]


async def test_after_targets_the_nth_matching_request_whatever_fires_before(
    client: TestClient[Any, Any], api: Api
) -> None:
    # Rule 1 fires on page 1; rule 2 waits for page 2 even though rule 1 took page 1.
    await set_faults(
        client,
        [
            {"path": "UsersRequest$", "paging": {"drop_cursor": True}},
            {"path": "UsersRequest$", "after": 1, "paging": {"null_data": True}},
        ],
    )
    first = await page(api, 10)
    assert first["meta"]["paging"] == {"nextCursor": None, "hasMore": True} and len(first["data"]) == 10
    second = await page(api, 10)
    assert second["data"] is None and second["meta"]["paging"]["nextCursor"] is not None
    assert len((await page(api, 10))["data"]) == 10  # both rules used up
    stats = await (await client.get("/_emulator/stats")).json()
    assert stats["faults_applied"] == 2 and stats["faults"] == []


async def test_paging_rewrites_of_the_real_page(client: TestClient[Any, Any], api: Api) -> None:
    real = await page(api, 10)
    real_logins, cursor = logins(real), real["meta"]["paging"]["nextCursor"]
    assert real["meta"]["paging"]["hasMore"] is True

    await set_faults(client, [{"path": "UsersRequest$", "paging": {"null_data": True}}])
    body = await page(api, 10)
    assert body["data"] is None and body["meta"]["paging"] == {"nextCursor": cursor, "hasMore": True}

    await set_faults(client, [{"path": "UsersRequest$", "paging": {"extra_rows": 3}}])
    body = await page(api, 10)
    assert logins(body) == [*real_logins, *range(real_logins[-1] + 1, real_logins[-1] + 4)]
    assert body["meta"]["paging"]["nextCursor"] == cursor  # the 3 extra rows come again on page 2

    await set_faults(client, [{"path": "UsersRequest$", "paging": {"overlap": 4, "alter": {"name": "changed"}}}])
    body = await page(api, 10)
    assert logins(body) == real_logins
    assert [r["name"] for r in body["data"]][-4:] == ["changed"] * 4 and body["data"][:6] == real["data"][:6]
    following = logins(await page(api, 10, body["meta"]["paging"]["nextCursor"]))
    assert following[:5] == [*real_logins[-4:], real_logins[-1] + 1]

    await set_faults(client, [{"path": "UsersRequest$", "after": 1, "paging": {"repeat_cursor": True}}])
    await page(api, 10)
    body = await page(api, 10, cursor)
    assert body["meta"]["paging"]["nextCursor"] == cursor and len(body["data"]) == 10


async def test_empty_pages_hand_out_fresh_cursors_and_lose_nothing(client: TestClient[Any, Any], api: Api) -> None:
    expected = logins(await page(api, 1000))
    await set_faults(client, [{"path": "UsersRequest$", "after": 1, "times": 3, "paging": {"empty": True}}])
    seen: list[int] = []
    cursors: list[str] = []
    cursor = None
    for _ in range(20):
        body = await page(api, 100, cursor)
        seen += logins(body)
        cursor = body["meta"]["paging"]["nextCursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    assert seen == expected and len(expected) == 1000
    assert len(cursors) == len(set(cursors)) == 9 + 3  # the 9 real cursors and 3 empty pages' fresh ones


async def test_paging_rule_validation(client: TestClient[Any, Any], api: Api) -> None:
    for bad in (
        {"paging": {"bogus": True}},
        {"paging": {"extra_rows": -1}},
        {"paging": {"empty": "yes"}},
        {"paging": {"alter": {"name": "x"}}},  # alter needs overlap
        {"paging": {}},
        {"paging": {"null_data": True}, "status": 500},
        {"after": -1, "status": 500},
    ):
        status, body = await set_faults(client, [{"path": "UsersRequest$", **bad}])
        assert status == 400 and body["error"], bad
    # A paging rule on a route that is not paged answers a loud emulator error, not a silent real answer.
    await set_faults(client, [{"path": "UserRecordsRequest$", "paging": {"null_data": True}}])
    body = await api.get(f"/api/v2/MT4/{MT4}/UserRecordsRequest", params={"logins": 1001})
    assert body["error"]["code"] == "Internal" and "not paged" in body["error"]["message"]
