from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.landing import (
    PREVIOUS_SUFFIX,
    STALE_AFTER,
    TMP_SUFFIX,
    ParquetLander,
    commit_staged,
    partition_dir,
    run_file_name,
    temporary_name,
)
from airflow_provider_cplugin.parquet.schemas import MT4_USER

SCHEMA = MT4_USER.arrow_schema


def users(start: int, count: int) -> pa.RecordBatch:
    return RecordBatchConverter(MT4_USER).convert(
        [{"login": i, "name": f"user {i}", "balance": i * 1.5} for i in range(start, start + count)]
    )


@pytest.fixture(params=["local", "memory"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStoragePath]:
    if request.param == "local":
        yield ObjectStoragePath(f"file://{tmp_path}")
    else:
        attach("memory", fs=MemoryFileSystem())
        root = ObjectStoragePath(f"memory://landing-{tmp_path.name}")
        yield root
        if root.exists():
            root.fs.rm(root.path, recursive=True)


def test_first_file_under_an_object_store_prefix(base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch) -> None:
    # On S3/GCS mkdir is a no-op and listing a prefix with no objects yet raises (upath: NotADirectoryError).
    def no_listing(self: ObjectStoragePath) -> Iterator[ObjectStoragePath]:
        raise NotADirectoryError(str(self))

    monkeypatch.setattr(type(base), "iterdir", no_listing)
    target = base / "entity=x" / "users.parquet"
    with ParquetLander(target, SCHEMA) as lander:
        lander.write_batch(users(0, 3))
    monkeypatch.undo()
    assert read(target).num_rows == 3


def read(path: ObjectStoragePath) -> pa.Table:
    with path.open("rb") as f:
        return pq.read_table(f)


def test_hive_partitions_and_deterministic_names(base: ObjectStoragePath) -> None:
    target = partition_dir(base, "mt4_users", {"trade_platform": "tp/1", "date": "2026-11-23"}) / run_file_name(
        "dag", "task", datetime(2026, 11, 23, 6, 0)
    )
    assert str(target).endswith(
        "entity=mt4_users/trade_platform=tp-1/date=2026-11-23/dag__task__20261123T060000.parquet"
    )
    assert run_file_name("d", "t", "manual__2026-11-23T06:00:00+00:00", map_index=3) == (
        "d__t__manual__2026-11-23T06-00-00-00-00__m3.parquet"
    )


def test_streams_batches_into_exact_row_groups(base: ObjectStoragePath) -> None:
    target = base / "out.parquet"
    with ParquetLander(target, SCHEMA, row_group_rows=1000) as lander:
        for start in range(0, 2500, 300):
            lander.write_batch(users(start, min(300, 2500 - start)))
    landed = lander.landed
    assert landed is not None and landed.rows == 2500
    with target.open("rb") as f:
        meta = pq.read_metadata(f)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 500]
    table = read(target)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.column("login").to_pylist() == list(range(2500))
    assert landed.bytes == target.stat().st_size


def test_failure_leaves_previous_file_and_no_temporary(base: ObjectStoragePath) -> None:
    target = base / "users.parquet"
    with ParquetLander(target, SCHEMA) as lander:
        lander.write_batch(users(0, 10))
    before = read(target)
    with pytest.raises(RuntimeError, match="API went away"), ParquetLander(target, SCHEMA) as lander:
        lander.write_batch(users(100, 5000))
        raise RuntimeError("API went away")
    assert read(target).equals(before)
    assert [p.name for p in base.iterdir()] == ["users.parquet"]


def test_failed_commit_leaves_no_temporary(base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch) -> None:
    target = base / "part=1" / "users.parquet"
    lander = ParquetLander(target, SCHEMA)
    lander.open()
    lander.write_batch(users(0, 10))
    monkeypatch.setattr(lander.fs, "mv", lambda *a, **k: (_ for _ in ()).throw(OSError("store down")))
    with pytest.raises(OSError, match="store down"):
        lander.commit()
    monkeypatch.undo()
    leftovers = [p.name for p in target.parent.iterdir()] if target.parent.exists() else []
    assert leftovers == []


