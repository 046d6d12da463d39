"""Shared fixtures: one emulator process per test session, a helper to define Airflow connections, and the
shape check of XCom results and trigger events against their TypedDicts (airflow_provider_cplugin.results).

def test_x(emulator, airflow_conn):
    conn_id = airflow_conn("cplugin_default", emulator.connection_json())
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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


def shape_problems(value: Any, typed: type, where: str = "") -> list[str]:
    """How ``value`` differs from the ``TypedDict`` ``typed`` (``airflow_provider_cplugin.results``): missing
    required keys, keys it does not declare, recursively through fields typed as a TypedDict, a list of them, a
    dict of them, or one of them or None."""
    if not isinstance(value, dict):
        return [f"{where or typed.__name__}: {type(value).__name__}, not a dict"]
    keys = set(value)
    required, optional = set(typed.__required_keys__), set(typed.__optional_keys__)  # type: ignore[attr-defined]
    problems = [f"{where}{k}: missing" for k in sorted(required - keys)]
    problems += [f"{where}{k}: not in {typed.__name__}" for k in sorted(keys - required - optional)]
    hints = typing.get_type_hints(typed)
    for key in sorted(keys & set(hints)):
        problems += _nested_problems(value[key], hints[key], f"{where}{key}.")
    return problems


def _nested_problems(value: Any, hint: Any, where: str) -> list[str]:
    if typing.is_typeddict(hint):
        return shape_problems(value, hint, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args and typing.is_typeddict(args[0]) and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in shape_problems(item, args[0], f"{where}{i}.")]
    if origin is dict and len(args) == 2 and typing.is_typeddict(args[1]) and isinstance(value, dict):
        return [p for k, item in value.items() for p in shape_problems(item, args[1], f"{where}{k}.")]
    if origin in (typing.Union, types.UnionType) and value is not None:
        typed = [a for a in args if typing.is_typeddict(a)]
        return shape_problems(value, typed[0], where) if len(typed) == 1 else []
    return []


ShapeCheck = Callable[[Any, type], None]


@pytest.fixture
def shape() -> ShapeCheck:
    """``shape(value, SnapshotResult)``: ``value`` has exactly the keys of the TypedDict (nested ones too)."""

    def check(value: Any, typed: type) -> None:
        problems = shape_problems(value, typed)
        assert not problems, f"{typed.__name__}: {problems}"

    return check
