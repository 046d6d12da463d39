"""Streaming, atomic Parquet landing on any ``ObjectStoragePath`` (local disk, S3, GCS, memory...).

* **Streaming**: record batches are buffered only up to one row group, so memory stays flat however many pages
  the API returns. A declared key adds nothing while its values arrive in order (the API's order).
* **Staged, then committed**: a landing writes a hidden temporary in the target directory (:meth:`ParquetLander.
  stage` closes it complete and checks the key), then :func:`commit_staged` renames every staged file of a run into
  place together. Before a rename the previous file at the target is preserved (hard link on local disk, server-side
  copy on object stores); if any rename fails, the parts already renamed get their previous file back (or are
  removed if there was none) and every temporary is deleted: readers see all of this run's files or none, never
  a half-written file. (A kill -9 *inside* the commit, a few renames long, can leave some parts new; the rerun
  replaces them.)
* **Key check**: with ``key`` columns, a file whose key repeats is not committed as is (proven while streaming
  when the keys arrive in order, else from the key columns read back before commit: :mod:`.keys`). Rows that
  repeat exactly (same key, same contents: an overlapping page) are dropped with one warning and counted in
  ``LandedFile.duplicates_dropped``; rows that share a key with different contents raise
  :class:`~airflow_provider_cplugin.exceptions.DuplicateKeyError` and nothing is committed.
* **One filesystem**: every operation (list, stat, rename, delete) goes through the Airflow-attached filesystem of
  the target (``target.fs``, bound to its storage connection) and listings are refreshed first. Mixing it with the
  path's own fsspec instance made reruns on S3 fail: the other instance's stale listing cache did not know the new
  temporary, so the rename raised ``FileNotFoundError`` and the cleanup left the temporary behind.
* **Idempotent**: file names are deterministic per (DAG, task, logical date, partition), so a rerun replaces the
  file it wrote before instead of adding a second copy of the same rows.

Temporaries are named ``.<file>.<UTC creation time>.try<N>.<random>.inprogress`` (previous-file copies
``....previous``), so whether one is stale is *provable* from its name: a writer removes a sibling temporary of its
own target only if it was created more than :data:`STALE_AFTER` ago, or by an earlier try of the same task
instance (Airflow runs one try at a time, so an earlier try is dead). A live temporary of a concurrent writer of
the same target is never touched; both writers commit and the last rename wins with a complete file.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_cplugin.exceptions import CPluginError, DuplicateKeyError
from airflow_provider_cplugin.parquet.keys import KeyCheck, KeyTracker

log = logging.getLogger(__name__)

TMP_SUFFIX = ".inprogress"
PREVIOUS_SUFFIX = ".previous"
DEFAULT_ROW_GROUP_ROWS = 100_000
DEFAULT_ROW_GROUP_BYTES = 16 << 20
"""Arrow bytes buffered before a row group is written whatever its row count (about 50k MT4 users): what bounds a
landing's memory (measured: ``docs/architecture.md``, "Memory of a snapshot")."""
STALE_AFTER = timedelta(hours=24)
"""A temporary older than this is abandoned (no snapshot runs that long); younger ones may belong to a live writer."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_STAMP = "%Y%m%dT%H%M%SZ"
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+)\.(?P<created>\d{8}T\d{6}Z)\.try(?P<attempt>\d+)\.[0-9a-f]+"
    rf"(?P<suffix>{re.escape(TMP_SUFFIX)}|{re.escape(PREVIOUS_SUFFIX)})$"
)


class LandingCommitError(CPluginError):
    """A staged file could not be committed (its temporary vanished, the store refused the rename...)."""


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


def temporary_name(target_name: str, suffix: str, *, attempt: int = 0, now: datetime | None = None) -> str:
    """Hidden sibling name that records who made it and when (see the module docstring)."""
    created = (now or datetime.now(UTC)).strftime(_STAMP)
    return f".{target_name}.{created}.try{attempt}.{uuid.uuid4().hex[:12]}{suffix}"


def is_provably_stale(name: str, target_name: str, *, attempt: int, now: datetime | None = None) -> bool:
    """Whether ``name`` is a temporary of ``target_name`` that no live writer can still own."""
    match = _TEMPORARY.match(name)
    if match is None or match["target"] != target_name:
        return False
    created = datetime.strptime(match["created"], _STAMP).replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) - created > STALE_AFTER:
        return True
    theirs = int(match["attempt"])
    return 0 < theirs < attempt


@dataclass(frozen=True)
class LandedFile:
    """What one landing wrote: small enough for XCom and TriggerEvents."""

    path: str
    rows: int
    bytes: int
    row_groups: int
    entity: str
    schema: dict[str, str] = field(default_factory=dict)
    duplicates_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RowGroupWriter:
    """Buffers batches and writes them in row groups of ``row_group_rows`` (the last may be shorter), or of fewer
    rows when the buffered batches reach ``row_group_bytes`` first: wide rows cannot make a row group (and the
    memory a landing holds) larger than that."""

    def __init__(
        self, file: Any, schema: pa.Schema, row_group_rows: int, compression: str, row_group_bytes: int
    ) -> None:
        self.file = file
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.writer = pq.ParquetWriter(file, schema, compression=compression)
        self.rows = 0
        self.row_groups = 0
        self.buffer: list[pa.RecordBatch] = []
        self.buffered_rows = 0
        self.buffered_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self.buffer.append(batch)
        self.buffered_rows += batch.num_rows
        self.buffered_bytes += batch.nbytes
        if self.buffered_bytes >= self.row_group_bytes:
            self.flush(final=True)  # everything buffered, as one row group (fewer rows than row_group_rows)
        elif self.buffered_rows >= self.row_group_rows:
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Write whole row groups; keep the remainder buffered unless ``final`` (then the rest is a last, shorter
        row group)."""
        if not self.buffer:
            return
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        full = table.num_rows if final else table.num_rows - table.num_rows % self.row_group_rows
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=self.row_group_rows)
            self.rows += full
            self.row_groups += -(-full // self.row_group_rows)
        rest = table.slice(full)
        self.buffer = rest.combine_chunks().to_batches() if rest.num_rows else []
        self.buffered_rows = rest.num_rows
        self.buffered_bytes = rest.nbytes

    def close(self) -> None:
        """Flush the rest and close writer and file (the file is complete after this)."""
        try:
            self.flush(final=True)
            self.writer.close()
        finally:
            self.file.close()

    def discard(self) -> None:
        try:
            self.writer.close()
        finally:
            self.file.close()


class ParquetLander:
    """Writes record batches of one schema to a temporary next to ``target``; commits it atomically.

    Use as a context manager (leaving it normally commits, leaving it with an exception aborts: the temporary is
    deleted and any previous file at ``target`` stays untouched), or call :meth:`open`, :meth:`write_batch`,
    :meth:`stage` and commit several landers together with :func:`commit_staged`.

    :param key: Arrow column names identifying a row; checked for uniqueness at :meth:`stage`.
    :param attempt: the Airflow try number of the writing task (0: unknown), recorded in temporary names.
    :param row_group_rows: rows per row group.
    :param row_group_bytes: a row group is cut earlier when the batches buffered for it reach this many Arrow bytes
        (what bounds a landing's memory).
    """

    def __init__(
        self,
        target: ObjectStoragePath,
        schema: pa.Schema,
        *,
        entity: str | None = None,
        key: Sequence[str] = (),
        attempt: int = 0,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        compression: str = "snappy",
    ) -> None:
        if row_group_rows <= 0:
            raise ValueError("row_group_rows must be positive")
        if row_group_bytes <= 0:
            raise ValueError("row_group_bytes must be positive")
        self.target = target
        self.schema = schema
        self.entity = entity or (schema.metadata or {}).get(b"entity", b"").decode() or target.stem
        self.key = tuple(key)
        self.attempt = attempt
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.compression = compression
        self.fs: AbstractFileSystem = target.fs
        self._dir = target.parent.path
        self._tmp = target.parent / temporary_name(target.name, TMP_SUFFIX, attempt=attempt)
        self._keys = KeyTracker(self.key) if self.key else None
        self._out: _RowGroupWriter | None = None
        self._staged: LandedFile | None = None
        self._done = False
        self.landed: LandedFile | None = None
        """Set by :meth:`commit` / :func:`commit_staged`."""

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

    @property
    def rows(self) -> int:
        """Rows written to the temporary so far (after de-duplication once staged)."""
        if self._staged is not None:
            return self._staged.rows
        return self._out.rows if self._out is not None else 0

    @property
    def rows_received(self) -> int:
        """Rows handed to the lander so far, written or still buffered."""
        return self._out.rows + self._out.buffered_rows if self._out is not None else 0

    @property
    def staged(self) -> LandedFile | None:
        """What :meth:`stage` left complete in the temporary, not yet visible."""
        return self._staged

    def open(self) -> None:
        if isinstance(self.fs, LocalFileSystem):
            self.fs.makedirs(self._dir, exist_ok=True)  # object stores have no directories to make
        self._remove_stale_temporaries()
        self._out = self._writer_for(self._tmp)

    def _writer_for(self, path: ObjectStoragePath) -> _RowGroupWriter:
        # Through the filesystem, not ObjectStoragePath.open: that reports every write to Airflow's hook lineage,
        # which would name this hidden temporary as the task's output (the operators report the final files).
        return _RowGroupWriter(
            self.fs.open(path.path, "wb"), self.schema, self.row_group_rows, self.compression, self.row_group_bytes
        )

    def _siblings(self) -> list[str]:
        self.fs.invalidate_cache(self._dir)  # another writer may have changed the directory since we last looked
        try:
            return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(self._dir, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []  # object stores: a prefix with no objects yet has nothing stale
        finally:
            # Not left in the shared cache: it would hide files other writers add to this prefix meanwhile.
            self.fs.invalidate_cache(self._dir)

    def _remove_stale_temporaries(self) -> None:
        now = datetime.now(UTC)
        stale = [n for n in self._siblings() if is_provably_stale(n, self.target.name, attempt=self.attempt, now=now)]
        for name in stale:
            self.fs.rm_file(f"{self._dir}/{name}")
        if stale:
            log.warning(
                "Removed %d abandoned temporary file(s) of %s (older than %s or from an earlier try): %s",
                len(stale), self.target, STALE_AFTER, stale[:5],
            )  # fmt: skip

    def write_batch(self, batch: pa.RecordBatch) -> None:
        if self._out is None or self._staged is not None:
            raise RuntimeError("ParquetLander is not open")
        batch = _conform(batch, self.schema)
        if batch.num_rows == 0:
            return
        if self._keys is not None:
            self._keys.add(batch)
        self._out.write(batch)

    def stage(self) -> LandedFile:
        """Close the temporary complete and check the key; nothing is visible at ``target`` yet."""
        if self._done:
            raise RuntimeError("ParquetLander already committed or aborted")
        if self._staged is not None:
            return self._staged
        if self._out is None:
            self.open()
        assert self._out is not None
        try:
            self._out.close()
            dropped = self._drop_exact_duplicates() if self._keys is not None else 0
            # Asked of the store, not of the listing cache: another writer's listing of this prefix, answered
            # after our upload but taken before it, would say the temporary does not exist (s3fs).
            size = int(self.fs.info(self._tmp.path, refresh=True)["size"])
        except BaseException:
            self.abort()  # a failed flush, close or key check leaves no temporary and no open handle behind
            raise
        self._staged = LandedFile(
            path=str(self.target),
            rows=self._out.rows,
            bytes=size,
            row_groups=self._out.row_groups,
            entity=self.entity,
            schema={f.name: str(f.type) for f in self.schema},
            duplicates_dropped=dropped,
        )
        return self._staged

    def _drop_exact_duplicates(self) -> int:
        """Rewrite the temporary without repeated rows; raise if a key repeats with different contents."""
        assert self._keys is not None and self._out is not None
        repeated = self._keys.repeated(lambda: _read_columns(self.fs, self._tmp.path, self.key))
        if repeated is None:
            return 0
        # Rare path: read the temporary back one row group at a time, keep first occurrences, collect the rows of
        # repeated keys to tell exact repeats from conflicts.
        check = KeyCheck(self.key, repeated)
        rewritten = target_sibling(self.target, TMP_SUFFIX, self.attempt)
        out = self._writer_for(rewritten)
        try:
            for batch in _row_groups(self.fs, self._tmp.path):
                out.write(check.keep_first(_conform(batch, self.schema)))
            out.close()
            conflicting = check.conflicting_keys()
            if conflicting:
                raise DuplicateKeyError(self.entity, self.key, len(conflicting), conflicting[:5])
        except BaseException:
            out.discard()
            _remove(self.fs, rewritten.path)
            raise
        self.fs.rm_file(self._tmp.path)
        self._tmp = rewritten
        self._out = out
        log.warning(
            "%s: dropped %d exact duplicate row(s) (same key and contents) of %d key value(s); %d rows remain",
            self.entity, check.dropped, repeated.num_rows, out.rows,
        )  # fmt: skip
        return check.dropped

    def commit(self) -> LandedFile:
        """Stage (if not yet) and commit this lander alone."""
        self.stage()
        return commit_staged([self])[0]

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self._out is not None and self._staged is None:
                self._out.discard()
        finally:
            _remove(self.fs, self._tmp.path)
        log.warning("Aborted landing to %s; nothing was committed", self.target)

    def _finish(self) -> LandedFile:
        assert self._staged is not None
        self._done = True
        self.landed = self._staged
        log.info("Landed %d rows (%d bytes) at %s", self.landed.rows, self.landed.bytes, self.landed.path)
        return self.landed


def target_sibling(target: ObjectStoragePath, suffix: str, attempt: int) -> ObjectStoragePath:
    return target.parent / temporary_name(target.name, suffix, attempt=attempt)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    return batch if batch.schema == schema else pa.RecordBatch.from_arrays(batch.columns, schema=schema)


def _row_groups(fs: AbstractFileSystem, path: str) -> Iterator[pa.RecordBatch]:
    with fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        for index in range(parquet.num_row_groups):
            yield from parquet.read_row_group(index).to_batches()


def _read_columns(fs: AbstractFileSystem, path: str, columns: Sequence[str]) -> pa.Table:
    with fs.open(path, "rb") as f:
        return pq.ParquetFile(f).read(columns=list(columns), use_threads=False)


def _remove(fs: AbstractFileSystem, path: str) -> None:
    fs.invalidate_cache(path)
    if fs.exists(path):
        fs.rm_file(path)


def _preserve(fs: AbstractFileSystem, target: str, copy: str) -> bool:
    """Keep the previous file at ``target`` under ``copy`` (target stays in place); False if there was none."""
    fs.invalidate_cache(target)
    if not fs.exists(target):
        return False
    if isinstance(fs, LocalFileSystem):
        fs.link(target, copy)  # instant and atomic; the rename below replaces the name, not the inode
    else:
        fs.copy(target, copy)  # object stores: a server-side copy
    return True


def commit_staged(landers: Sequence[ParquetLander]) -> list[LandedFile]:
    """Make every staged lander's file visible at its target, all or none.

    On failure the targets already replaced get their previous file back (or are removed if they had none),
    every temporary is deleted and the error is raised (a vanished temporary as :class:`LandingCommitError`).
    """
    for lander in landers:
        if lander.staged is None:
            raise RuntimeError(f"{lander.target} is not staged")
    previous: list[tuple[ParquetLander, str | None]] = []  # (lander, its preserved previous file) once renamed
    copies: list[tuple[AbstractFileSystem, str]] = []
    try:
        for lander in landers:
            copy = target_sibling(lander.target, PREVIOUS_SUFFIX, lander.attempt).path
            kept = _preserve(lander.fs, lander.target.path, copy)
            if kept:
                copies.append((lander.fs, copy))
            lander.fs.invalidate_cache(lander._tmp.path)
            if not lander.fs.exists(lander._tmp.path):
                raise LandingCommitError(
                    f"the staged temporary of {lander.target} vanished before its commit ({lander._tmp.name}): "
                    "something else removed it; nothing of this run was committed"
                )
            lander.fs.mv(lander._tmp.path, lander.target.path)
            previous.append((lander, copy if kept else None))
    except BaseException as exc:
        kept_copies = _roll_back(previous)
        for lander in landers:
            lander.abort()
        for fs, copy in copies:
            if copy not in kept_copies:
                _remove(fs, copy)
        if isinstance(exc, FileNotFoundError):
            raise LandingCommitError(f"commit failed, nothing of this run is visible: {exc}") from exc
        raise
    for fs, copy in copies:
        try:
            _remove(fs, copy)
        except OSError as exc:  # committed already; the copy is hidden and removed once stale
            log.warning("Could not remove the previous-file copy %s: %s", copy, exc)
    return [lander._finish() for lander in landers]


def _roll_back(renamed: list[tuple[ParquetLander, str | None]]) -> set[str]:
    """Put back what the renamed targets held; returns the previous-file copies that could not be restored."""
    stranded: set[str] = set()
    for lander, copy in reversed(renamed):
        try:
            if copy is None:
                _remove(lander.fs, lander.target.path)
            else:
                lander.fs.mv(copy, lander.target.path)
            log.warning("Rolled back %s to its previous state", lander.target)
        except Exception:
            log.exception("Could not roll back %s; its previous file is kept at %s", lander.target, copy)
            if copy is not None:
                stranded.add(copy)
    return stranded
