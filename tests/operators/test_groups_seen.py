"""MT5 groups collected from given logins, and every way a group or user read can go wrong: the landed rows are
the emulator's groups of exactly those users, an error other than NotFound fails the task with nothing landed, and
a credential never lands even when the server fills it in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.data import MT5_GROUP_BY_NAME, MT5_LOGIN_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError
from airflow_provider_cplugin.operators.groups import GroupsSnapshotOperator
from airflow_provider_cplugin.parquet.schemas import MT5_GROUP

from .conftest import RunTask, calls, nothing_landed
from .test_datasets import assert_landed, table, wire

UNKNOWN_LOGIN = MT5_LOGIN_BASE + 999_999


def groups_op(landing: str, **kwargs: Any) -> GroupsSnapshotOperator:
    return GroupsSnapshotOperator(task_id="g5", cplugin_conn_id="cplugin_mt5", output_path=landing, **kwargs)


def served_group(name: str, dataset: Dataset) -> dict[str, Any]:
    return {k: v for k, v in dataset.mt5_group(MT5_GROUP_BY_NAME[name]).items() if k != "reportsSMTPPass"}


def pick_logins(dataset: Dataset, groups: int) -> list[int]:
    """A few logins whose users cover fewer than every group (so the groups must come from these users)."""
    by_group: dict[str, int] = {}
    for i in range(dataset.mt5_user_count):
        by_group.setdefault(dataset.mt5_user_group(i).name, MT5_LOGIN_BASE + i)
        if len(by_group) == groups:
            return sorted(by_group.values())
    raise AssertionError("the data set has too few groups")


def test_groups_of_given_logins_skip_unknown_logins(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Given logins: their users' groups, with no position scan; an unknown login is counted and skipped.

    Bugs caught: the position scan run anyway (the groups of every position owner land); an unknown login
    failing the task or its NotFound swallowed without the count; a group of a user not asked for.
    """
    logins = pick_logins(dataset, 2)
    result = run_task(groups_op(landing, logins=[*logins, UNKNOWN_LOGIN]))
    tbl = assert_landed(result, MT5_GROUP)
    seen = sorted({dataset.mt5_user_group(login - MT5_LOGIN_BASE).name for login in logins})
    assert len(seen) == 2
    assert tbl.drop_columns(["_extra"]).to_pylist() == wire(MT5_GROUP, [served_group(g, dataset) for g in seen])
    assert calls(emu, "PositionByGroup") == 0
    assert (calls(emu, "UserGet"), calls(emu, "GroupGet")) == (3, 2)


def test_a_user_without_a_group_adds_none(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """Bug caught: a user whose ``group`` is empty/null adding ``""``/``None`` to the groups read (a GroupGet of
    an empty name, or a failed task)."""
    first, second = pick_logins(dataset, 2)
    blank = {**dataset.mt5_user(first - MT5_LOGIN_BASE), "group": ""}
    body = json.dumps({"data": blank, "error": None, "meta": {"activityId": "e" * 32}})
    emu.set_faults([{"path": rf"/UserGet/{first}$", "status": 200, "body": body}])
    result = run_task(groups_op(landing, logins=[first, second]))
    expected = dataset.mt5_user_group(second - MT5_LOGIN_BASE).name
    assert table(result).column("group").to_pylist() == [expected]
    assert calls(emu, "GroupGet") == 1


@pytest.mark.parametrize("method", ["UserGet", "GroupGet"])
def test_an_error_other_than_not_found_fails_and_lands_nothing(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str, method: str
) -> None:
    """Bug caught: every API error treated like NotFound - a group silently missing from the dimension table
    because the Manager was down for one call."""
    emu.set_faults([{"path": rf"/{method}/", "envelope_error": {"code": "NoConnect", "message": "manager down"}}])
    with pytest.raises(CPluginApiError) as caught:
        run_task(groups_op(landing, logins=pick_logins(dataset, 2)))
    assert caught.value.code == "NoConnect" and method in str(caught.value.path)
    assert nothing_landed(landing)
    assert emu.stats()["faults"] == []


def test_commissions_land_as_sorted_json_and_the_smtp_password_never(
    run_task: RunTask, emu: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The server filling in ``reportsSMTPPass`` and nested ``commissions``.

    Bugs caught: the password landed (the curated DTO blanks it, a real server may not); commissions landed as
    Python ``str(dict)`` or with unsorted keys (a rerun with the server's other key order gives another file).
    """
    name = "real\\pro"
    commissions = [{"name": "std", "tiers": [{"value": 1.5, "mode": "Money"}], "path": "*"}]
    row = {**dataset.mt5_group(MT5_GROUP_BY_NAME[name]), "reportsSMTPPass": "hunter2", "commissions": commissions}
    body = json.dumps({"data": row, "error": None, "meta": {"activityId": "f" * 32}})
    emu.set_faults([{"path": r"/GroupGet/", "status": 200, "body": body}])
    result = run_task(groups_op(landing, groups=[name]))
    landed = table(result)
    assert landed.column("commissions").to_pylist() == [json.dumps(commissions, sort_keys=True)]
    assert "reports_smtp_pass" not in landed.column_names
    assert b"hunter2" not in Path(result["path"].removeprefix("file://")).read_bytes()


@pytest.mark.parametrize("groups", [["real\\pro", ""], [7], "real\\pro, ,demo\\pro", {"real\\pro": 1}])
def test_bad_group_names_are_refused_before_any_request(
    run_task: RunTask, emu: EmulatorProcess, landing: str, groups: Any
) -> None:
    """Bug caught: a blank or non-text group name sent as ``GroupGet/`` (or a dict's keys taken as names)."""
    with pytest.raises(CPluginConfigError) as caught:
        run_task(groups_op(landing, groups=groups))
    assert caught.value.field == "groups"
    assert calls(emu, "GroupGet") == 0 and nothing_landed(landing)
