"""Small composable pieces the snapshot operators share: login chunks and Arrow row filters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.group_mask import group_mask
from airflow_provider_cplugin.parquet.schemas import snake_case
from airflow_provider_cplugin.parquet.stream import BatchFilter


def chunked(values: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def parse_logins(logins: Sequence[int] | str | None) -> list[int]:
    """``[1, 2]``, ``"1,2"`` or ``"1, 2"`` (handy from a template) → sorted unique ints."""
    if logins is None:
        return []
    raw: Iterable[Any] = logins.split(",") if isinstance(logins, str) else logins
    return sorted({int(str(v).strip()) for v in raw if str(v).strip()})


def group_mask_filter(mask: str) -> BatchFilter:
    """Keep rows whose ``group`` matches an MT group mask (syntax: :mod:`airflow_provider_cplugin.group_mask`)."""
    parsed = group_mask(mask)

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        groups = batch.column("group")
        # A page has thousands of rows but a handful of groups: match each distinct name once.
        matching = [g for g in pc.unique(groups).to_pylist() if g is not None and parsed.matches(g)]
        return batch.filter(pc.is_in(groups, value_set=pa.array(matching, type=groups.type)))

    return keep


def interval_filter(wire_field: str, start: datetime, end: datetime) -> BatchFilter:
    """Keep rows with ``start <= field < end``: half-open, so adjacent intervals neither overlap nor leave gaps."""
    column = snake_case(wire_field)

    def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
        values = batch.column(column)
        lo = pa.scalar(start, type=values.type)
        hi = pa.scalar(end, type=values.type)
        mask = pc.and_(pc.greater_equal(values, lo), pc.less(values, hi))
        return batch.filter(pc.fill_null(mask, False))

    return keep
