"""REST transport, auth and server faults, each injected at the emulator and run through a real operator.

Every case ends one of two ways, checked against the emulator's generators and counters (never the operator's
own summary):

* recovered: the landing holds exactly the rows the generators serve for that call (keys in served order, none
  twice, content columns equal) and no hidden temporary; the emulator's counters show the fault fired and how
  many requests recovering it took;
* failed: a typed error with the right code that names the call, and no file at all (final or temporary) under
  the landing directory.

Three operators cover the REST landings: MT4 users (cursor-paged ``UsersRequest``), MT4 trade history over an
interval (``UsersRequest`` pages → ``ReportsRequest`` per 200 logins), MT5 open orders (``OrderByGroup`` then
``PositionByGroup``). Fault rules match the request path, so "page n" is the n-th request of the method.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_cplugin.emulator.auth import unauthorized
from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE, MT5_ORDER_BASE, Dataset
from airflow_provider_cplugin.emulator.envelope import encode_cursor
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError
from airflow_provider_cplugin.hooks import webapi
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.convert import SchemaDriftError
from airflow_provider_cplugin.parquet.schemas import EXTRA_COLUMN, MT4_TRADE_HISTORY, MT4_USER, MT5_ORDER, MT5_POSITION

from .support import (
    ANCHOR,
    PINNED,
    Expected,
    Landing,
    Row,
    assert_landed_exactly,
    connection_json,
    emulator_for,
    landed_keys,
    on_request,
    requests_to,
    run_operator,
)

USERS_PAGE = 500  # 3000 users: 6 pages
LOGINS_PER_REQUEST = 200  # 3 ReportsRequest calls per users page: 18 in all
MT5_PAGE = 15  # 40 orders: 3 pages; 200 positions: 14 pages
_ANCHOR_DT = datetime.fromtimestamp(ANCHOR, UTC)
HISTORY = (_ANCHOR_DT - timedelta(hours=48), _ANCHOR_DT - timedelta(hours=24))
RETRY_AFTER = 7  # seconds; far from every backoff delay, so a recorded 7.0 can only be the header honoured
BACKOFF = [(0.375, 0.625), (0.75, 1.25)]  # 0.5 s x 2^n with ±25 % jitter, first and second retry
SHORT_TIMEOUT = 1.0


# --------------------------------------------------------------------------- what each operator is served


def _users_page(ds: Dataset, n: int) -> tuple[list[Row], str | None]:
    lo, hi = (n - 1) * USERS_PAGE, min(n * USERS_PAGE, ds.mt4_user_count)
    cursor = encode_cursor(MT4_LOGIN_BASE + hi - 1) if hi < ds.mt4_user_count else None
    return [ds.mt4_user(i) for i in range(lo, hi)], cursor


def _orders_page(ds: Dataset, n: int) -> tuple[list[Row], str | None]:
    lo, hi = (n - 1) * MT5_PAGE, min(n * MT5_PAGE, ds.mt5_order_count)
    cursor = encode_cursor(MT5_ORDER_BASE + hi - 1) if hi < ds.mt5_order_count else None
    return [ds.mt5_order(k) for k in range(lo, hi)], cursor


def _login_chunks(ds: Dataset) -> list[range]:
    """User indexes of each ReportsRequest, in request order: every users page split in chunks of logins."""
    chunks = []
    for page_start in range(0, ds.mt4_user_count, USERS_PAGE):
        page_end = min(page_start + USERS_PAGE, ds.mt4_user_count)
        chunks += [
            range(lo, min(lo + LOGINS_PER_REQUEST, page_end)) for lo in range(page_start, page_end, LOGINS_PER_REQUEST)
        ]
    return chunks


def _history_by_chunk(ds: Dataset) -> list[list[Row]]:
    """Closed trades in the half-open HISTORY interval, per ReportsRequest, ticket ascending."""
    lo, hi = (ds.mt4_closed_index_at(int(t.timestamp())) for t in HISTORY)
    chunks = _login_chunks(ds)
    chunk_of = {u: c for c, users in enumerate(chunks) for u in users}
    served: list[list[Row]] = [[] for _ in chunks]
    for i in range(lo, hi):  # ascending index = ascending ticket
        served[chunk_of[ds.mt4_trade_owner(i)]].append(ds.mt4_closed_trade(i))
    return served


@dataclass(frozen=True)
class Target:
    """One operator run: what it is served, and the request the faults hit."""

    name: str
    method: str  # API method whose `page`-th request the faults hit
    page: int
    clean_requests: Callable[[Dataset], int]  # requests of `method` in a run without faults
    operator: Callable[[str], BaseSnapshotOperator]
    expected: Callable[[Dataset], list[Expected]]
    faulted_page: Callable[[Dataset], tuple[list[Row], str | None]]  # the hit answer's real rows + next cursor
    paged: bool  # the hit answer carries meta.paging
    faulted_entity: Any
    bad_field: tuple[str, Any]  # a field and a value no coercion makes fit

    @property
    def path(self) -> str:
        return rf"/{self.method}(/|$)"

    def rules(self, times: int | None = 1, **effect: Any) -> list[dict[str, Any]]:
        return on_request(self.path, self.page, times, **effect)

    def run(self, landing: Landing) -> Any:
        return run_operator(self.operator(landing.url), interval=HISTORY)

    def replay(self, ds: Dataset, change: Callable[[int, Row], Row]) -> str:
        """The real body of the hit answer with each record passed through ``change(position, record)``."""
        rows, cursor = self.faulted_page(ds)
        assert rows, f"{self.name}: the faulted answer must carry records to drift"
        meta: dict[str, Any] = {"activityId": "d" * 32}
        if self.paged:
            meta["paging"] = {"nextCursor": cursor, "hasMore": cursor is not None}
        data = [change(n, dict(r)) for n, r in enumerate(rows)]
        return json.dumps({"data": data, "error": None, "meta": meta})


USERS = Target(
    name="mt4-users",
    method="UsersRequest",
    page=3,
    clean_requests=lambda ds: -(-ds.mt4_user_count // USERS_PAGE),
    operator=lambda url: UsersSnapshotOperator(task_id="users", output_path=url, page_size=USERS_PAGE),
    expected=lambda ds: [
        Expected(
            MT4_USER,
            [ds.mt4_user(i) for i in range(ds.mt4_user_count)],
            ("group", "name", "balance", "leverage", "registrationDate"),
        )
    ],
    faulted_page=lambda ds: _users_page(ds, 3),
    paged=True,
    faulted_entity=MT4_USER,
    bad_field=("leverage", "high"),
)
HISTORY_TARGET = Target(
    name="mt4-history",
    method="ReportsRequest",
    page=3,
    clean_requests=lambda ds: len(_login_chunks(ds)),
    operator=lambda url: TradeHistoryOperator(
        task_id="history",
        output_path=url,
        page_size=USERS_PAGE,
        logins_per_request=LOGINS_PER_REQUEST,
        method="reports",
    ),
    expected=lambda ds: [
        Expected(
            MT4_TRADE_HISTORY,
            [t for chunk in _history_by_chunk(ds) for t in chunk],
            ("login", "symbol", "tradeCommand", "closeTime", "profit"),
        )
    ],
    faulted_page=lambda ds: (_history_by_chunk(ds)[2], None),
    paged=False,
    faulted_entity=MT4_TRADE_HISTORY,
    bad_field=("profit", "lots"),
)
MT5_OPEN = Target(
    name="mt5-open-orders",
    method="OrderByGroup",
    page=2,
    clean_requests=lambda ds: -(-ds.mt5_order_count // MT5_PAGE),
    operator=lambda url: OpenOrdersSnapshotOperator(
        task_id="open_orders", cplugin_conn_id="cplugin_mt5", output_path=url, page_size=MT5_PAGE
    ),
    expected=lambda ds: [
        Expected(
            MT5_ORDER,
            [ds.mt5_order(k) for k in range(ds.mt5_order_count)],
            ("login", "symbol", "type", "priceOrder", "timeSetup"),
        ),
        Expected(
            MT5_POSITION,
            [ds.mt5_position(k) for k in range(ds.mt5_position_count)],
            ("login", "symbol", "action", "priceOpen", "timeCreate"),
        ),
    ],
    faulted_page=lambda ds: _orders_page(ds, 2),
    paged=True,
    faulted_entity=MT5_ORDER,
    bad_field=("priceOrder", "n/a"),
)
TARGETS = (USERS, HISTORY_TARGET, MT5_OPEN)
LABEL = {USERS.name: "MT4 users", HISTORY_TARGET.name: "MT4 trade history", MT5_OPEN.name: "MT5 open orders"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with emulator_for(PINNED) as process:
        yield process


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(PINNED)


Connect = Callable[..., EmulatorProcess]


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Connect:
    """``connect(emu, **extras)``: ``cplugin_default`` → its MT4 platform, ``cplugin_mt5`` → its MT5 platform."""

    def define(process: EmulatorProcess, **extras: Any) -> EmulatorProcess:
        monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", connection_json(process, **extras))
        monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_MT5", connection_json(process, process.mt5_trade_platform, **extras))
        return process

    return define


@pytest.fixture(autouse=True)
def fresh(emu: EmulatorProcess, connect: Connect) -> Iterator[None]:
    """Each case starts from zeroed counters, no fault rule, empty token caches and a plain connection."""
    emu.reset()
    clear_token_caches()
    connect(emu)
    yield
    emu.set_faults([])
    clear_token_caches()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The hook's retry waits, recorded instead of slept (the hook's own test seam)."""
    recorded: list[float] = []
    monkeypatch.setattr(webapi, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    return Landing(tmp_path / "landing")


def assert_waits(sleeps: list[float], expected: list[tuple[float, float]]) -> None:
    assert len(sleeps) == len(expected), f"retry waits {sleeps}, expected {expected}"
    for waited, (lo, hi) in zip(sleeps, expected, strict=True):
        assert lo <= waited <= hi, f"retry waited {waited}s, expected within [{lo}, {hi}]"


# --------------------------------------------------------------------------- faults the hook recovers from


@dataclass(frozen=True)
class Recovered:
    id: str
    area: str
    fault: str  # "{page}" is filled in with the target's page
    effect: dict[str, Any]
    times: int = 1
    extra_requests: int = 1  # requests of the method beyond a clean run
    waits: list[tuple[float, float]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # connection extras
    how: str = "retried"


RECOVERED = [
    Recovered("401-once", "REST auth", "401 on page {page}, once", {"status": 401}, how="token refreshed, re-sent"),
    Recovered(
        "429-retry-after",
        "REST server",
        f"429 + Retry-After: {RETRY_AFTER} on page {{page}}",
        {"status": 429, "retry_after": RETRY_AFTER},
        waits=[(RETRY_AFTER, RETRY_AFTER)],
        how="retried after exactly Retry-After",
    ),
    Recovered("503-burst", "REST server", "503 burst (2) on page {page}", {"status": 503}, 2, 2, BACKOFF),
    Recovered("drop", "REST transport", "connection dropped on page {page}", {"drop": True}, waits=BACKOFF[:1]),
    Recovered("truncate", "REST transport", "body truncated on page {page}", {"truncate": True}, waits=BACKOFF[:1]),
    Recovered(
        "slow-within",
        "REST transport",
        f"page {{page}} answers after 0.3 s (timeout {SHORT_TIMEOUT:g} s)",
        {"delay_s": 0.3},
        extra_requests=0,
        extras={"timeout": SHORT_TIMEOUT},
        how="waited",
    ),
]


def _recovered_params() -> list[Any]:
    return [
        pytest.param(
            case,
            target,
            id=f"{case.id}-{target.name}",
            marks=pytest.mark.matrix(
                area=case.area,
                fault=f"{LABEL[target.name]}: {case.fault.format(page=target.page)}",
                expected=f"{case.how}; lands exactly the served rows, no duplicate, no temporary",
            ),
        )
        for case in RECOVERED
        for target in TARGETS
    ]


@pytest.mark.parametrize(("case", "target"), _recovered_params())
def test_recovered_fault_lands_exactly_what_was_served(
    case: Recovered,
    target: Target,
    emu: EmulatorProcess,
    ds: Dataset,
    connect: Connect,
    landing: Landing,
    sleeps: list[float],
) -> None:
    connect(emu, **case.extras)
    emu.set_faults(target.rules(case.times, **case.effect))
    target.run(landing)

    assert_landed_exactly(landing, target.expected(ds))
    stats = emu.stats()
    assert stats["faults"] == [] and stats["faults_applied"] == target.page - 1 + case.times  # the fault fired
    assert requests_to(emu, target.method) == target.clean_requests(ds) + case.extra_requests
    assert_waits(sleeps, case.waits)
    if case.id == "401-once":
        assert stats["token_requests"] == 2  # the first token, then one forced refresh


# --------------------------------------------------------------------------- faults that must fail the run


@dataclass(frozen=True)
class Failed:
    id: str
    area: str
    fault: str
    effect: dict[str, Any]
    code: str  # CPluginApiError.code
    status: int | None  # CPluginApiError.status
    times: int | None = None  # None: every request from the hit one on
    requests: int = 1  # requests of the method from the hit one on
    waits: list[tuple[float, float]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    match: str = ""


ENVELOPE = {"code": "MT4Error", "managerCode": "NoConnect", "message": "Trade server is not connected"}
FAILED = [
    Failed(
        "401-always",
        "REST auth",
        "401 on every request from page {page}",
        {"status": 401},
        "Forbidden",
        401,
        requests=2,
    ),
    Failed(
        "503-beyond-attempts",
        "REST server",
        "503 on every attempt at page {page}",
        {"status": 503},
        "Internal",
        503,
        requests=3,
        waits=BACKOFF,
    ),
    Failed(
        "429-beyond-attempts",
        "REST server",
        "429 + Retry-After: 1 on every attempt at page {page}",
        {"status": 429, "retry_after": 1},
        "Internal",
        429,
        requests=3,
        waits=[(1, 1), (1, 1)],
    ),
    Failed("500-once", "REST server", "500 on page {page} (not retryable)", {"status": 500}, "Internal", 500, times=1),
    Failed(
        "envelope-error",
        "REST server",
        "error envelope (MT4Error/NoConnect) on page {page}",
        {"envelope_error": ENVELOPE},
        "MT4Error",
        200,
        times=1,
        match="Trade server is not connected",
    ),
    Failed(
        "malformed-json",
        "REST server",
        "malformed JSON on page {page}",
        {"status": 200, "body": '{"data": [{"login": 1'},
        "Internal",
        200,
        times=1,
        match="malformed JSON",
    ),
    Failed(
        "drop-always",
        "REST transport",
        "connection dropped on every attempt at page {page}",
        {"drop": True},
        "Transport",
        None,
        requests=3,
        waits=BACKOFF,
        match="after 3 attempt",
    ),
    Failed(
        "truncate-always",
        "REST transport",
        "body truncated on every attempt at page {page}",
        {"truncate": True},
        "Transport",
        None,
        requests=3,
        waits=BACKOFF,
        match="after 3 attempt",
    ),
    Failed(
        "slow-beyond",
        "REST transport",
        f"page {{page}} answers after 2 s (timeout {SHORT_TIMEOUT:g} s)",
        {"delay_s": 2.0},
        "Timeout",
        None,
        times=1,
        extras={"timeout": SHORT_TIMEOUT},
        match="deadline",
    ),
]


def _failed_params() -> list[Any]:
    return [
        pytest.param(
            case,
            target,
            id=f"{case.id}-{target.name}",
            marks=pytest.mark.matrix(
                area=case.area,
                fault=f"{LABEL[target.name]}: {case.fault.format(page=target.page)}",
                expected=f"CPluginApiError({case.code}) naming the call; nothing landed",
            ),
        )
        for case in FAILED
        for target in TARGETS
    ]


@pytest.mark.parametrize(("case", "target"), _failed_params())
def test_unrecoverable_fault_fails_clearly_and_lands_nothing(
    case: Failed,
    target: Target,
    emu: EmulatorProcess,
    ds: Dataset,
    connect: Connect,
    landing: Landing,
    sleeps: list[float],
) -> None:
    connect(emu, **case.extras)
    emu.set_faults(target.rules(case.times, **case.effect))
    with pytest.raises(CPluginApiError) as caught:
        target.run(landing)

    err = caught.value
    assert (err.code, err.status, err.method) == (case.code, case.status, "GET")
    assert err.path is not None and f"/{target.method}" in err.path
    assert f"error {case.code}" in str(err) and f"GET {err.path}" in str(err)
    assert case.match in str(err)
    if case.id == "envelope-error":
        assert err.manager_code == ENVELOPE["managerCode"] and err.description == ENVELOPE["message"]
    landing.assert_nothing_landed()
    assert requests_to(emu, target.method) == target.page - 1 + case.requests
    assert emu.stats()["faults_applied"] == target.page - 1 + case.requests
    assert_waits(sleeps, case.waits)
    if case.id == "401-always":
        assert emu.stats()["token_requests"] == 2  # one forced refresh, not a refresh loop


# --------------------------------------------------------------------------- tokens


def _each_target(area: str, fault: str, expected: str) -> list[Any]:
    """One parameter per target; ``{page}`` in ``fault`` is the target's hit page."""
    return [
        pytest.param(
            target,
            id=target.name,
            marks=pytest.mark.matrix(
                area=area, fault=f"{LABEL[target.name]}: {fault.format(page=target.page)}", expected=expected
            ),
        )
        for target in TARGETS
    ]


REVOKE_WINDOW = 2.0  # seconds the hit request waits at the emulator, during which the tokens are revoked


@contextmanager
def revoked_while_held(emu: EmulatorProcess, target: Target) -> Iterator[list[int]]:
    """Revoke every token while the target's hit request is held at the emulator (its rules carry ``delay_s``).

    The request is held REVOKE_WINDOW s before the emulator checks its token; the revocation happens as soon as
    the target's rules are used up (= the request arrived). A revocation that came too late would show as no 401,
    which the tests assert, so a slow machine fails loudly rather than passing by luck.
    """
    done = threading.Event()
    revoked: list[int] = []

    def revoke_when_held() -> None:
        while not done.is_set():
            if not any(rule["path"] == target.path for rule in emu.faults()):
                revoked.append(emu.revoke_tokens())
                return
            done.wait(0.01)

    watcher = threading.Thread(target=revoke_when_held, daemon=True)
    watcher.start()
    try:
        yield revoked
    finally:
        done.set()
        watcher.join()


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "every token revoked while page {page} is in flight",
        "401 → token refreshed, page re-sent; lands exactly the served rows",
    ),
)
def test_token_revoked_mid_run(target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing) -> None:
    emu.set_faults(target.rules(delay_s=REVOKE_WINDOW))
    with revoked_while_held(emu, target) as revoked:
        target.run(landing)

    assert revoked and revoked[0] >= 1
    assert_landed_exactly(landing, target.expected(ds))
    stats = emu.stats()
    assert stats["unauthorized"] >= 1 and stats["token_requests"] >= 2
    assert requests_to(emu, target.method) == target.clean_requests(ds) + 1  # the held page, once more


@contextmanager
def revoked_on_401(emu: EmulatorProcess, target: Target) -> Iterator[list[int]]:
    """Revoke every token at the emulator the moment the client receives a 401 for the target's method.

    Runs in the client's thread between the 401 and the hook's refresh, so the rejected token is dead for real
    when the hook decides what to re-send: no wall clock involved.
    """
    revoked: list[int] = []
    pattern = re.compile(target.path)
    real = requests.Session.request

    def request(self: requests.Session, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        resp = real(self, method, url, *args, **kwargs)
        if resp.status_code == 401 and pattern.search(urlsplit(url).path):
            revoked.append(emu.revoke_tokens())
        return resp

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "request", request)
        yield revoked


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "token expired at page {page} (the API's expired-token 401; the token is dead from then on)",
        "401 → token refreshed once, page re-sent with the new token; lands exactly the served rows",
    ),
)
def test_token_expires_mid_run(target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing) -> None:
    """The page-th request of the method meets the emulator's own expired-token answer, and from that moment its
    token is revoked server-side. Deterministic (a 1 s token lifetime used to make this depend on the machine's
    speed: under load the refreshed token expired too before the re-sent page was checked).

    Bugs caught: no refresh on 401 (the run fails); the re-send carrying the rejected token (the bearer check
    answers 401 again: ``unauthorized`` would be 1 and the run fails); a refresh loop or a refresh per page
    (``tokens_issued`` > 2); the page skipped or landed twice instead of re-sent (landed rows differ).
    """
    expired = unauthorized("expired")
    emu.set_faults(
        [{"path": target.path, "after": target.page - 1, "status": 401, "body": "", "headers": dict(expired.headers)}]
    )
    with revoked_on_401(emu, target) as revoked:
        target.run(landing)

    assert len(revoked) == 1 and revoked[0] >= 1  # one 401 reached the client, and tokens were revoked then
    assert_landed_exactly(landing, target.expected(ds))
    stats = emu.stats()
    assert stats["faults"] == [] and stats["faults_applied"] == 1
    assert stats["tokens_issued"] == 2 and stats["token_requests"] == 2  # the first token and one refresh
    assert stats["tokens_active"] == 1  # the refreshed one: issued after the revocation
    assert stats["unauthorized"] == 0  # the emulator's bearer check never saw the revoked token come back
    assert requests_to(emu, target.method) == target.clean_requests(ds) + 1  # the hit page, once more


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "wrong client secret",
        "CPluginAuthError(invalid_client), secret not in it; nothing landed",
    ),
)
def test_wrong_client_secret(
    target: Target, emu: EmulatorProcess, landing: Landing, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "definitely-not-the-secret"
    for var, platform in (("CPLUGIN_DEFAULT", None), ("CPLUGIN_MT5", emu.mt5_trade_platform)):
        conn = json.loads(connection_json(emu, platform))
        conn["password"] = secret
        monkeypatch.setenv(f"AIRFLOW_CONN_{var}", json.dumps(conn))
    with pytest.raises(CPluginAuthError) as caught:
        target.run(landing)

    assert caught.value.error_code == "invalid_client" and secret not in str(caught.value)
    landing.assert_nothing_landed()
    stats = emu.stats()
    assert stats["token_errors"] >= 1 and stats["tokens_issued"] == 0 and requests_to(emu, target.method) == 0


TOKEN_PATH = "^/connect/token$"


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "the first token request's connection dropped",
        "token request retried with the call; lands exactly the served rows",
    ),
)
def test_token_request_dropped_once(
    target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing, sleeps: list[float]
) -> None:
    emu.set_faults(on_request(TOKEN_PATH, 1, drop=True))
    target.run(landing)

    assert_landed_exactly(landing, target.expected(ds))
    stats = emu.stats()
    assert stats["faults"] == [] and requests_to(emu, "token") == 2 and stats["tokens_issued"] == 1
    assert_waits(sleeps, BACKOFF[:1])


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "every token revoked while page {page} is in flight, then the refresh's connection dropped",
        "refresh retried; lands exactly the served rows",
    ),
)
def test_token_revoked_then_refresh_dropped(
    target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing, sleeps: list[float]
) -> None:
    emu.set_faults([*target.rules(delay_s=REVOKE_WINDOW), *on_request(TOKEN_PATH, 2, drop=True)])
    with revoked_while_held(emu, target) as revoked:
        target.run(landing)

    assert revoked and revoked[0] >= 1
    assert_landed_exactly(landing, target.expected(ds))
    assert emu.stats()["faults"] == [] and emu.stats()["tokens_issued"] == 2


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST auth",
        "401 on page {page}, then the token endpoint answers 503",
        "CPluginAuthError (HTTP 503); nothing landed",
    ),
)
def test_token_refresh_refused(target: Target, emu: EmulatorProcess, landing: Landing, sleeps: list[float]) -> None:
    emu.set_faults([*target.rules(status=401), *on_request(TOKEN_PATH, 2, times=None, status=503)])
    with pytest.raises(CPluginAuthError) as caught:
        target.run(landing)

    assert caught.value.status == 503 and "503" in str(caught.value)
    landing.assert_nothing_landed()
    assert emu.stats()["tokens_issued"] == 1
    assert requests_to(emu, target.method) == target.page  # the refused refresh is not followed by a re-send


