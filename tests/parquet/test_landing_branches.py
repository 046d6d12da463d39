"""ParquetLander and commit_staged on their failure branches: a roll-back that itself fails keeps the previous
file, a new target is removed again on roll-back, a vanished file becomes a LandingCommitError, a copy that
cannot be removed after a commit does not undo it, and misuse of the lander is refused. Every check reads the
files back (the truth), not the lander's own summary."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.landing import (
    PREVIOUS_SUFFIX,
    TMP_SUFFIX,
    LandingCommitError,
    ParquetLander,
    commit_staged,
)

from .test_landing import SCHEMA, base, read, users

__all__ = ["base"]  # the fixture, re-used


def staged(target: ObjectStoragePath, batch: pa.RecordBatch) -> ParquetLander:
    lander = ParquetLander(target, SCHEMA)
    lander.open()
    lander.write_batch(batch)
    lander.stage()
    return lander


def land(target: ObjectStoragePath, batch: pa.RecordBatch) -> None:
    with ParquetLander(target, SCHEMA) as lander:
        lander.write_batch(batch)


def names(directory: ObjectStoragePath) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_failed_roll_back_keeps_the_previous_file_and_a_new_target_is_removed(
    base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old_a, new = users(0, 5), users(100, 7)
    a, b, c = base / "a" / "part.parquet", base / "b" / "part.parquet", base / "c" / "part.parquet"
    land(a, old_a)  # a has a previous file, b has none, c's commit fails
    landers = [staged(a, new), staged(b, new), staged(c, new)]
    fs = landers[0].fs
    real_mv = fs.mv

    def store(source: str, target: str, *args: Any, **kwargs: Any) -> Any:
        if "/c/" in target and source.endswith(TMP_SUFFIX):
            raise OSError("store down")
        if source.endswith(PREVIOUS_SUFFIX):
            raise OSError("store still down")  # putting a's previous file back fails too
        return real_mv(source, target, *args, **kwargs)

    monkeypatch.setattr(fs, "mv", store)
    with caplog.at_level(logging.WARNING), pytest.raises(OSError, match="store down"):
        commit_staged(landers)
    monkeypatch.undo()
    # b had no previous file: rolled back to nothing. c never appeared.
    assert names(b.parent) == [] and names(c.parent) == []
    # a could not be restored: it still holds the new rows, and its previous file is kept beside it, not deleted.
    assert read(a).to_pylist() == pa.Table.from_batches([new]).to_pylist()
    (copy,) = [p for p in a.parent.iterdir() if p.name.endswith(PREVIOUS_SUFFIX)]
    assert read(copy).to_pylist() == pa.Table.from_batches([old_a]).to_pylist()
    assert any("Could not roll back" in r.getMessage() and str(a) in r.getMessage() for r in caplog.records)


def test_a_file_vanishing_during_commit_is_a_landing_commit_error(
    base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = base / "x" / "part.parquet"
    land(target, users(0, 3))
    lander = staged(target, users(10, 4))
    real_mv = lander.fs.mv

    def vanish(source: str, dest: str, *args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(source)

    monkeypatch.setattr(lander.fs, "mv", vanish)
    with pytest.raises(LandingCommitError, match="commit failed, nothing of this run is visible"):
        commit_staged([lander])
    monkeypatch.setattr(lander.fs, "mv", real_mv)
    assert read(target).to_pylist() == pa.Table.from_batches([users(0, 3)]).to_pylist()
    assert names(target.parent) == ["part.parquet"]


def test_a_copy_that_cannot_be_removed_after_commit_does_not_undo_it(
    base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    target = base / "y" / "part.parquet"
    land(target, users(0, 3))
    lander = staged(target, users(10, 4))
    real_rm = lander.fs.rm_file

    def refuse_copies(path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith(PREVIOUS_SUFFIX):
            raise OSError("permission denied")
        return real_rm(path, *args, **kwargs)

    monkeypatch.setattr(lander.fs, "rm_file", refuse_copies)
    with caplog.at_level(logging.WARNING):
        landed = commit_staged([lander])[0]
    monkeypatch.undo()
    assert read(target).to_pylist() == pa.Table.from_batches([users(10, 4)]).to_pylist()
    assert landed.rows == 4
    assert any("Could not remove the previous-file copy" in r.getMessage() for r in caplog.records)
    assert [n for n in names(target.parent) if n != "part.parquet"] != []  # the hidden copy, removed once stale


def test_misuse_is_refused_and_nothing_lands(base: ObjectStoragePath) -> None:
    target = base / "z" / "part.parquet"
    with pytest.raises(ValueError, match="row_group_rows must be positive"):
        ParquetLander(target, SCHEMA, row_group_rows=0)
    lander = ParquetLander(target, SCHEMA)
    with pytest.raises(RuntimeError, match="not open"):
        lander.write_batch(users(0, 1))
    with pytest.raises(RuntimeError, match="is not staged"):
        commit_staged([lander])
    assert lander.rows_received == 0 and names(target.parent) == []
    lander.open()
    lander.write_batch(users(0, 0))  # an empty batch is ignored
    lander.write_batch(users(0, 3))
    assert lander.rows_received == 3
    first = lander.stage()
    assert lander.stage() is first  # staging twice gives the same staged file
    with pytest.raises(RuntimeError, match="not open"):
        lander.write_batch(users(3, 1))  # nothing more once staged
    lander.commit()
    with pytest.raises(RuntimeError, match="already committed or aborted"):
        lander.stage()
    assert read(target).num_rows == 3 and names(target.parent) == ["part.parquet"]


def test_staging_an_unopened_lander_lands_an_empty_file(base: ObjectStoragePath) -> None:
    target = base / "e" / "part.parquet"
    lander = ParquetLander(target, SCHEMA)
    assert lander.commit().rows == 0
    table = read(target)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA, check_metadata=False)
