"""Declared-key uniqueness for one landing, in Arrow (no per-row Python), with memory flat in the row count.

The API serves every keyed list in key order (reference: users and online by login, trades by ticket, MT5 by id,
ascending), so :class:`KeyTracker` first proves uniqueness as the rows stream: while each key is greater than the
one before it (a columnar lexicographic comparison per batch), a key cannot repeat, and only the last key is kept.
Only a landing whose keys arrive out of order pays for the general check: before commit, the lander reads the key
columns back from its temporary and :meth:`KeyTracker.repeated` counts them (a hash aggregation: about 50 bytes per
row). Only when a key repeats does the lander read its temporary back, one row group at a time, through
:class:`KeyCheck`: first occurrences are kept, and the rows of repeated keys are compared whole to tell exact
repeats (dropped) from conflicts (the landing fails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_cplugin.parquet.values import row_numbers

_ROW = "__row"
_COUNT = "count_all"


class KeyTracker:
    """Watches the key columns of every written batch: ordered (proven unique) until a key is not greater than the
    one before it."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.ordered = True
        """Every key so far was greater than the previous one (so no key repeats)."""
        self._last: pa.RecordBatch | None = None  # the last key seen (one row), while ordered

    def add(self, batch: pa.RecordBatch) -> None:
        if not self.ordered or batch.num_rows == 0:
            return
        keys = batch.select(self.columns)
        across = self._last is None or _increasing(self._last, keys.slice(0, 1))
        self.ordered = across and (batch.num_rows == 1 or _increasing(keys.slice(0, batch.num_rows - 1), keys.slice(1)))
        self._last = keys.slice(batch.num_rows - 1) if self.ordered else None

    def repeated(self, read_keys: Callable[[], pa.Table]) -> RepeatedKeys | None:
        """Keys seen more than once (with the row numbers of their first occurrences), or None when unique.

        :param read_keys: the key columns of every written row, in order (only called when the keys came out of
            order: the lander reads them back from its temporary).
        """
        if self.ordered:
            return None
        table = read_keys()
        counts = table.group_by(self.columns).aggregate([([], _COUNT)])
        repeated = counts.filter(pc.greater(counts[_COUNT], 1))
        if repeated.num_rows == 0:
            return None
        numbered = table.append_column(_ROW, row_numbers(table.num_rows))
        firsts = numbered.group_by(self.columns, use_threads=False).aggregate([(_ROW, "min")])
        keep = pc.is_in(numbered[_ROW], value_set=firsts[f"{_ROW}_min"].combine_chunks())
        return RepeatedKeys(repeated.select(self.columns), keep.combine_chunks())


def _increasing(before: pa.RecordBatch, after: pa.RecordBatch) -> bool:
    """Whether each row of ``after`` is greater than the same row of ``before`` (lexicographic over the key
    columns; a null key compares as unknown, so it counts as out of order)."""
    greater: pa.Array | None = None
    for name in reversed(before.schema.names):
        a, b = before.column(name), after.column(name)
        here = pc.greater(b, a)
        greater = here if greater is None else pc.or_kleene(here, pc.and_kleene(pc.equal(b, a), greater))
    return greater is not None and pc.all(greater, skip_nulls=False).as_py() is True


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
