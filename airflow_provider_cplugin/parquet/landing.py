"""Streaming, atomic Parquet landing on any ``ObjectStoragePath`` (local disk, S3, GCS, memory...).

* **Streaming**: record batches are buffered only up to one row group, so memory stays flat however many pages
  the API returns.
* **Atomic**: the file is written under a hidden temporary name in the target directory and renamed into place
  on commit (a local rename is atomic; on object stores the rename is a copy whose object appears whole when its
  upload completes). A failed run removes its temporary file; readers never see a half-written Parquet file.
* **Idempotent**: file names are deterministic per (DAG, task, logical date, partition), so a rerun replaces the
  file it wrote before instead of adding a second copy of the same rows.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

TMP_SUFFIX = ".inprogress"
DEFAULT_ROW_GROUP_ROWS = 100_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(part: str) -> str:
    return _UNSAFE.sub("-", part).strip("-") or "_"


def partition_dir(base: ObjectStoragePath, entity: str, partitions: dict[str, str]) -> ObjectStoragePath:
    """Hive-style directory ``base/entity=<entity>/<k>=<v>/...`` (order of ``partitions`` is kept)."""
    path = base / f"entity={_safe(entity)}"
    for key, value in partitions.items():
        path = path / f"{_safe(key)}={_safe(str(value))}"
    return path


def run_file_name(dag_id: str, task_id: str, run_key: datetime | str, *, map_index: int = -1) -> str:
    """Deterministic file name for one task run: the same run always writes (and so replaces) the same file."""
    stamp = run_key.strftime("%Y%m%dT%H%M%S") if isinstance(run_key, datetime) else _safe(run_key)
    mapped = f"__m{map_index}" if map_index >= 0 else ""
    return f"{_safe(dag_id)}__{_safe(task_id)}__{stamp}{mapped}.parquet"


@dataclass(frozen=True)
class LandedFile:
    """What one landing wrote: small enough for XCom and TriggerEvents."""

    path: str
    rows: int
    bytes: int
    row_groups: int
    entity: str
    schema: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ParquetLander:
    """Writes record batches of one schema to ``target`` atomically.

    Use as a context manager: leaving it normally commits, leaving it with an exception aborts (the temporary
    file is deleted and any previous file at ``target`` stays untouched).
    """

    def __init__(
        self,
        target: ObjectStoragePath,
        schema: pa.Schema,
        *,
        entity: str | None = None,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        compression: str = "snappy",
    ) -> None:
        if row_group_rows <= 0:
            raise ValueError("row_group_rows must be positive")
        self.target = target
        self.schema = schema
        self.entity = entity or (schema.metadata or {}).get(b"entity", b"").decode() or target.stem
        self.row_group_rows = row_group_rows
        self.compression = compression
        self.rows = 0
        self.row_groups = 0
        self._tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        self._buffer: list[pa.RecordBatch] = []
        self._buffered_rows = 0
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._done = False
        self.landed: LandedFile | None = None
        """Set by :meth:`commit`."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        self._file = self._tmp.open("wb")
        self._writer = pq.ParquetWriter(self._file, self.schema, compression=self.compression)

    def _remove_stale_temporaries(self) -> None:
        # A worker killed mid-write (OOM, SIGKILL) leaves its hidden temporary behind; the same task's next
        # attempt owns that name prefix, so it may clean it up.
        prefix = f".{self.target.name}."
        try:
            siblings = list(self.target.parent.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return  # object stores: a prefix with no objects yet (mkdir is a no-op there) has nothing stale
        for sibling in siblings:
            if sibling.name.startswith(prefix) and sibling.name.endswith(TMP_SUFFIX):
                log.info("Removing stale temporary file %s", sibling)
                sibling.unlink(missing_ok=True)

    @property
    def rows_received(self) -> int:
        """Rows handed to the lander so far, written or still buffered."""
        return self.rows + self._buffered_rows

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            raise RuntimeError("ParquetLander is not open")
        if batch.schema != self.schema:
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered_rows += batch.num_rows
        if self._buffered_rows >= self.row_group_rows:
            self._flush()

    def _flush(self, *, final: bool = False) -> None:
        """Write whole row groups; keep the remainder buffered unless this is the last flush."""
        if not self._buffer or self._writer is None:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        full = table.num_rows if final else table.num_rows - table.num_rows % self.row_group_rows
        if full:
            self._writer.write_table(table.slice(0, full), row_group_size=self.row_group_rows)
            self.rows += full
            self.row_groups += -(-full // self.row_group_rows)
        rest = table.slice(full)
        self._buffer = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._buffered_rows = rest.num_rows

    def commit(self) -> LandedFile:
        if self._done:
            raise RuntimeError("ParquetLander already committed or aborted")
        if self._writer is None:
            self.open()
        try:
            self._flush(final=True)
            assert self._writer is not None
            self._writer.close()
            self._file.close()
            size = self._tmp.stat().st_size
            self._tmp.rename(self.target)
        except BaseException:
            self.abort()  # a failed flush, close or rename leaves no temporary and no open handle behind
            raise
        self._done = True
        landed = LandedFile(
            path=str(self.target),
            rows=self.rows,
            bytes=size,
            row_groups=self.row_groups,
            entity=self.entity,
            schema={f.name: str(f.type) for f in self.schema},
        )
        self.landed = landed
        log.info("Landed %d rows (%d bytes) at %s", landed.rows, landed.bytes, landed.path)
        return landed

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)
        log.warning("Aborted landing to %s; nothing was committed", self.target)
