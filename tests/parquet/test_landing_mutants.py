"""Landing behaviours a plausible bug would break unseen by test_landing.py (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.landing import LandingCommitError, ParquetLander, commit_staged

from .test_landing import SCHEMA, base, read, users

__all__ = ["base"]  # the fixture, shared with test_landing.py


def test_a_staged_temporary_removed_before_the_commit_is_named_and_nothing_changes(base: ObjectStoragePath) -> None:
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
    vanished = landers[1]._tmp
    vanished.fs.rm_file(vanished.path)  # something else (an operator's cleanup, a lifecycle rule) removed it
    with pytest.raises(LandingCommitError, match=r"staged temporary of .*/b/part\.parquet vanished before its commit"):
        commit_staged(landers)
    assert [read(t) for t in targets] == before  # part a, renamed first, got its previous file back
    for target in targets:
        assert [p.name for p in target.parent.iterdir()] == ["part.parquet"]
