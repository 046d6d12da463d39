"""The shape check the operator and trigger tests use (``shape`` fixture, tests/conftest.py) catches drift between
``airflow_provider_cplugin.results`` and what the code returns; the operators and triggers themselves are checked
where their tests run them against the emulator (tests/operators, tests/sensors, tests/triggers)."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from result_shapes import shape_problems

from airflow_provider_cplugin import results

FILE = {
    "path": "file:///x.parquet", "rows": 1, "bytes": 10, "row_groups": 1, "entity": "mt4_users", "schema": {},
    "duplicates_dropped": 0, "pages": 1, "records_read": 1,
}  # fmt: skip
ONE_FILE = {
    "trade_platform": "tp", "platform_type": "MT4", "rows": 1, "duplicates_dropped": 0, "files": [FILE],
    "path": FILE["path"], "entity": "mt4_users", "schema": {},
}  # fmt: skip


def test_every_result_type_is_a_typeddict_with_resolvable_hints() -> None:
    for name in results.__all__:
        typed = getattr(results, name)
        assert typing.is_typeddict(typed), name
        assert set(typing.get_type_hints(typed)) == typed.__required_keys__ | typed.__optional_keys__, name


def test_not_required_keys_are_optional() -> None:
    """``NotRequired`` is seen (it would not be with string annotations on Python 3.11)."""
    assert results.SnapshotResult.__optional_keys__ == {"path", "entity", "schema"}
    assert results.HubSampleSummary.__optional_keys__ == {"resumed_from_manifest"}
    assert results.CaptureEvent.__optional_keys__ == {"recovered"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({k: v for k, v in ONE_FILE.items() if k != "rows"}, "rows: missing"),
        ({**ONE_FILE, "row_count": 1}, "row_count: not in SnapshotResult"),
        ({**ONE_FILE, "files": [{**FILE, "pages_read": 1}]}, "files.0.pages_read: not in LandedFileEntry"),
        ({**ONE_FILE, "files": [{k: v for k, v in FILE.items() if k != "bytes"}]}, "files.0.bytes: missing"),
    ],
)
def test_drift_is_named(value: dict[str, Any], problem: str) -> None:
    assert shape_problems(ONE_FILE, results.SnapshotResult) == []
    assert shape_problems(value, results.SnapshotResult) == [problem]


class _Outer(typing.TypedDict):
    per_stream: dict[str, results.HubNotLanded]
    rejects: results.CaptureRejects | None


def test_dict_values_and_optional_typeddicts_are_checked() -> None:
    fine = {"after_window": 0, "over_max_events": 0, "duplicates": 0}
    assert shape_problems({"per_stream": {"a": fine}, "rejects": None}, _Outer) == []
    assert shape_problems({"per_stream": {"a": {**fine, "late": 1}}, "rejects": {"rows": 0}}, _Outer) == [
        "per_stream.a.late: not in HubNotLanded",
        "rejects.path: missing",
    ]