# --------------------------------------------------------------------------- schema drift on the wire


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST server",
        "page {page} replayed with an added field",
        "lands exactly the served rows; the new field kept in _extra",
    ),
)
def test_added_field_lands_in_extra(target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing) -> None:
    body = target.replay(ds, lambda n, r: {**r, "brandNewField": {"n": n}})
    emu.set_faults(target.rules(status=200, body=body))
    target.run(landing)

    tables = assert_landed_exactly(landing, target.expected(ds))
    table = tables[target.faulted_entity.name]
    key = target.faulted_entity.key
    drifted = {tuple(r[k] for k in key): n for n, r in enumerate(target.faulted_page(ds)[0])}
    extras = dict(zip(landed_keys(table, target.faulted_entity), table.column(EXTRA_COLUMN).to_pylist(), strict=True))
    for key, value in extras.items():
        if key in drifted:
            assert value is not None and json.loads(value) == {"brandNewField": {"n": drifted[key]}}
        else:
            assert value is None
    assert emu.stats()["faults_applied"] == target.page


@pytest.mark.parametrize(
    "target",
    _each_target(
        "REST server",
        "page {page} replayed with a value of an uncoercible type",
        "SchemaDriftError naming entity.field; nothing landed",
    ),
)
def test_uncoercible_field_fails_and_lands_nothing(
    target: Target, emu: EmulatorProcess, ds: Dataset, landing: Landing
) -> None:
    name, bad = target.bad_field
    body = target.replay(ds, lambda n, r: {**r, name: bad} if n == 0 else r)
    emu.set_faults(target.rules(status=200, body=body))
    with pytest.raises(SchemaDriftError, match=rf"{target.faulted_entity.name}\.{name}: value '{bad}'") as caught:
        target.run(landing)

    assert (caught.value.entity, caught.value.field) == (target.faulted_entity.name, name)
    landing.assert_nothing_landed()
    assert emu.stats()["faults_applied"] == target.page
