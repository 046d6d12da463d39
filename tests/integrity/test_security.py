"""Integrity matrix, Security and Input rows: secrets go nowhere they should not, bad settings fail naming the field.

Each test drives the real path (a self-signed HTTPS server, the emulator's hubs, tiny aiohttp servers) and counts
what reached the server, instead of trusting the code's own account.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from airflow.sdk._shared.secrets_masker import redact as masker_redact

from airflow_provider_cplugin.emulator.app import create_app
from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.hubs import get_hubs
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginAuthError, CPluginConfigError
from airflow_provider_cplugin.hooks.oauth2 import clear_token_caches
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.realtime import HubClient
from airflow_provider_cplugin.realtime.errors import HubAuthError, HubError
from airflow_provider_cplugin.realtime.hubs import hub_url

from .tls_server import TLS_TOKEN, TlsApi, self_signed

TP = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
SECRET = "tls-client-secret-value"


@pytest.fixture(autouse=True)
def _fresh_token_caches() -> Iterator[None]:
    clear_token_caches()
    yield
    clear_token_caches()


def everything_printed(exc: BaseException) -> str:
    """str/repr of the error and of every exception chained to it, plus the whole formatted traceback."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


async def server_time(hook_kind: str, conn_id: str) -> Any:
    if hook_kind == "sync":
        return await asyncio.to_thread(CPluginWebApiHook(conn_id).server_time)
    async with CPluginWebApiAsyncHook(conn_id) as hook:
        return await hook.server_time()


# -- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    server_cert, server_key = self_signed(directory, "server")
    other_ca, _ = self_signed(directory, "other-ca")
    return {"server": server_cert, "server_key": server_key, "other_ca": other_ca}


@pytest.fixture
def tls_api(certs: dict[str, Path]) -> Iterator[TlsApi]:
    with TlsApi(certs["server"], certs["server_key"]) as api:
        yield api


def tls_conn(api: TlsApi, **extra: Any) -> dict[str, Any]:
    extras = {"env": "custom", "auth_url": api.url, "trade_platform": TP, "platform_type": "MT4", **extra}
    return {"conn_type": "cplugin", "host": api.url, "login": "client-1", "password": SECRET, "extra": extras}


@pytest.mark.matrix(
    area="Security",
    fault='extra.verify "" or a typo ("ture")',
    expected="config error naming extra.verify; nothing reaches the server",
)
@pytest.mark.parametrize("hook_kind", ["sync", "async"])
@pytest.mark.parametrize("verify", ["", "  ", "ture"])
async def test_unusable_verify_is_a_config_error(
    tls_api: TlsApi, airflow_conn: Any, hook_kind: str, verify: str
) -> None:
    conn_id = airflow_conn("tls", tls_conn(tls_api, verify=verify))
    with pytest.raises(CPluginConfigError) as excinfo:
        await server_time(hook_kind, conn_id)
    assert excinfo.value.field == "extra.verify"
    assert tls_api.requests == []


