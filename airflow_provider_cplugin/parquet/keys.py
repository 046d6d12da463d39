"""Declared-key uniqueness for one landing, in Arrow (no per-row Python), cheap unless the key repeats.

While a file is written, :class:`KeyTracker` keeps only the key columns of each batch (a few MB per million
rows) and :meth:`KeyTracker.repeated` counts them once, before commit. Only when a key repeats does the lander read
its temporary back, one row group at a time, through :class:`KeyCheck`: first occurrences are kept, and the rows of
repeated keys are compared whole to tell exact repeats (dropped) from conflicts (the landing fails).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_ROW = "__row"
_COUNT = "count_all"


def _row_numbers(count: int, start: int = 0) -> pa.Array:
    if count == 0:
        return pa.array([], pa.int64())
    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.add(pc.cumulative_sum(ones), start - 1)


class KeyTracker:
    """Collects the key columns of every written batch."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self._batches: list[pa.RecordBatch] = []

    def add(self, batch: pa.RecordBatch) -> None:
        self._batches.append(batch.select(self.columns))

    def repeated(self) -> RepeatedKeys | None:
        """Keys seen more than once (with the row numbers of their first occurrences), or None when unique."""
        if not self._batches:
            return None
        table = pa.Table.from_batches(self._batches)
        counts = table.group_by(self.columns).aggregate([([], _COUNT)])
        repeated = counts.filter(pc.greater(counts[_COUNT], 1))
        if repeated.num_rows == 0:
            return None
        numbered = table.append_column(_ROW, _row_numbers(table.num_rows))
        firsts = numbered.group_by(self.columns, use_threads=False).aggregate([(_ROW, "min")])
        keep = pc.is_in(numbered[_ROW], value_set=firsts[f"{_ROW}_min"].combine_chunks())
        return RepeatedKeys(repeated.select(self.columns), keep.combine_chunks())


class RepeatedKeys:
    """Key values that occur more than once, and which rows of the file are first occurrences."""

    def __init__(self, keys: pa.Table, keep: pa.BooleanArray) -> None:
        self.keys = keys
        self.keep = keep

    @property
    def num_rows(self) -> int:
        return self.keys.num_rows


class KeyCheck:
    """Filters the file's batches, in order, to first occurrences; remembers the rows of repeated keys."""

    def __init__(self, columns: Sequence[str], repeated: RepeatedKeys) -> None:
        self.columns = list(columns)
        self.repeated = repeated
        self.dropped = 0
        self._offset = 0
        self._rows: list[pa.Table] = []

    def keep_first(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        table = pa.Table.from_batches([batch])
        self._rows.append(table.join(self.repeated.keys, keys=self.columns, join_type="left semi"))
        mask = self.repeated.keep.slice(self._offset, batch.num_rows)
        self._offset += batch.num_rows
        kept = batch.filter(mask)
        self.dropped += batch.num_rows - kept.num_rows
        return kept

    def conflicting_keys(self) -> list[object]:
        """Key values whose rows differ in some column (all of them, in key order)."""
        rows = pa.concat_tables(self._rows)
        distinct = rows.group_by(rows.column_names, use_threads=False).aggregate([])
        per_key = distinct.group_by(self.columns).aggregate([([], _COUNT)])
        conflicts = (
            per_key.filter(pc.greater(per_key[_COUNT], 1))
            .select(self.columns)
            .sort_by([(c, "ascending") for c in self.columns])
        )
        if len(self.columns) == 1:
            return conflicts.column(0).to_pylist()
        return [tuple(r.values()) for r in conflicts.to_pylist()]
