"""Paging faults against both hooks: every answer that would make a list partial or duplicated is refused with an
error naming the API method and page, identically by the sync hook (with and without request-ahead) and the async
hook, which share :class:`PageTracker`. Faults rewrite the emulator's REAL paged answers (``paging`` rules)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.envelope import ApiResponse
from airflow_provider_cplugin.hooks.paging import MAX_EMPTY_PAGES, Page, PageTracker
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

from .support import envelope, v2

USERS = 1000  # the session emulator's MT4 users (tests/conftest.py)
ALL_LOGINS = list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + USERS))
MODES = ["sync-ahead", "sync", "async"]


@pytest.fixture
def emu(emulator: EmulatorProcess, airflow_conn: Any) -> Iterator[EmulatorProcess]:
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([])
    yield emulator
    emulator.set_faults([])


def users_requests(emu: EmulatorProcess) -> int:
    return sum(n for route, n in emu.stats()["requests"].items() if route.endswith("UsersRequest"))


def read_users(mode: str, limit: int = 100, **kwargs: Any) -> list[Page]:
    """Every page of ``UsersRequest`` through the hook ``mode`` names."""
    if mode == "async":

        async def collect() -> list[Page]:
            async with CPluginWebApiAsyncHook() as hook:
                path = await hook.v2_path("UsersRequest")
                return [page async for page in hook.paginate(path, limit=limit, **kwargs)]

        return asyncio.run(collect())
    hook = CPluginWebApiHook()
    path = hook.v2_path("UsersRequest")
    return list(hook.paginate(path, limit=limit, request_ahead=mode == "sync-ahead", **kwargs))


def logins(pages: list[Page]) -> list[int]:
    return [row["login"] for page in pages for row in page.items]


REFUSED = [
    pytest.param({"paging": {"drop_cursor": True}}, r"UsersRequest page 1: .*hasMore is true but nextCursor is missing",
                 id="hasMore-without-cursor"),
    pytest.param({"after": 2, "paging": {"null_data": True}}, r"UsersRequest page 3: data is null but .*announces more",
                 id="null-data-with-cursor"),
    pytest.param({"after": 1, "paging": {"extra_rows": 5}}, r"UsersRequest page 2: 105 rows for limit=100",
                 id="page-longer-than-limit"),
    pytest.param({"after": 1, "paging": {"repeat_cursor": True}}, r"UsersRequest page 2: returned cursor .* again",
                 id="repeated-cursor"),
]  # fmt: skip
# The users fit in 10 pages of 100: a bound a little above that turns a check that stopped working into a quick
# failure naming max_pages (which the expected message does not match), never a loop only pytest's timeout ends.
PAGE_BOUND = 12


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("rule", "error"), REFUSED)
def test_refused_identically_by_both_hooks(emu: EmulatorProcess, mode: str, rule: dict[str, Any], error: str) -> None:
    emu.set_faults([{"path": "UsersRequest$", **rule}])
    with pytest.raises(CPluginApiError, match=error) as excinfo:
        read_users(mode, max_pages=PAGE_BOUND)
    assert excinfo.value.method == "GET" and excinfo.value.path is not None
    assert excinfo.value.path.endswith("/UsersRequest") and excinfo.value.activity_id


@pytest.mark.parametrize("mode", MODES)
def test_a_few_empty_pages_with_cursors_lose_nothing(emu: EmulatorProcess, mode: str) -> None:
    # An empty page with a cursor is allowed: a server filtering a scanned window may answer one.
    emu.set_faults([{"path": "UsersRequest$", "after": 3, "times": 4, "paging": {"empty": True}}])
    pages = read_users(mode)
    assert logins(pages) == ALL_LOGINS
    assert [len(p.items) for p in pages] == [100] * 3 + [0] * 4 + [100] * 7
    assert [p.number for p in pages] == list(range(1, 15))


@pytest.mark.timeout(60)  # a backstop only: the assertions below bound the requests sent
@pytest.mark.parametrize("mode", MODES)
def test_endless_empty_pages_fail_fast(emu: EmulatorProcess, mode: str) -> None:
    emu.set_faults([{"path": "UsersRequest$", "after": 1, "times": None, "paging": {"empty": True}}])
    before = users_requests(emu)
    refused = rf"UsersRequest page {MAX_EMPTY_PAGES + 2}: {MAX_EMPTY_PAGES + 1} empty pages in a row"
    with pytest.raises(CPluginApiError, match=refused):
        read_users(mode)
    # Page 1 real, then MAX_EMPTY_PAGES tolerated, the next refused; request-ahead may have sent two more.
    assert MAX_EMPTY_PAGES + 2 <= users_requests(emu) - before <= MAX_EMPTY_PAGES + 4


@pytest.mark.parametrize("mode", MODES)
def test_endless_cursor_loop_fails_fast(emu: EmulatorProcess, mode: str) -> None:
    # Every page from the third on sends the client back to the cursor it came with: caught at page 3. Without
    # the check the loop would be endless: PAGE_BOUND ends it with an error this match refuses.
    emu.set_faults([{"path": "UsersRequest$", "after": 2, "times": None, "paging": {"repeat_cursor": True}}])
    before = users_requests(emu)
    with pytest.raises(CPluginApiError, match=r"UsersRequest page 3: returned cursor .* again"):
        read_users(mode, max_pages=PAGE_BOUND)
    assert 3 <= users_requests(emu) - before <= 5


@pytest.mark.parametrize("mode", MODES)
def test_max_pages_bounds_the_read(emu: EmulatorProcess, mode: str) -> None:
    with pytest.raises(CPluginApiError, match=r"UsersRequest page 4: announces more pages but max_pages=4"):
        read_users(mode, max_pages=4)
    assert logins(read_users(mode, max_pages=10)) == ALL_LOGINS  # exactly 10 pages: the bound is not hit


@pytest.mark.parametrize("mode", MODES)
def test_overlap_is_invisible_to_the_hook(emu: EmulatorProcess, mode: str) -> None:
    # Without keys the hook cannot tell repeated rows from new ones: the landing's key check catches them
    # (tests/integrity/test_rest_paging.py). Here: the hook hands over exactly what was served.
    emu.set_faults([{"path": "UsersRequest$", "after": 1, "paging": {"overlap": 30}}])
    served = logins(read_users(mode))
    assert served == ALL_LOGINS[:200] + ALL_LOGINS[170:]


# -- PageTracker decisions the emulator does not reach ---------------------------------------------------------


def answer(data: Any, cursor: str | None, has_more: bool) -> ApiResponse:
    return ApiResponse(data=data, activity_id="a" * 32, next_cursor=cursor, has_more=has_more)


def test_tracker_accepts_a_null_last_page_and_ignores_a_cursor_without_has_more() -> None:
    tracker = PageTracker("GET", "/api/v2/MT4/tp/UsersRequest", limit=2)
    assert tracker.page(answer([{"login": 1}], "c1", True)).next_cursor == "c1"
    last = tracker.page(answer(None, None, False))
    assert last.items == [] and tracker.done
    tracker = PageTracker("GET", "/api/v2/MT4/tp/UsersRequest", limit=2)
    assert tracker.page(answer([{"login": 1}], "c1", False)).next_cursor is None and tracker.done


@pytest.mark.parametrize(
    ("data", "cursor", "has_more", "error"),
    [
        (None, "c9", False, r"page 2: data is null but"),  # a cursor alone announces more too
        ({"login": 3}, None, False, r"page 2: paged response data is a dict"),
        ([{"login": 1}], "c9", True, r"page 2: repeats page 1 row for row under a new cursor"),
    ],
)
def test_tracker_refusals(data: Any, cursor: str | None, has_more: bool, error: str) -> None:
    tracker = PageTracker("GET", "/api/v2/MT5/tp/OrderByGroup/%2A", limit=2)
    tracker.page(answer([{"login": 1}], "c1", True))
    with pytest.raises(CPluginApiError, match=rf"^CPlugin WebAPI error Internal: OrderByGroup {error}"):
        tracker.page(answer(data, cursor, has_more))


def test_tracker_argument_checks() -> None:
    for bad in (0, 5001, True):
        with pytest.raises(ValueError, match="limit"):
            PageTracker("GET", "/x", limit=bad)
    for bad_pages in (0, -1, True):
        with pytest.raises(ValueError, match="max_pages"):
            PageTracker("GET", "/x", limit=1, max_pages=bad_pages)


@pytest.mark.usefixtures("mock_conn")
def test_same_page_under_fresh_cursors_stops_at_page_two(api: rm.Mocker) -> None:
    # A server walking nowhere with a new cursor each time defeats the repeated-cursor check; the page repeat
    # check stops it after two requests instead of when memory runs out.
    pages = iter(range(10**9))
    api.get(
        v2("UsersRequest"),
        json=lambda request, context: envelope(
            [{"login": 1}, {"login": 2}], paging={"nextCursor": f"c{next(pages)}", "hasMore": True}
        ),
    )
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError, match="UsersRequest page 2: repeats page 1"):
        list(hook.paginate(hook.v2_path("UsersRequest"), limit=2, request_ahead=False))
    assert sum(1 for r in api.request_history if "UsersRequest" in r.url) == 2


def test_fetch_ahead_holds_at_most_one_request_ahead_and_reraises() -> None:
    # The one fetch-ahead (paging.paginate_ahead): page n+1 is requested while page n is consumed, never more; an
    # error of a request reaches the consumer in page order.
    from airflow_provider_cplugin.hooks.call import Call
    from airflow_provider_cplugin.hooks.paging import paginate_ahead
    from airflow_provider_cplugin.hooks.reply import Reply
    from airflow_provider_cplugin.hooks.retry import RetryPolicy

    sent: list[str | None] = []

    def fetch(query: dict[str, Any]) -> tuple[Call, Reply]:
        cursor = query.get("cursor")
        sent.append(cursor)
        n = int(cursor or 0)
        if n == 4:
            raise RuntimeError("page 5 failed")
        paging = {"nextCursor": str(n + 1), "hasMore": True}
        body = json.dumps({"data": [{"login": n}], "error": None, "meta": {"paging": paging}})
        call = Call("GET", "/api/v2/MT4/tp/UsersRequest", params=query, json_body=None, headers=None,
                    idempotency_key=None, timeout=30, policy=RetryPolicy(), logger=logging.getLogger("t"))  # fmt: skip
        return call, Reply(200, body.encode())

    pages = paginate_ahead(fetch, PageTracker("GET", "/api/v2/MT4/tp/UsersRequest", 10), None)
    got = []
    with pytest.raises(RuntimeError, match="page 5 failed"):
        for page in pages:
            got.append(page.items[0]["login"])
            assert len(sent) <= len(got) + 1  # what was consumed, plus one request ahead
    assert got == [0, 1, 2, 3]
