"""Small composable pieces the snapshot operators share: login chunks and Arrow row filters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.group_mask import group_mask
from airflow_provider_cplugin.parquet.schemas import snake_case
from airflow_provider_cplugin.parquet.stream import BatchFilter


def chunked(values: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


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
