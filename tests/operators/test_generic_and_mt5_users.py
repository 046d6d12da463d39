"""The generic operator's remaining shapes (paged to XCom, one record to Parquet, bad arguments at parse time) and
MT5 users read login by login: every result equals what the emulator's generators serve."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.data import MT5_LOGIN_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.operators.webapi import CPluginWebApiOperator

from .conftest import RunTask, calls, nothing_landed


@pytest.mark.parametrize(
    ("kwargs", "named"), [({"destination": "s3"}, "destination"), ({"entity": "mt4_userz"}, "mt4_userz")]
)
def test_bad_generic_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], named: str) -> None:
    """Bug caught: an unknown destination or entity accepted, failing (or landing untyped) only at run time."""
    with pytest.raises(ValueError, match=named):
        CPluginWebApiOperator(task_id="bad", endpoint="UsersRequest", **kwargs)


def test_every_page_to_xcom_in_served_order(run_task: RunTask, emu: EmulatorProcess, dataset: Dataset) -> None:
    """Bugs caught: only the first page returned; pages concatenated out of order or a page twice."""
    result: list[dict[str, Any]] = run_task(  # type: ignore[assignment]  # paginate=True returns the items
        CPluginWebApiOperator(task_id="all", endpoint="UsersRequest", paginate=True, page_size=1000)
    )
    assert [u["login"] for u in result] == [dataset.mt4_user(i)["login"] for i in range(dataset.mt4_user_count)]
    assert calls(emu, "UsersRequest") == 3


def test_one_record_lands_as_one_row(run_task: RunTask, emu: EmulatorProcess, landing: str) -> None:
    """A non-paged call answering one object lands one row of it (schema inferred from it).

    Bug caught: a single object iterated as a list of its keys, or requested twice (once to infer the schema).
    """
    common = run_task(CPluginWebApiOperator(task_id="common", endpoint="ManagerCommon"))
    result = run_task(
        CPluginWebApiOperator(task_id="pq", endpoint="ManagerCommon", destination="parquet", output_path=landing)
    )
    (row,) = pq.read_table(result["path"].removeprefix("file://")).to_pylist()
    assert {k: row[k] for k in ("name", "owner", "build", "time_zone")} == {
        "name": common["name"], "owner": common["owner"], "build": common["build"], "time_zone": common["timeZone"]
    }  # fmt: skip
    assert common["timeZone"] == 2  # the emulator's server zone
    assert calls(emu, "ManagerCommon") == 2  # one for the XCom run, one for the Parquet run


def test_mt5_users_skip_unknown_logins_and_fail_on_other_errors(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Bugs caught: an unknown login failing the whole snapshot; any other error (Manager down) treated like an
    unknown login, so users silently go missing."""
    logins = [MT5_LOGIN_BASE + 3, MT5_LOGIN_BASE + 999_999, MT5_LOGIN_BASE + 1]
    op = UsersSnapshotOperator(task_id="mt5", cplugin_conn_id="cplugin_mt5", output_path=landing, logins=logins)
    result = run_task(op)
    rows = pq.read_table(result["path"].removeprefix("file://")).to_pylist()
    assert [r["login"] for r in rows] == [MT5_LOGIN_BASE + 1, MT5_LOGIN_BASE + 3]
    assert [r["group"] for r in rows] == [dataset.mt5_user(1)["group"], dataset.mt5_user(3)["group"]]
    other = f"{landing}/other"
    emu.set_faults([{"path": r"/UserGet/", "envelope_error": {"code": "NoConnect", "message": "manager down"}}])
    with pytest.raises(CPluginApiError) as caught:
        run_task(UsersSnapshotOperator(task_id="mt5", cplugin_conn_id="cplugin_mt5", output_path=other, logins=logins))
    assert caught.value.code == "NoConnect" and nothing_landed(other)