def test_nothing_is_visible_until_commit(base: ObjectStoragePath) -> None:
    target = base / "users.parquet"
    lander = ParquetLander(target, SCHEMA, row_group_rows=10)
    lander.open()
    lander.write_batch(users(0, 50))
    assert not target.exists()
    assert any(p.name.endswith(TMP_SUFFIX) for p in base.iterdir())
    lander.commit()
    assert target.exists() and read(target).num_rows == 50
    assert not any(p.name.endswith(TMP_SUFFIX) for p in base.iterdir())


def test_rerun_replaces_with_identical_bytes(base: ObjectStoragePath) -> None:
    target = base / "users.parquet"
    contents = []
    for _ in range(2):
        with ParquetLander(target, SCHEMA) as lander:
            lander.write_batch(users(0, 100))
        with target.open("rb") as f:
            contents.append(f.read())
    assert contents[0] == contents[1]
    assert [p.name for p in base.iterdir()] == ["users.parquet"]


def test_stale_temporaries_are_cleaned_live_ones_are_not(base: ObjectStoragePath) -> None:
    target = base / "users.parquet"
    base.mkdir(parents=True, exist_ok=True)
    long_ago = datetime.now(UTC) - STALE_AFTER - timedelta(minutes=1)
    names = {
        "earlier try": temporary_name(target.name, TMP_SUFFIX, attempt=1),
        "abandoned": temporary_name(target.name, TMP_SUFFIX, attempt=2, now=long_ago),
        "abandoned copy": temporary_name(target.name, PREVIOUS_SUFFIX, attempt=0, now=long_ago),
        "live, same try": temporary_name(target.name, TMP_SUFFIX, attempt=2),
        "live, try unknown": temporary_name(target.name, TMP_SUFFIX, attempt=0),
        "other file's": temporary_name("other.parquet", TMP_SUFFIX, attempt=1),
        "unknown format": f".users.parquet.deadbeef{TMP_SUFFIX}",
    }
    for name in names.values():
        with (base / name).open("wb") as f:
            f.write(b"half a parquet file")
    with ParquetLander(target, SCHEMA, attempt=2) as lander:
        lander.write_batch(users(0, 3))
    left = {p.name for p in base.iterdir()}
    assert {k for k, name in names.items() if name in left} == {
        "live, same try",
        "live, try unknown",
        "other file's",
        "unknown format",
    }
    assert "users.parquet" in left


def test_empty_result_lands_a_valid_empty_file(base: ObjectStoragePath) -> None:
    target = base / "empty.parquet"
    with ParquetLander(target, SCHEMA):
        pass
    table = read(target)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA, check_metadata=False)


def test_second_writer_keeps_the_first_writers_staged_temporary(base: ObjectStoragePath) -> None:
    # The first writer has its file staged; a second writer of the same target (same try) opens, runs its
    # stale-temporary cleanup, and the first commits: nothing may have removed its temporary.
    target = base / "users.parquet"
    first = ParquetLander(target, SCHEMA, attempt=1)
    first.open()
    first.write_batch(users(0, 10))
    first.stage()
    second = ParquetLander(target, SCHEMA, attempt=1)
    second.open()
    assert commit_staged([first])[0].rows == 10
    second.write_batch(users(0, 20))
    second.commit()
    assert read(target).num_rows == 20
    assert [p.name for p in base.iterdir()] == ["users.parquet"]


def test_commit_together_is_all_or_none(base: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = [base / "a" / "part.parquet", base / "b" / "part.parquet"]
    for target in targets:
        with ParquetLander(target, SCHEMA) as lander:
            lander.write_batch(users(0, 5))
    before = [read(t) for t in targets]
    landers = []
    for target in targets:
        lander = ParquetLander(target, SCHEMA)
        lander.open()
        lander.write_batch(users(100, 7))
        lander.stage()
        landers.append(lander)
    fs = landers[0].fs
    real_mv = fs.mv

    def refuse_b(source: str, target: str, *args: object, **kwargs: object) -> object:
        if "/b/" in target and source.endswith(TMP_SUFFIX):
            raise OSError("store down")
        return real_mv(source, target, *args, **kwargs)

    monkeypatch.setattr(fs, "mv", refuse_b)
    with pytest.raises(OSError, match="store down"):
        commit_staged(landers)
    monkeypatch.undo()
    assert [read(t) for t in targets] == before
    for target in targets:
        assert [p.name for p in target.parent.iterdir()] == ["part.parquet"]
