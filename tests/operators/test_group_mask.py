"""MetaTrader group-mask syntax, shared by the operators' row filter and the emulator."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_provider_cplugin.group_mask import GroupMask
from airflow_provider_cplugin.operators.row_filters import group_mask_filter


@pytest.mark.parametrize(
    ("mask", "name", "expected"),
    [
        ("*", "demo-std", True),
        ("real*", "REAL-pro", True),  # case-insensitive
        ("*,!demo*", "demo-std", False),  # exclusion
        ("*,!demo*", "real-pro", True),
        ("real?", "real1", False),  # ? and [ are literal, not wildcards
        ("real[1]", "real1", False),
        ("real\\*", "real\\pro", True),  # backslash is a literal path separator
        ("", "real", False),
    ],
)
def test_group_mask_syntax(mask: str, name: str, expected: bool) -> None:
    assert GroupMask(mask).matches(name) is expected


def test_group_mask_filter_keeps_matching_rows_and_drops_nulls() -> None:
    batch = pa.RecordBatch.from_pydict({"login": [1, 2, 3, 4], "group": ["real-a", "demo-b", None, "Real-c"]})
    assert group_mask_filter("real*")(batch).column("login").to_pylist() == [1, 4]