@pytest.mark.matrix(
    area="Security",
    fault="$REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE trust a self-signed server, extra.verify set",
    expected="TLS error naming extra.verify; the secret is never POSTed",
)
@pytest.mark.parametrize("hook_kind", ["sync", "async"])
@pytest.mark.parametrize("verify", ["true", True, "other_ca"])
async def test_environment_ca_bundle_does_not_override_explicit_verify(
    tls_api: TlsApi,
    certs: dict[str, Path],
    airflow_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    hook_kind: str,
    verify: Any,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs["server"]))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(certs["server"]))
    conn_id = airflow_conn("tls", tls_conn(tls_api, verify=str(certs["other_ca"]) if verify == "other_ca" else verify))
    with pytest.raises(CPluginAuthError, match=r"extra\.verify") as excinfo:
        await server_time(hook_kind, conn_id)
    assert tls_api.token_posts() == 0 and tls_api.requests == []
    assert SECRET not in everything_printed(excinfo.value)


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_ca_bundle_in_verify_reaches_the_self_signed_server(
    tls_api: TlsApi, certs: dict[str, Path], airflow_conn: Any, monkeypatch: pytest.MonkeyPatch, hook_kind: str
) -> None:
    """The control of the two tests above: the server works, and an explicit bundle is what makes it trusted."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs["other_ca"]))
    conn_id = airflow_conn("tls", tls_conn(tls_api, verify=str(certs["server"])))
    assert await server_time(hook_kind, conn_id) == "2026-01-01T00:00:00Z"
    assert tls_api.token_posts() == 1
    assert [m for m, _ in tls_api.requests] == ["GET", "POST", "GET"]


# -- ~/.netrc -------------------------------------------------------------------------------------------------


@pytest.fixture
async def recording_api() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """Plain-http loopback identity server + API recording each request's headers."""
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append({"path": request.path, **request.headers})
        if request.path.endswith("openid-configuration"):
            return web.json_response({"token_endpoint": base + "/connect/token"})
        if request.path == "/connect/token":
            await request.read()
            return web.json_response({"access_token": TLS_TOKEN, "expires_in": 3600})
        return web.json_response({"data": "t", "error": None, "meta": {"activityId": "b" * 32}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    yield base, seen
    await server.close()


@pytest.mark.matrix(
    area="Security",
    fault="~/.netrc has credentials for the identity server's host",
    expected="no Basic credentials sent (both hooks)",
)
@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_netrc_credentials_never_sent(
    recording_api: tuple[str, list[dict[str, str]]],
    airflow_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    hook_kind: str,
) -> None:
    base, seen = recording_api
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password netrc-secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    extras = {"env": "custom", "auth_url": base, "trade_platform": TP, "platform_type": "MT4"}
    conn = {"conn_type": "cplugin", "host": base, "login": "c", "password": SECRET, "extra": extras}
    conn_id = airflow_conn("netrc", {**conn, "extra": {**extras, "allow_insecure_loopback": True}})
    assert await server_time(hook_kind, conn_id) == "t"
    identity = [h for h in seen if h["path"] != "/api/v2/MT4/" + TP + "/ServerTime"]
    assert len(identity) == 2 and all("Authorization" not in h for h in identity)
    assert [h["Authorization"] for h in seen if h["path"].endswith("ServerTime")] == [f"Bearer {TLS_TOKEN}"]


# -- hub token redaction --------------------------------------------------------------------------------------


@pytest.fixture
async def hub_emulator() -> AsyncIterator[TestServer]:
    """The emulator in-process (its token store and hub stats are read directly: the truth)."""
    server = TestServer(create_app(EmulatorConfig(mt4_users=10, mt5_users=10)), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.matrix(
    area="Security",
    fault="hub refuses the token (401 on WebSocket upgrade or negotiate)",
    expected="token in no exception, chained cause, traceback or log; registered with the secrets masker",
)
@pytest.mark.parametrize("skip_negotiation", [True, False])
async def test_refused_hub_token_appears_nowhere(
    hub_emulator: TestServer, airflow_conn: Any, caplog: pytest.LogCaptureFixture, skip_negotiation: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    base = str(hub_emulator.make_url("")).rstrip("/")
    hubs = get_hubs(hub_emulator.app)
    mt4 = hubs.emulator.config.mt4_trade_platform
    extras = {"env": "custom", "auth_url": base, "trade_platform": mt4, "allow_insecure_loopback": True}
    conn = {"conn_type": "cplugin", "host": base, "login": "cplugin-demo"}
    conn_id = airflow_conn("hub", {**conn, "password": "cplugin-demo-secret", "extra": extras})
    async with CPluginWebApiAsyncHook(conn_id) as hook:
        token = await hook.get_token()
        tokens = hubs.emulator.tokens
        assert tokens.status(token) == "valid"  # the very token the emulator issued
        assert tokens.revoke_all() >= 1
        before = hubs.stats.unauthorized
        client = HubClient(
            hub_url(base, "MT4", mt4),
            hook.get_token,  # still the cached, now revoked token
            allow_insecure_loopback=True,
            skip_negotiation=skip_negotiation,
            reconnect_delays=None,
        )
        with pytest.raises(HubAuthError) as excinfo:
            await client.start()
        await client.stop()
    assert hubs.stats.unauthorized == before + 1  # refused by the server, not client-side
    assert excinfo.value.status == 401
    assert token not in everything_printed(excinfo.value)
    client_side = [
        r for r in caplog.records if not r.name.startswith(("aiohttp.access", "airflow_provider_cplugin.emulator"))
    ]
    assert not any(token in r.getMessage() for r in client_side)  # the emulator's own access log aside
    assert masker_redact(f"x {token} y") == "x *** y"  # registered when the hook obtained it


# -- cross-origin redirect of the WebSocket upgrade -----------------------------------------------------------


@pytest.mark.matrix(
    area="Security",
    fault="WebSocket upgrade redirected (307) to another origin",
    expected="refused; the other origin receives nothing",
)
@pytest.mark.parametrize("skip_negotiation", [True, False])
async def test_websocket_upgrade_redirect_is_refused(skip_negotiation: bool) -> None:
    reached: list[str] = []

    async def other(request: web.Request) -> web.StreamResponse:
        reached.append(request.path_qs)
        return web.Response(text="hijacked")

    async def hub(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/negotiate"):
            transports = [{"transport": "WebSockets", "transferFormats": ["Text"]}]
            body = {"negotiateVersion": 1, "connectionId": "c", "connectionToken": "t"}
            return web.json_response({**body, "availableTransports": transports})
        raise web.HTTPTemporaryRedirect(str(other_server.make_url(request.path_qs)).replace("http", "ws", 1))

    servers = []
    for handler in (other, hub):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        servers.append(TestServer(app, host="127.0.0.1"))
        await servers[-1].start_server()
    other_server, hub_server = servers

    async def token() -> str:
        return "redirect-test-token-0123456789"

    client = HubClient(
        str(hub_server.make_url("/hubs/mt4/v2")),
        token,
        allow_insecure_loopback=True,
        skip_negotiation=skip_negotiation,
        reconnect_delays=None,
    )
    try:
        with pytest.raises(HubError, match="redirects are not followed") as excinfo:
            await client.start()
        await client.stop()
    finally:
        for server in servers:
            await server.close()
    assert reached == []
    assert "redirect-test-token-0123456789" not in everything_printed(excinfo.value)


# -- Input: connection -----------------------------------------------------------------------------------------


def valid_conn(**extra: Any) -> dict[str, Any]:
    extras = {"env": "custom", "auth_url": "https://auth.example.test", "trade_platform": TP, **extra}
    return {"conn_type": "cplugin", "host": "https://api.example.test", "login": "c", "password": "s"} | {
        "extra": extras
    }


@pytest.mark.matrix(
    area="Input",
    fault="connection extras: typo key, bool or huge timeout, list extras, host ?query/#fragment or 10k chars",
    expected="config error naming the field (did-you-mean for a typo)",
)
@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"extra": {"timout": 5}}, "extra.timout", "did you mean 'timeout'"),
        ({"extra": {"timeout": True}}, "extra.timeout", "must be a number"),
        ({"extra": {"timeout": 1e12}}, "extra.timeout", "<= 3600"),
        ({"extra": {"max_attempts": True}}, "extra.max_attempts", "must be a number"),
        ({"extra_raw": ["env", "prod"]}, "extra", "JSON object"),
        ({"host": "https://api.example.test/?tenant=1"}, "host", "?query"),
        ({"host": "https://api.example.test/#frag"}, "host", "#fragment"),
        ({"host": "https://" + "a" * 10_000 + ".test"}, "host", "characters long"),
        ({"host": "https://" + "a" * 64 + ".test"}, "host", "not a valid DNS name"),
    ],
)
def test_bad_connection_settings_name_the_field(
    airflow_conn: Any, change: dict[str, Any], field: str, words: str
) -> None:
    conn = valid_conn(**change.get("extra", {}))
    if "extra_raw" in change:
        conn["extra"] = json.dumps(change["extra_raw"])
    if "host" in change:
        conn["host"] = change["host"]
    conn_id = airflow_conn("bad", conn)
    with pytest.raises(CPluginConfigError) as excinfo:
        _ = CPluginWebApiHook(conn_id).config
    assert excinfo.value.field == field
    assert words in str(excinfo.value)


# -- Input: operator arguments ---------------------------------------------------------------------------------


@pytest.fixture
def emu_conn(emulator: EmulatorProcess, airflow_conn: Any) -> EmulatorProcess:
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([])
    return emulator


def context(run_id: str = "sec") -> dict[str, Any]:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    start = datetime(2025, 12, 31, tzinfo=UTC)
    return {
        "ti": SimpleNamespace(dag_id="security", task_id="t", map_index=-1),
        "logical_date": start,
        "data_interval_start": start,
        "data_interval_end": start.replace(day=31, hour=23),
        "run_id": run_id,
    }


def requests_to(emu: EmulatorProcess, suffix: str) -> int:
    return sum(n for route, n in emu.stats()["requests"].items() if route.endswith(suffix))


@pytest.mark.matrix(
    area="Input",
    fault="operator arguments: junk logins, logins_per_request 0, unparsable interval, bool page_size",
    expected="config error naming the argument; no data request, nothing landed",
)
@pytest.mark.parametrize(
    ("operator", "kwargs", "field"),
    [
        (UsersSnapshotOperator, {"logins": "1001, abc"}, "logins"),
        (UsersSnapshotOperator, {"logins": [1001, None]}, "logins"),
        (UsersSnapshotOperator, {"logins": [1001], "logins_per_request": 0}, "logins_per_request"),
        (UsersSnapshotOperator, {"page_size": True}, "page_size"),
        (UsersSnapshotOperator, {"page_size": "5001"}, "page_size"),
        (TradeHistoryOperator, {"logins": "1001", "logins_per_request": "0"}, "logins_per_request"),
        (TradeHistoryOperator, {"interval_start": "yesterday-ish"}, "interval_start"),
        (TradeHistoryOperator, {"interval_end": "2026-13-45"}, "interval_end"),
        (TradeHistoryOperator, {"logins": "1001;x"}, "logins"),
    ],
)
def test_bad_operator_arguments_name_the_argument(
    emu_conn: EmulatorProcess, tmp_path: Path, operator: Any, kwargs: dict[str, Any], field: str
) -> None:
    landing = tmp_path / "landing"
    op = operator(task_id="t", output_path=f"file://{landing}", platform_type="MT4", **kwargs)
    before = {s: requests_to(emu_conn, s) for s in ("UsersRequest", "UserRecordsRequest", "ReportsRequest")}
    with pytest.raises(CPluginConfigError) as excinfo:
        op.execute(context())
    assert excinfo.value.field == field
    assert {s: requests_to(emu_conn, s) for s in before} == before
    assert not landing.exists() or not any(p.is_file() for p in landing.rglob("*"))


@pytest.mark.matrix(
    area="Input",
    fault="templated page_size / logins_per_request (rendered as text)",
    expected="coerced: pages of the rendered size, every row landed",
)
def test_templated_numbers_are_coerced(emu_conn: EmulatorProcess, tmp_path: Path) -> None:
    op = UsersSnapshotOperator(task_id="t", output_path=f"file://{tmp_path}", page_size="{{ params.size }}")
    op.render_template_fields({"params": {"size": 300}})
    assert op.page_size == "300"  # what Jinja hands the operator
    before = requests_to(emu_conn, "UsersRequest")
    result = op.execute(context())
    assert result["rows"] == 1000  # the session emulator serves 1000 MT4 users
    assert requests_to(emu_conn, "UsersRequest") - before == 4  # 300 + 300 + 300 + 100
