"""``EmulatorProcess``: run the emulator in its own process (port 0) for tests, demos and benchmarks.

    with EmulatorProcess(seed=42, users=1000) as emu:
        os.environ["AIRFLOW_CONN_CPLUGIN_DEFAULT"] = emu.connection_json()
        emu.set_faults([{"path": "UsersRequest", "status": 429, "retry_after": 1}])
        ...
        emu.stats()["requests"]

Control calls use urllib (no extra dependency); the client secret travels to the child through the
environment, never on its command line, and is never printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from airflow_provider_cplugin.emulator.cli import SECRET_ENV
from airflow_provider_cplugin.emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from airflow_provider_cplugin.emulator.quirks import format_quirks, parse_quirks, quirks_from_env

CONN_TYPE = "cplugin"


class EmulatorStartError(RuntimeError):
    """The emulator process exited or did not become ready in time (message carries its stderr)."""


class EmulatorProcess:
    """Context manager around one ``cplugin-emulator`` child process.

    Keyword options mirror the CLI flags (``users=`` is ``--users``, ``mt5_users=`` is ``--mt5-users``, ...);
    ``None`` leaves the CLI default. ``quirks`` (names of ``emulator/quirks.py``, a comma-separated string or
    ``"all"``) defaults to ``$CPLUGIN_EMULATOR_QUIRKS``.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        users: int = 1000,
        mt5_users: int | None = None,
        trades_per_user: int | None = None,
        open_trades_per_user: float | None = None,
        online_percent: int | None = None,
        token_lifetime: int = 3600,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        tz_offset: int | None = None,
        history_days: float | None = None,
        open_days: float | None = None,
        anchor: int | None = None,
        online_warmup: float | None = None,
        quirks: str | Iterable[str] | None = None,
        host: str = "127.0.0.1",
        access_log: bool = False,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.client_id = client_id
        # Default: $CPLUGIN_EMULATOR_QUIRKS, so a whole test run plays the real service's quirks untouched.
        if quirks is None:
            self.quirks = quirks_from_env()
        else:
            self.quirks = parse_quirks(quirks if isinstance(quirks, str) else ",".join(quirks))
        self.client_secret = client_secret
        self.startup_timeout = startup_timeout
        options: dict[str, Any] = {
            "seed": seed,
            "users": users,
            "mt5_users": mt5_users,
            "trades_per_user": trades_per_user,
            "open_trades_per_user": open_trades_per_user,
            "online_percent": online_percent,
            "token_lifetime": token_lifetime,
            "client_id": client_id,
            "tz_offset": tz_offset,
            "history_days": history_days,
            "open_days": open_days,
            "anchor": anchor,
            "online_warmup": online_warmup,
            "host": host,
            "quirks": format_quirks(self.quirks),
        }
        self._args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items() if v is not None]
        self._args += ["--access-log"] * access_log + list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._ready: dict[str, Any] = {}
        self._stderr_cache = ""

    def __repr__(self) -> str:
        return f"EmulatorProcess(url={self._ready.get('url')!r}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmulatorProcess:
        if self._proc is not None:
            raise RuntimeError("emulator already started")
        self._tmp = Path(tempfile.mkdtemp(prefix="cplugin-emulator-"))
        ready_file = self._tmp / "ready.json"
        cmd = [sys.executable, "-m", "airflow_provider_cplugin.emulator.cli", "--port=0"]
        cmd += [*self._args, f"--ready-file={ready_file}"]
        env = {**os.environ, SECRET_ENV: self.client_secret}
        with open(self._tmp / "stdout.log", "wb") as out, open(self._tmp / "stderr.log", "wb") as err:
            # Files, not pipes: a chatty child can never block on a full pipe.
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if ready_file.exists():
                self._ready = json.loads(ready_file.read_text())
                return self
            code = self._proc.poll()
            if code is not None:
                message = f"cplugin-emulator exited with code {code} before it was ready"
                self._cleanup()
                raise EmulatorStartError(f"{message}\n--- stderr ---\n{self._stderr_tail()}")
            if time.monotonic() > deadline:
                tail = self._stderr_tail()
                self.stop()
                raise EmulatorStartError(
                    f"cplugin-emulator not ready within {self.startup_timeout:.0f}s\n--- stderr ---\n{tail}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._stderr_cache = self._stderr_tail()
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _stderr_tail(self, limit: int = 4000) -> str:
        if self._tmp is None:
            return self._stderr_cache
        try:
            return (self._tmp / "stderr.log").read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ facts from the ready file

    def _info(self, key: str) -> Any:
        if not self._ready:
            raise RuntimeError("emulator not started")
        return self._ready[key]

    @property
    def url(self) -> str:
        return str(self._info("url"))

    @property
    def port(self) -> int:
        return int(self._info("port"))

    @property
    def pid(self) -> int:
        return int(self._info("pid"))

    @property
    def mt4_trade_platform(self) -> str:
        return str(self._info("mt4_trade_platform"))

    @property
    def mt5_trade_platform(self) -> str:
        return str(self._info("mt5_trade_platform"))

    @property
    def anchor(self) -> int:
        """'Now' of the generated data set (unix seconds)."""
        return int(self._info("anchor"))

    # ------------------------------------------------------------------ Airflow connection

    def connection_extras(self, trade_platform: str | None = None) -> dict[str, Any]:
        """Connection extras; the default trade platform is the MT4 one unless another is given."""
        return {
            "env": "custom",
            "auth_url": self.url,
            "allow_insecure_loopback": True,
            "trade_platform": trade_platform or self.mt4_trade_platform,
        }

    def connection_json(self, trade_platform: str | None = None) -> str:
        """Airflow JSON connection (for ``AIRFLOW_CONN_<ID>``)."""
        return json.dumps(
            {
                "conn_type": CONN_TYPE,
                "host": self.url,
                "login": self.client_id,
                "password": self.client_secret,
                "extra": self.connection_extras(trade_platform),
            }
        )

    def connection_uri(self, trade_platform: str | None = None) -> str:
        """Airflow URI connection; ``Connection(uri=...)`` gives back host = the full base URL."""
        scheme, _, host = self.url.partition("://")
        auth = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        extra = quote(json.dumps(self.connection_extras(trade_platform)), safe="")
        return f"{CONN_TYPE.replace('_', '-')}://{scheme}://{auth}@{quote(host, safe='')}/?__extra__={extra}"

    # ------------------------------------------------------------------ control endpoints

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._control("GET", "stats")
        return result

    def set_faults(self, rules: list[dict[str, Any]], append: bool = False) -> int:
        """Install fault rules (replacing the current ones unless ``append``); returns the rule count."""
        return int(self._control("POST", "faults", {"rules": rules, "append": append})["rules"])

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._control("GET", "faults")
        return result

    def reset(self) -> None:
        self._control("POST", "reset", {})

    def hub_config(
        self, rates: dict[str, float] | None = None, settings: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Set hub feed rates (events/s, e.g. ``{"ticks": 50000}``) and timings; returns the current config."""
        if rates or settings:
            self._control("POST", "hub-config", {"rates": rates or {}, "settings": settings or {}})
        result: dict[str, Any] = self._control("GET", "hub-config")
        return result

    def set_hub_faults(self, rules: list[dict[str, Any]], append: bool = False) -> None:
        """Install hub fault rules (``{"fault": "drop", "after_messages": 100, ...}``; see ``emulator/hubs/faults``)."""
        self._control("POST", "hub-faults", {"rules": rules, "append": append})

    def revoke_tokens(self) -> int:
        return int(self._control("POST", "revoke-tokens", {})["revoked"])
