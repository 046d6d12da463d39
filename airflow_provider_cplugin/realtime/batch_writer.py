"""One stream's batches: cut on the event loop, decoded and landed as numbered Parquet files in a worker thread.

The loop only moves :class:`~.events.RawItems` (text) around: it cuts them into batches (rows, bytes, time) and
starts one write at a time per stream (what bounds memory). The write, in a worker thread, tracks sequences
(when the stream has a sequence function), decodes the batch into Arrow (:mod:`.item_decode`: the C++ JSON
reader, or the checked per-record path for what it refuses), quarantines what does not convert and writes the
file atomically.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.hub_schemas import CHANNEL, CONNECTION, RECEIVED_AT, SEQUENCE, SEQUENCE_KEY
from airflow_provider_cplugin.parquet.landing import ParquetLander
from airflow_provider_cplugin.parquet.schemas import TS, EntitySchema, snake_case
from airflow_provider_cplugin.realtime.events import RawItems
from airflow_provider_cplugin.realtime.item_decode import Item, ItemDecoder, decode_items
from airflow_provider_cplugin.realtime.sample_request import SampleRequest

_NUMBERED = re.compile(r"__([br])(\d{5})\.(parquet|jsonl)$")
_READ_COLUMNS = [snake_case(c) for c in (CONNECTION, RECEIVED_AT, SEQUENCE_KEY, SEQUENCE)]

Tracker = Callable[[list[Item]], list[Item]]
LATE_TRACK_MAX = 200_000  # items after the window kept for sequence tracking (a few MB of text)
"""Sets each item's ``sequence`` and returns the items to land (duplicates dropped), in arrival order."""

WriteResult = tuple[dict[str, Any] | None, str | None, int]


@dataclass
class Earlier:
    """What earlier trigger instances (or attempts) of the run left for one stream, read from its files."""

    files: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    rejects: int = 0
    reject_files: list[str] = field(default_factory=list)
    connection: int = 0
    last_received_at: float | None = None
    last_sequence: dict[str, int] = field(default_factory=dict)


