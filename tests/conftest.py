"""Shared fixtures: one emulator process per test session, a helper to define Airflow connections, and the
shape check of XCom results and trigger events against their TypedDicts (airflow_provider_cplugin.results).

def test_x(emulator, airflow_conn):
    conn_id = airflow_conn("cplugin_default", emulator.connection_json())
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from result_shapes import ShapeCheck, shape_problems

from airflow_provider_cplugin.emulator.process import EmulatorProcess


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    """The emulator in its own process on loopback (seed 42, 1000 MT4 users), shared by the whole session.

    Tests that install faults or revoke tokens must undo them (``emulator.set_faults([])``) or use their own
    ``EmulatorProcess``.
    """
    with EmulatorProcess(seed=42, users=1000) as emu:
        yield emu


AirflowConn = Callable[..., str]


@pytest.fixture
def airflow_conn(monkeypatch: pytest.MonkeyPatch) -> AirflowConn:
    """``airflow_conn(conn_id, value)`` defines ``AIRFLOW_CONN_<CONN_ID>`` for this test and returns the id.

    ``value`` is a URI, a JSON string, or a dict (dumped as Airflow's JSON connection format).
    """

    def define(conn_id: str, value: str | dict[str, Any]) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", text)
        return conn_id

    return define




@pytest.fixture
def shape() -> ShapeCheck:
    """``shape(value, SnapshotResult)``: ``value`` has exactly the keys of the TypedDict (nested ones too)."""

    def check(value: Any, typed: type) -> None:
        problems = shape_problems(value, typed)
        assert not problems, f"{typed.__name__}: {problems}"

    return check
