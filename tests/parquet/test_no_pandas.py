"""A whole users snapshot (operator, hook, columnar decode, key check, Parquet landing) never imports pandas.

pyarrow imports pandas (~45 MB resident) on its first conversion of a Python object, so one ``pa.scalar(1)`` or
``pa.array([...])`` anywhere on the path costs every snapshot that much memory. The landing runs in a fresh
interpreter (this test process has pandas loaded long ago) and reports what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess

CHILD = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator

    op = UsersSnapshotOperator(task_id="users", output_path=sys.argv[1], page_size=150, row_group_rows=400)
    day = datetime(2025, 12, 31, tzinfo=UTC)
    context = {"ti": SimpleNamespace(dag_id="tests", task_id="users", map_index=-1), "logical_date": day,
               "data_interval_start": day, "data_interval_end": day, "run_id": "test"}
    result = op.execute(context)
    print(json.dumps({"result": result, "pandas": sorted(m for m in sys.modules if m.split(".")[0] == "pandas")}))
    """
)


def test_users_snapshot_lands_without_importing_pandas(emulator: EmulatorProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
    env |= {"AIRFLOW_CONN_CPLUGIN_DEFAULT": emulator.connection_json(), "AIRFLOW_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, f"file://{tmp_path / 'landing'}"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    path = report["result"]["path"].removeprefix("file://")
    served = [u["login"] for u in Dataset(EmulatorConfig(seed=42, mt4_users=1000)).mt4_users(0, 1000)]
    assert pq.read_table(path, columns=["login"]).column("login").to_pylist() == served
    assert report["result"]["files"][0]["pages"] == 7 and pq.read_metadata(path).num_row_groups == 3
    assert report["pandas"] == [], "the snapshot path imported pandas"