class BatchWriter:
    """Cuts one stream's items into numbered Parquet batches, each decoded and written in a worker thread."""

    def __init__(
        self,
        entity: EntitySchema,
        directory: ObjectStoragePath,
        run_name: str,
        request: SampleRequest,
        *,
        channel: str = "",
        connection_offset: int = 0,
    ) -> None:
        self.entity = entity
        self.directory = directory
        self.run_name = run_name
        self.channel = channel
        self.connection_offset = connection_offset
        self.batch_rows = request.batch_rows
        self.batch_bytes = request.batch_bytes
        self.converter = RecordBatchConverter(entity)
        self.decoder = ItemDecoder(entity, channel)
        self.tracker: Tracker | None = None
        # Sequence tracking of items received after the window (never landed): set when the sampler needs them.
        self.late_tracker: Tracker | None = None
        self._late: list[RawItems] = []
        self._late_rows = 0
        self.pending: list[RawItems] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._write: asyncio.Task[WriteResult] | None = None
        self._lock: asyncio.Lock | None = None
        self.files: list[dict[str, Any]] = []
        self.reject_files: list[str] = []
        self.events = 0  # rows landed by this instance
        self.rejected = 0  # events of this instance quarantined in rejects files
        self.decoded_fast = 0  # batches the C++ reader decoded (the rest took the checked path)
        self.next_batch = 0

    # ------------------------------------------------------------------ earlier files (worker thread)

    def _numbered(self) -> list[tuple[int, str, ObjectStoragePath]]:
        if not self.directory.exists():
            return []
        prefix = f"{self.run_name}__"
        found = []
        for p in self.directory.iterdir():
            match = _NUMBERED.search(p.name)
            if match and p.name.startswith(prefix) and p.name[len(prefix) :] == match.group(0)[2:]:
                found.append((int(match.group(2)), match.group(1), p))
        return sorted(found, key=lambda item: (item[0], item[1]))

    def existing_batches(self) -> list[ObjectStoragePath]:
        return [p for _, kind, p in self._numbered() if kind == "b"]

    def resume_numbering(self) -> int:
        """Continue after the batches (and rejects files) an earlier attempt landed; returns how many batches."""
        numbered = self._numbered()
        if numbered:
            self.next_batch = numbered[-1][0] + 1
        return sum(1 for _, kind, _ in numbered if kind == "b")

    def scan(self, manifest_files: dict[str, dict[str, Any]]) -> Earlier:
        """Read what earlier instances landed: rows, last connection, last event time and index per partition."""
        self.resume_numbering()
        earlier = Earlier()
        for _, kind, path in self._numbered():
            if kind == "r":
                with path.open("r") as f:
                    earlier.rejects += sum(1 for line in f if line.strip())
                earlier.reject_files.append(str(path))
                continue
            with path.open("rb") as f:
                parquet = pq.ParquetFile(f)
                table = parquet.read(columns=_READ_COLUMNS)
                info = manifest_files.get(str(path)) or {
                    "path": str(path),
                    "rows": parquet.metadata.num_rows,
                    "bytes": path.stat().st_size,
                    "row_groups": parquet.metadata.num_row_groups,
                    "entity": self.entity.name,
                    "schema": {},
                }
            earlier.files.append(info)
            earlier.rows += table.num_rows
            if not table.num_rows:
                continue
            conn, received, keys, seqs = (table.column(c) for c in _READ_COLUMNS)
            earlier.connection = max(earlier.connection, int(pc.max(conn).as_py() or 0))
            last = pc.max(received).as_py()
            if last is not None:
                stamp = last.replace(tzinfo=UTC).timestamp() if last.tzinfo is None else last.timestamp()
                earlier.last_received_at = max(earlier.last_received_at or 0.0, stamp)
            for key, index in zip(keys.to_pylist(), seqs.to_pylist(), strict=True):
                if key is not None and index is not None and index > earlier.last_sequence.get(key, -1):
                    earlier.last_sequence[key] = index
        return earlier

    # ------------------------------------------------------------------ batching (event loop)

    @property
    def lock(self) -> asyncio.Lock:
        # Created on first use, on the loop: the size cut (drain) and the time cut (flusher) both start writes.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def add(self, runs: list[RawItems]) -> None:
        if not runs:
            return
        self.pending.extend(runs)
        self._pending_rows += sum(run.count for run in runs)
        self._pending_bytes += sum(len(run.text) for run in runs)
        async with self.lock:
            while self._pending_rows >= self.batch_rows or (self.pending and self._pending_bytes >= self.batch_bytes):
                rows = min(self._pending_rows, self.batch_rows)
                if self._pending_bytes >= self.batch_bytes:
                    per_row = max(self._pending_bytes // max(self._pending_rows, 1), 1)
                    rows = min(rows, max(self.batch_bytes // per_row, 1))
                await self._start_write(self._take(rows))

    def _take(self, rows: int) -> list[RawItems]:
        """The first ``rows`` pending items (a run is split where the cut falls inside it)."""
        batch: list[RawItems] = []
        taken = 0
        while self.pending and taken < rows:
            run = self.pending.pop(0)
            if taken + run.count > rows:
                run, rest = run.split(rows - taken)
                self.pending.insert(0, rest)
            batch.append(run)
            taken += run.count
        self._pending_rows = sum(run.count for run in self.pending)
        self._pending_bytes = sum(len(run.text) for run in self.pending)
        return batch

    def _take_all(self) -> list[RawItems]:
        return self._take(sum(run.count for run in self.pending))

    async def flush(self) -> None:
        """Time cut: land whatever is pending now and wait until it (and any write in flight) landed."""
        async with self.lock:
            if self.pending:
                await self._start_write(self._take_all())
            await self._await_write()

    async def _start_write(self, runs: list[RawItems]) -> None:
        await self._await_write()  # one write in flight per stream keeps memory bounded
        number = self.next_batch
        self.next_batch += 1
        self._write = asyncio.create_task(asyncio.to_thread(self._write_file, runs, number))

    async def _await_write(self) -> None:
        if self._write is not None:
            # Shielded: a cancel (trigger cancelled mid-write) must not cancel the landing, so close() can still
            # collect this file and write what is pending.
            landed, rejects, rejected = await asyncio.shield(self._write)
            self._write = None
            if landed is not None:
                self.files.append(landed)
                self.events += int(landed["rows"])
            if rejects is not None:
                self.reject_files.append(rejects)
                self.rejected += rejected

    def observe_late(self, runs: list[RawItems]) -> None:
        """Items received after the window: not landed, but their sequences still tell a restarted sampler how many
        events of a partition it missed. Kept (bounded) until close(), so they are tracked after every landed item;
        past the bound a partition's loss stays unknown, which the summary says."""
        if self.late_tracker is None:
            return
        for run in runs:
            if self._late_rows + run.count > LATE_TRACK_MAX:
                return
            self._late.append(run)
            self._late_rows += run.count

    async def close(self) -> None:
        if self.pending:
            await self._start_write(self._take_all())
        await self._await_write()
        if self._late and self.late_tracker is not None:
            late, self._late = self._late, []
            await asyncio.to_thread(self._track_late, late, self.late_tracker)

    def _track_late(self, runs: list[RawItems], tracker: Tracker) -> None:
        items, _bad = decode_items(runs, self.channel)  # unparseable late items: counted late already, not tracked
        tracker(items)

    # ------------------------------------------------------------------ decoding and writing (worker thread)

    def _write_file(self, runs: list[RawItems], number: int) -> WriteResult:
        batch, bad = self._decode(runs)
        rejects = self._write_rejects(bad, number) if bad else None
        if batch is None or not batch.num_rows:
            return None, rejects, len(bad)
        target = self.directory / f"{self.run_name}__b{number:05d}.parquet"
        with ParquetLander(target, self.entity.arrow_schema) as lander:
            lander.write_batch(batch)
        assert lander.landed is not None
        return lander.landed.to_dict(), rejects, len(bad)

    def _decode(self, runs: list[RawItems]) -> tuple[pa.RecordBatch | None, list[tuple[Item, str]]]:
        items: list[Item] | None = None
        bad: list[tuple[Item, str]] = []
        keep: pa.Array | None = None
        if self.tracker is not None:
            # Sequences need the payloads: decoded once here, used by the fast path's mask or the checked path.
            items, bad = decode_items(runs, self.channel)
            tracked = self.tracker(items)
            if not bad:
                kept = {id(item) for item in tracked}
                keep = pa.array([id(item) in kept for item in items], pa.bool_())
            items = tracked
        if not bad:
            try:
                batch = self.decoder.decode(runs, self.connection_offset)
            except Exception:  # anything the fast path refuses takes the checked path below
                pass
            else:
                self.decoded_fast += 1
                if items is None:
                    return batch, []
                batch = batch.filter(keep) if keep is not None else batch
                return _with_sequences(batch, items), []
        if items is None:
            items, bad = decode_items(runs, self.channel)
        good, failed = self._isolate(items)
        return (self._convert(good) if good else None), bad + failed

    def _convert(self, items: list[Item]) -> pa.RecordBatch:
        received = pa.array([int(e.received_at * 1_000_000) for e in items], pa.int64()).cast(TS)
        offset = self.connection_offset
        supplied = {
            RECEIVED_AT: received,
            CONNECTION: pa.array([e.connection + offset for e in items], pa.int64()),
            CHANNEL: pa.array([self.channel] * len(items), pa.string()),
            SEQUENCE_KEY: pa.array([None if e.sequence is None else str(e.sequence[0]) for e in items], pa.string()),
            SEQUENCE: pa.array([None if e.sequence is None else e.sequence[1] for e in items], pa.int64()),
        }
        return self.converter.convert([e.payload for e in items], supplied)

    def _isolate(self, items: list[Item]) -> tuple[list[Item], list[tuple[Item, str]]]:
        """Split a batch that does not convert until the items that do not convert are alone (log2 steps)."""
        if not items:
            return [], []
        try:
            self._convert(items)
        except Exception as err:  # any failure: the item is quarantined with the reason, never dropped
            if len(items) == 1:
                return [], [(items[0], f"{type(err).__name__}: {err}")]
            mid = len(items) // 2
            good_a, bad_a = self._isolate(items[:mid])
            good_b, bad_b = self._isolate(items[mid:])
            return good_a + good_b, bad_a + bad_b
        return items, []

    def _write_rejects(self, bad: list[tuple[Item, str]], number: int) -> str:
        target = self.directory / f"{self.run_name}__r{number:05d}.jsonl"
        lines = [
            json.dumps(
                {
                    "stream": self.channel,
                    "reason": reason,
                    "received_at": datetime.fromtimestamp(item.received_at, UTC).isoformat(),
                    "connection": item.connection + self.connection_offset,
                    "payload": item.text if item.text is not None else json.dumps(item.payload, default=str),
                },
                sort_keys=True,
            )
            for item, reason in bad
        ]
        write_atomic(target, "\n".join(lines) + "\n")
        return str(target)


def _with_sequences(batch: pa.RecordBatch, items: list[Item]) -> pa.RecordBatch:
    names = batch.schema.names
    key_at, seq_at = names.index(snake_case(SEQUENCE_KEY)), names.index(snake_case(SEQUENCE))
    keys = pa.array([None if e.sequence is None else str(e.sequence[0]) for e in items], pa.string())
    indexes = pa.array([None if e.sequence is None else e.sequence[1] for e in items], pa.int64())
    return batch.set_column(key_at, batch.schema.field(key_at), keys).set_column(
        seq_at, batch.schema.field(seq_at), indexes
    )


def write_atomic(path: ObjectStoragePath, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.inprogress"
    with tmp.open("w") as f:
        f.write(text)
    tmp.rename(path)
