"""A throwaway Airflow installation (own ``AIRFLOW_HOME``, SQLite) wired to the emulator.

Used by the README demo, the tests and the benchmarks to run real ``airflow dags test`` runs in a subprocess,
exactly as a user would, without touching the user's own Airflow home.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SandboxRunError(RuntimeError):
    """An ``airflow`` command failed; the message carries the tail of its output."""


def connection_env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@dataclass
class AirflowSandbox:
    """``AIRFLOW_HOME`` under ``root`` with the given DAGs folder, connections (as env vars) and landing path."""

    root: Path
    dags_folder: Path
    connections: Mapping[str, str] = field(default_factory=dict)
    """conn id → connection JSON or URI (passed as ``AIRFLOW_CONN_*``, never written to disk or logs)."""
    landing_path: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "airflow_home"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.landing_path:
            env["CPLUGIN_LANDING_PATH"] = self.landing_path
        for conn_id, value in self.connections.items():
            env[connection_env_name(conn_id)] = value
        env.update(self.extra_env)
        return env

    def _airflow(self, *args: str, timeout: float, log_name: str) -> str:
        airflow = shutil.which("airflow", path=os.path.dirname(sys.executable)) or "airflow"
        log_file = self.root / "logs" / f"{log_name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [airflow, *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = proc.stdout + proc.stderr
        log_file.write_text(output)
        if proc.returncode != 0:
            tail = "\n".join(output.splitlines()[-60:])
            raise SandboxRunError(f"airflow {' '.join(args)} exited {proc.returncode} (log {log_file}):\n{tail}")
        return output

    def migrate(self, timeout: float = 300) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._airflow("db", "migrate", timeout=timeout, log_name="db-migrate")

    def dags_test(self, dag_id: str, logical_date: str, *, timeout: float = 600) -> str:
        """Run one DAG run in-process of a subprocess (``airflow dags test``); raise if any task failed."""
        output = self._airflow(
            "dags", "test", dag_id, logical_date, timeout=timeout, log_name=f"{dag_id}-{logical_date}"
        )
        # The exit code covers a failed run; the final DagRun line must also be there and say success (a run
        # that ends in any other state, or never reports one, is not a pass).
        states = re.findall(rf"DagRun Finished: dag_id={re.escape(dag_id)},.*?state=(\w+)", output)
        if not states or states[-1] != "success":
            tail = "\n".join(output.splitlines()[-60:])
            found = states[-1] if states else "no final DagRun state"
            raise SandboxRunError(f"DAG {dag_id} @ {logical_date} did not succeed ({found}):\n{tail}")
        return output
