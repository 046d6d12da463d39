"""The emulator as its own process, the way hooks, demos and benchmarks use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess, EmulatorStartError


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(seed=42, users=500, anchor=1_767_225_600) as process:
        yield process


def _token(emu: EmulatorProcess) -> str:
    doc = json.load(urllib.request.urlopen(emu.url + "/.well-known/openid-configuration", timeout=10))
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret}
    ).encode()
    return str(json.load(urllib.request.urlopen(doc["token_endpoint"], form, timeout=10))["access_token"])


def _get(emu: EmulatorProcess, path: str, token: str) -> Any:
    req = urllib.request.Request(emu.url + path, headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req, timeout=10))


def test_ready_facts(emu: EmulatorProcess) -> None:
    assert emu.url.startswith("http://127.0.0.1:") and emu.port > 0
    assert emu.mt4_trade_platform == "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
    assert emu.mt5_trade_platform == "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
    assert emu.pid != os.getpid() and emu.anchor == 1_767_225_600


def test_serves_users_and_counts(emu: EmulatorProcess) -> None:
    emu.reset()
    token = _token(emu)
    body = _get(emu, f"/api/v2/MT4/{emu.mt4_trade_platform}/UsersRequest?limit=100", token)
    assert len(body["data"]) == 100 and body["meta"]["paging"]["hasMore"] is True
    stats = emu.stats()
    assert stats["token_requests"] == 1
    assert stats["requests"]["GET /api/v2/MT4/{tradePlatform}/UsersRequest"] == 1


def test_faults_and_revoke_via_process(emu: EmulatorProcess) -> None:
    token = _token(emu)
    assert emu.set_faults([{"path": "ServerTime", "status": 503, "retry_after": 1}]) == 1
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(emu, f"/api/v2/MT4/{emu.mt4_trade_platform}/ServerTime", token)
    assert err.value.code == 503 and err.value.headers["Retry-After"] == "1"
    assert emu.faults() == []
    assert emu.revoke_tokens() >= 1
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(emu, f"/api/v2/MT4/{emu.mt4_trade_platform}/ServerTime", token)
    assert err.value.code == 401
    emu.reset()


def test_connection_json_and_uri_round_trip_through_airflow(emu: EmulatorProcess) -> None:
    from airflow.models.connection import Connection

    expected_extra = {
        "env": "custom",
        "auth_url": emu.url,
        "allow_insecure_loopback": True,
        "trade_platform": emu.mt4_trade_platform,
    }
    from_json = Connection.from_json(emu.connection_json(), conn_id="cplugin_default")
    from_uri = Connection(conn_id="cplugin_default", uri=emu.connection_uri())
    for conn in (from_json, from_uri):
        assert conn.conn_type == "cplugin"
        assert conn.host == emu.url
        assert conn.login == "cplugin-demo" and conn.password == "cplugin-demo-secret"
        assert conn.extra_dejson == expected_extra


def test_secret_is_not_on_the_command_line(emu: EmulatorProcess) -> None:
    cmdline = Path(f"/proc/{emu.pid}/cmdline")
    if not cmdline.exists():
        pytest.skip("no procfs")
    assert b"cplugin-demo-secret" not in cmdline.read_bytes()


def test_start_failure_reports_stderr() -> None:
    with pytest.raises(EmulatorStartError, match=r"must be >= 0"):
        EmulatorProcess(users=-5, startup_timeout=20).start()


def test_cli_prints_listening_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_cplugin.emulator.cli", "--port", "0", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        info = json.loads(ready.read_text())
        assert line == f"cplugin-emulator listening on {info['url']}"
        assert info["port"] > 0 and info["pid"] == proc.pid and info["client_id"] == "cplugin-demo"
        assert "client_secret" not in info
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not ready.exists()
