"""A real Airflow 3 deployment on loopback, one process per component, for the end-to-end suite (``make e2e``).

    with Stack.create() as stack:   # PostgreSQL, Redis, moto_server, emulators, Airflow (CeleryExecutor)
        stack.airflow("dags", "unpause", "cplugin_users_snapshot")
        stack.sql("select state from dag_run")

Every component runs in its own process group (``start_new_session``) with its output in
``<workdir>/components/<name>.log``; ``close()`` stops every group (SIGTERM, then SIGKILL), also after a failure.
Nothing listens on anything but 127.0.0.1: the Airflow log servers are skipped (``--skip-serve-logs``; task
logs are on the shared local disk, which the API server reads directly).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BUCKET = "cplugin-landing"
PG_USER = "airflow"
WORKERS = ("w1", "w2")
# The example DAGs plus the suite's own DAGs, as two DAG bundles (no copies of the example files).
E2E_DAGS = ROOT / "tests_e2e" / "dags"

T = TypeVar("T")


class StackError(RuntimeError):
    """A component did not start, exited early, or a wait timed out (the message names it)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns a truthy value; raise ``StackError`` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except StackError:  # a component died: no point in waiting out the timeout
            raise
        except Exception as err:  # a component still starting answers with errors: keep polling
            last_error = err
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass
class Service:
    """One long-running component in its own process group."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(repr=False)
    log: Path
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Service:
        cmd = self.cmd
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n===== start #{self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.log.parent,
            )  # fmt: skip
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise StackError(f"{self.name} is not running")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise StackError(f"{self.name} exited with code {self.proc.returncode}:\n{self.tail()}")

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        """``kill -9`` the whole component (its main process and every child: a lost machine)."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        self.proc = None  # down on purpose: not a crash for check_alive()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait(timeout)
        # Children that outlived their leader (e.g. a task process) are still in the group.
        self.signal_group(signal.SIGKILL)
        self.proc = None

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300, user: str | None = None) -> str:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr)[-4000:]
        raise StackError(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{out}")
    return proc.stdout


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not versions:
        raise StackError(f"{name} not found: install the Debian package postgresql")
    return str(versions[-1])


@dataclass(repr=False)  # the env holds the connections' secrets: never in a traceback
class Stack:
    """The deployment; build with ``Stack.create()`` and use as a context manager."""

    def __repr__(self) -> str:
        return f"Stack(workdir={str(self.workdir)!r}, ports={self.ports})"

    workdir: Path
    client_secret: str
    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    emulators: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    keep: bool = False
    users: dict[str, int] = field(default_factory=lambda: {"main": 3000, "big": 300_000})
    """MT4 users of each emulator."""
    mt5_users: int = 1000
    """MT5 users of each emulator (logins ``MT5_LOGIN_BASE`` onwards)."""

    @classmethod
    def create(cls, workdir: Path | None = None, keep: bool = False) -> Stack:
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="cplugin-e2e-"))
        workdir.mkdir(parents=True, exist_ok=True)
        # The PostgreSQL server runs as an unprivileged user and must reach its data dir below this one.
        workdir.chmod(0o755)
        return cls(workdir=workdir, client_secret="e2e-" + secrets.token_urlsafe(24), keep=keep)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - started

    def start(self) -> None:
        with self.timed("infrastructure"):
            self._start_postgres()
            self._start_redis()
            self._start_moto()
            self._start_emulators()
        with self.timed("airflow db migrate + connections"):
            self.env = self._airflow_env()
            self.airflow("db", "migrate", timeout=600)
            # The MT5 connection is stored in the DB (encrypted with the Fernet key), as users add them.
            mt5 = self.emulators["main"].connection_json(self.emulators["main"].mt5_trade_platform)
            self.airflow("connections", "add", "cplugin_mt5", "--conn-json", mt5, secret_args=True)
            big = self.emulators["big"].connection_json()
            self.airflow("connections", "add", "cplugin_big", "--conn-json", big, secret_args=True)
        with self.timed("airflow components up"):
            self._start_airflow()

    def close(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        for emulator in self.emulators.values():
            emulator.stop()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ infrastructure

    def _service(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, user: str | None = None
    ) -> Service:
        service = Service(name, cmd, env or dict(os.environ), self.workdir / "components" / f"{name}.log", user)
        self.services[name] = service.start()
        return service

    def _start_postgres(self) -> None:
        pg_dir = self.workdir / "pg"
        pg_dir.mkdir()
        user = None
        if os.geteuid() == 0:  # CI runs as root; PostgreSQL refuses to: run it as the Debian package's user
            user = "postgres"
            shutil.chown(pg_dir, user, user)
        port = self.ports["postgres"] = free_port()
        _run([_pg_bin("initdb"), "-D", str(pg_dir / "data"), "-U", PG_USER, "--auth=trust", "-E", "UTF8"], user=user)
        self._service(
            "postgres",
            [_pg_bin("postgres"), "-D", str(pg_dir / "data"), "-k", str(pg_dir), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=300"],
            user=user,
        )  # fmt: skip
        self.services["postgres"].stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients
        wait_for("PostgreSQL", lambda: self._pg_ready(), 60)
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user=PG_USER, dbname="postgres")
        con.autocommit = True
        con.cursor().execute("create database airflow")
        con.close()

    def _pg_ready(self) -> bool:
        self.services["postgres"].check_alive()
        import psycopg2

        psycopg2.connect(host="127.0.0.1", port=self.ports["postgres"], user=PG_USER, dbname="postgres").close()
        return True

    def _start_redis(self) -> None:
        port = self.ports["redis"] = free_port()
        redis_server = shutil.which("redis-server")
        if not redis_server:
            raise StackError("redis-server not found: install the Debian package redis-server")
        self._service(
            "redis",
            [redis_server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
        )  # fmt: skip

        def ping() -> bool:
            self.services["redis"].check_alive()
            import redis

            return bool(redis.Redis(host="127.0.0.1", port=port).ping())

        wait_for("Redis", ping, 30)

    def _start_moto(self) -> None:
        port = self.ports["moto"] = free_port()
        self._service("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])

        def bucket() -> bool:
            self.services["moto"].check_alive()
            self.s3().create_bucket(Bucket=BUCKET)
            return True

        wait_for("moto_server", bucket, 60)

    def _start_emulators(self) -> None:
        from airflow_provider_cplugin.emulator.process import EmulatorProcess

        # "main" serves the example DAGs; "big" (300k users) makes one users snapshot last long enough to kill
        # the worker that runs it.
        for name, users in self.users.items():
            self.emulators[name] = EmulatorProcess(
                users=users, mt5_users=self.mt5_users, client_secret=self.client_secret
            )
        for emulator in self.emulators.values():
            emulator.start()

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.ports['moto']}", region_name="us-east-1",
            aws_access_key_id="x", aws_secret_access_key="y",
        )  # fmt: skip

    def landing_objects(self, prefix: str = "") -> dict[str, int]:
        """Every object in the landing bucket (key → size), from the S3 API (the source of truth)."""
        objects: dict[str, int] = {}
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                objects[obj["Key"]] = int(obj["Size"])
        return objects

    @property
    def mt5_logins(self) -> list[int]:
        from airflow_provider_cplugin.emulator.data import MT5_LOGIN_BASE

        return list(range(MT5_LOGIN_BASE, MT5_LOGIN_BASE + self.mt5_users))

    # ------------------------------------------------------------------ Airflow

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.ports['postgres']}/airflow"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def warehouse(self) -> Path:
        return self.workdir / "warehouse" / "cplugin.duckdb"

    @property
    def log_dirs(self) -> list[Path]:
        return [self.workdir / "logs", self.workdir / "components"]

    def _airflow_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        main = self.emulators["main"]
        self.ports["api"] = free_port()
        home = self.workdir / "airflow_home"
        home.mkdir(exist_ok=True)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({"admin": "e2e-admin-pw"}))
        bundles = [
            {"name": "examples", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(ROOT / "dags_examples"), "refresh_interval": 0}},
            {"name": "e2e", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(E2E_DAGS), "refresh_interval": 0}},
        ]  # fmt: skip
        aws = {
            "conn_type": "aws", "login": "x", "password": "y",
            "extra": {"endpoint_url": f"http://127.0.0.1:{self.ports['moto']}", "region_name": "us-east-1"},
        }  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_VAR"))}
        pythonpath = [str(ROOT), str(ROOT / "dags_examples"), str(HERE)]
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "PYTHONPATH": os.pathsep.join(pythonpath + [p for p in [env.get("PYTHONPATH")] if p]),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_hostname.worker_hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__CORE__PARALLELISM": "16",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_USER}@127.0.0.1:{self.ports['postgres']}/airflow",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.workdir / "logs"),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # Fault tests: a killed worker's task is declared failed (and retried) within seconds, a killed
                # triggerer's triggers are taken over by the restarted one quickly.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
                # cplugin_default comes from the environment (cplugin_mt5 and cplugin_big are in the DB).
                "AIRFLOW_CONN_CPLUGIN_DEFAULT": main.connection_json(),
                "AIRFLOW_VAR_CPLUGIN_SAMPLE_WINDOW": "20",
                # The API has no MT5 user list: cplugin_platform_users snapshots these logins of the MT5 platform.
                "AIRFLOW_VAR_CPLUGIN_MT5_LOGINS": json.dumps({main.mt5_trade_platform: self.mt5_logins}),
                # The connection id in the URL binds the landing zone to the aws connection (endpoint = moto).
                "CPLUGIN_LANDING_PATH": f"s3://aws_default@{BUCKET}/cplugin",
                "CPLUGIN_WAREHOUSE": str(self.warehouse),
                "CPLUGIN_E2E_HOST": "cli",
            }
        )
        return env

    def airflow(self, *args: str, timeout: float = 180, secret_args: bool = False) -> str:
        try:
            return _run([str(BIN / "airflow"), *args], env=self.env, timeout=timeout)
        except StackError as err:
            if secret_args:  # never echo a connection's JSON
                raise StackError(f"airflow {args[0]} {args[1]} failed") from None
            raise err

    def _airflow_service(self, name: str, *args: str) -> Service:
        env = {**self.env, "CPLUGIN_E2E_HOST": name}
        return self._service(name, [str(BIN / "airflow"), *args], env)

    def _start_airflow(self) -> None:
        self._airflow_service("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.ports["api"]),
                              "--workers", "1")  # fmt: skip
        self._airflow_service("scheduler", "scheduler", "--skip-serve-logs")
        self._airflow_service("dag-processor", "dag-processor")
        self._airflow_service("triggerer", "triggerer", "--skip-serve-logs")
        for worker in WORKERS:
            self.start_worker(worker)
        wait_for("the API server", lambda: self._check_all() and self.api("GET", "/api/v2/monitor/health"), 180)
        wait_for("the scheduler, triggerer, dag processor and workers to heartbeat", self._all_healthy, 240)

    def start_worker(self, name: str) -> Service:
        args = ["celery", "worker", "--skip-serve-logs", "--concurrency", "2", "--celery-hostname", f"{name}@%h"]
        if name in self.services:
            return self.services[name].start()
        return self._airflow_service(name, *args)

    def restart(self, name: str) -> Service:
        return self.services[name].start()

    def _check_all(self) -> bool:
        for service in self.services.values():
            if service.proc is not None:
                service.check_alive()
        return True

    def _all_healthy(self) -> bool:
        self._check_all()
        health = self.api("GET", "/api/v2/monitor/health")
        jobs = ("scheduler", "triggerer", "dag_processor")
        if not all(health.get(job, {}).get("status") == "healthy" for job in jobs):
            return False
        import celery

        app = celery.Celery(broker=self.env["AIRFLOW__CELERY__BROKER_URL"])
        replies = app.control.ping(timeout=2.0) or []
        names = {name.split("@")[0] for reply in replies for name in reply}
        return names >= set(WORKERS)

    # ------------------------------------------------------------------ REST API and DB

    _token: str | None = None

    def api(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        if self._token is None and not path.startswith(("/auth/", "/api/v2/monitor/")):
            self._token = self.api("POST", "/auth/token", {"username": "admin", "password": "e2e-admin-pw"})[
                "access_token"
            ]
        request = urllib.request.Request(self.api_url + path, method=method)
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urllib.request.urlopen(request, data, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise StackError(f"{method} {path}: HTTP {err.code}: {err.read()[:2000]!r}") from None
        return json.loads(raw) if raw else None

    def sql(self, query: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.ports["postgres"], user=PG_USER, dbname="airflow")
        try:
            with con.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            con.close()

    def pg_dump(self) -> bytes:
        out = subprocess.run(
            [_pg_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(self.ports["postgres"]), "-U", PG_USER, "airflow"],
            capture_output=True, check=True, timeout=300,
        )  # fmt: skip
        return out.stdout

    def process_tree(self) -> dict[int, str]:
        """pid → component name, for every live process of every component (children included)."""
        import psutil

        pids: dict[int, str] = {}
        for name, service in self.services.items():
            if not service.alive():
                continue
            try:
                root = psutil.Process(service.pid)
                for proc in [root, *root.children(recursive=True)]:
                    pids[proc.pid] = name
            except psutil.NoSuchProcess:
                continue
        for name, emulator in self.emulators.items():
            pids[emulator.pid] = f"emulator-{name}"
        return pids

    def non_loopback_listeners(self) -> list[str]:
        """Listening sockets of the deployment bound to anything but loopback (must be none)."""
        import psutil

        pids = self.process_tree()
        found = []
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids and conn.laddr.ip not in ("127.0.0.1", "::1"):
                found.append(f"{pids[conn.pid]} (pid {conn.pid}) on {conn.laddr.ip}:{conn.laddr.port}")
        return found


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT-looking string, or None when it is not one."""
    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError, TypeError):
        return None


if __name__ == "__main__":
    # Manual use: bring the deployment up, print where it is, stop on Ctrl-C.
    with Stack.create(keep=True) as stack:
        print(f"workdir {stack.workdir}\nAPI {stack.api_url} (admin / e2e-admin-pw)\nports {stack.ports}")
        with suppress(KeyboardInterrupt):
            signal.pause()
