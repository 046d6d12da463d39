"""The Airflow sandbox the DAG tests trust, and the provider's error texts: a failed ``airflow`` command or DAG run
is never taken for a pass, the user's own connections never leak in, and an error says only what it knows."""

from __future__ import annotations

import stat
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_cplugin import sandbox
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.lineage import LandingLineage
from airflow_provider_cplugin.sandbox import AirflowSandbox, SandboxRunError

pytest.importorskip("airflow.providers.openlineage")

FAKE_AIRFLOW = """#!/bin/sh
printf '%s\\n' "$FAKE_OUTPUT"
exit "$FAKE_RC"
"""


def fake_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, rc: int = 0) -> AirflowSandbox:
    """A sandbox whose ``airflow`` prints ``output`` and exits ``rc`` (a real subprocess, the real env)."""
    exe = tmp_path / "bin" / "airflow"
    exe.parent.mkdir(parents=True)
    exe.write_text(FAKE_AIRFLOW)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, path=None: str(exe))
    return AirflowSandbox(
        root=tmp_path / "sb", dags_folder=tmp_path / "dags", extra_env={"FAKE_OUTPUT": output, "FAKE_RC": str(rc)}
    )


def test_the_sandbox_env_holds_only_its_own_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Bugs caught: the caller's ``AIRFLOW_CONN_*`` / ``AIRFLOW__*`` (a user's real connection) passed into the
    sandbox; a landing path variable set to ``None`` when none is given."""
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", "cplugin://real-user-secret@prod")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("CPLUGIN_LANDING_PATH", raising=False)
    box = AirflowSandbox(root=tmp_path, dags_folder=tmp_path / "dags", connections={"cplugin_mt5": "{}"})
    env = box.env
    assert env["AIRFLOW_CONN_CPLUGIN_MT5"] == "{}" and "AIRFLOW_CONN_CPLUGIN_DEFAULT" not in env
    assert "AIRFLOW__CORE__EXECUTOR" not in env and "CPLUGIN_LANDING_PATH" not in env
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow_home")
    assert (
        AirflowSandbox(root=tmp_path, dags_folder=tmp_path, landing_path="file:///l").env["CPLUGIN_LANDING_PATH"]
        == "file:///l"
    )


def test_a_failing_airflow_command_raises_with_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bug caught: a non-zero exit of ``airflow db migrate`` ignored (every later DAG test then fails obscurely)."""
    box = fake_sandbox(tmp_path, monkeypatch, "ERROR: database is locked", rc=3)
    with pytest.raises(SandboxRunError, match="exited 3") as caught:
        box.migrate()
    assert "database is locked" in str(caught.value)
    assert (tmp_path / "sb" / "logs" / "db-migrate.log").read_text() == "ERROR: database is locked\n"


@pytest.mark.parametrize(
    ("output", "found"),
    [
        ("DagRun Finished: dag_id=d, logical_date=x, state=failed, run_id=r", "(failed)"),
        ("DagRun Finished: dag_id=d, state=success\nDagRun Finished: dag_id=d, state=failed", "(failed)"),
        ("DagRun Finished: dag_id=other, state=success", "(no final DagRun state)"),
        ("all good", "(no final DagRun state)"),
    ],
)
def test_a_dag_run_is_a_pass_only_when_it_ends_in_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, found: str
) -> None:
    """``airflow dags test`` can exit 0 for a run that failed: the last DagRun line of that DAG decides.

    Bugs caught: the exit code trusted alone; the first state line read instead of the last; another DAG's line
    taken for this one's.
    """
    box = fake_sandbox(tmp_path, monkeypatch, output)
    with pytest.raises(SandboxRunError) as caught:
        box.dags_test("d", "2026-01-01")
    assert f"did not succeed {found}" in str(caught.value)
    ok = "DagRun Finished: dag_id=d, state=failed\nDagRun Finished: dag_id=d, logical_date=x, state=success"
    assert "state=success" in fake_sandbox(tmp_path / "ok", monkeypatch, ok).dags_test("d", "2026-01-01")


def test_an_api_error_names_only_what_it_knows() -> None:
    """Bugs caught: ``GET None`` printed for a call without a path; the method dropped when it is known."""
    text = str(CPluginApiError("NotFound", "no user", method="GET", status=404, activity_id="a1"))
    assert text == "CPlugin WebAPI error NotFound: no user | HTTP 404 | activityId=a1"
    text = str(CPluginApiError("Internal", None, method="POST", path="/api/x", manager_code=3))
    assert text == "CPlugin WebAPI error Internal: v2 error: Internal | managerCode=3 | POST /api/x | activityId=<none>"


def test_a_file_of_an_entity_without_a_schema_has_no_schema_facet() -> None:
    """Bug caught: a schema facet claimed (empty, or another entity's) for a file whose schema is not known."""
    lineage = LandingLineage(
        "https://h", "tp", "MT4", entities=["a", "b"],
        files=[{"path": "file:///l/a.parquet", "rows": 4, "bytes": 9, "entity": "a"},
               {"path": "file:///l/b.parquet", "rows": 1, "bytes": 2, "entity": "b"}],
        schemas={"b": pa.schema([("x", pa.int64())])},
    ).operator_lineage()  # fmt: skip
    first, second = lineage.outputs
    assert "schema" not in first.facets and first.outputFacets["outputStatistics"].rowCount == 4
    assert [f.name for f in second.facets["schema"].fields] == ["x"]
