"""Declared keys are unique in every landed file: exact repeats are dropped and counted, conflicts fail.

Truth: the emulator's generator (``Dataset.mt4_users``) for the rows served; the pages handed to the landing
repeat or alter some of them the way an overlapping page would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.exceptions import DuplicateKeyError
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.keys import KeyTracker
from airflow_provider_cplugin.parquet.schemas import INT, MT4_USER, STR, EntitySchema
from airflow_provider_cplugin.parquet.stream import land_pages

USERS = list(Dataset(EmulatorConfig(seed=3, mt4_users=1000, mt5_users=0)).mt4_users(0, 1000))
KEYS = "Keys"


def pages(rows: list[dict[str, Any]], size: int = 100) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def served(rows: list[dict[str, Any]], entity: EntitySchema = MT4_USER) -> pa.Table:
    return pa.Table.from_batches([RecordBatchConverter(entity).convert(rows)])


@pytest.fixture
def target(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{tmp_path}/entity=mt4_users/users.parquet")


def leftovers(target: ObjectStoragePath) -> list[str]:
    parent = Path(target.path).parent
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


@pytest.mark.matrix(
    area=KEYS,
    fault="a page served twice (same rows, same contents)",
    expected="repeats dropped with one warning; count in XCom; file = served rows once",
)
def test_exact_repeats_are_dropped_and_counted(target: ObjectStoragePath, caplog: pytest.LogCaptureFixture) -> None:
    overlapping = [*pages(USERS[:500]), USERS[400:500], *pages(USERS[500:])]  # page 5 again
    result = land_pages(overlapping, MT4_USER, target, row_group_rows=300).to_dict()
    assert result["duplicates_dropped"] == 100 and result["rows"] == 1000
    landed = pq.read_table(target.path)
    assert landed.equals(served(USERS))
    warnings = [r for r in caplog.records if "exact duplicate" in r.getMessage()]
    assert len(warnings) == 1 and "100" in warnings[0].getMessage()
    assert leftovers(target) == ["users.parquet"]


@pytest.mark.matrix(
    area=KEYS,
    fault="a key served twice with different contents",
    expected="DuplicateKeyError naming entity, key and values; previous file untouched, nothing left behind",
)
def test_conflicting_repeats_fail_and_commit_nothing(target: ObjectStoragePath) -> None:
    land_pages(pages(USERS[:10]), MT4_USER, target)
    before = pq.read_table(target.path)
    changed = copy.deepcopy(USERS[700:703])
    for row in changed:
        row["balance"] += 1
    with pytest.raises(DuplicateKeyError) as err:
        land_pages([*pages(USERS), changed, USERS[100:200]], MT4_USER, target)  # conflicts + exact repeats
    assert err.value.entity == "mt4_users" and err.value.key == ("login",)
    assert err.value.conflicting == 3 and err.value.examples == [r["login"] for r in USERS[700:703]]
    assert pq.read_table(target.path).equals(before)
    assert leftovers(target) == ["users.parquet"]


PAIRS = EntitySchema(name="pairs", fields=(("login", INT), ("symbol", STR), ("volume", INT)), key=("login", "symbol"))


@pytest.mark.matrix(
    area=KEYS,
    fault="composite key repeated (exactly, then with different contents)",
    expected="exact repeats dropped; a conflicting (login, symbol) fails naming the pair",
)
def test_composite_key(target: ObjectStoragePath) -> None:
    rows = [{"login": login, "symbol": s, "volume": login % 7} for login in range(200) for s in ("EURUSD", "XAUUSD")]
    same_login_other_symbol = [{"login": 5, "symbol": "GBPUSD", "volume": 1}]
    result = land_pages([rows, rows[10:20], same_login_other_symbol], PAIRS, target).to_dict()
    assert result["rows"] == 401 and result["duplicates_dropped"] == 10
    assert pq.read_table(target.path).equals(served(rows + same_login_other_symbol, PAIRS))
    with pytest.raises(DuplicateKeyError) as err:
        land_pages([rows, [{"login": 3, "symbol": "XAUUSD", "volume": 99}]], PAIRS, target)
    assert err.value.examples == [(3, "XAUUSD")]


@pytest.mark.matrix(
    area=KEYS,
    fault="repeated keys only in rows the operator's filter drops (history interval)",
    expected="key checked on kept rows only: nothing dropped, nothing fails",
)
def test_key_is_checked_on_kept_rows(target: ObjectStoragePath) -> None:
    conflicting = copy.deepcopy(USERS[:50])
    for row in conflicting:
        row["balance"] += 1

    def keep_from_100(batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(pc.greater_equal(batch.column("login"), USERS[100]["login"]))

    result = land_pages([*pages(USERS), conflicting], MT4_USER, target, keep=keep_from_100).to_dict()
    assert result["duplicates_dropped"] == 0 and result["rows"] == 900
    assert pq.read_table(target.path).equals(served(USERS[100:]))


@pytest.mark.matrix(
    area=KEYS,
    fault="a page starts with the last key of the page before (keys otherwise in the API's order)",
    expected="the in-order proof refuses it; the repeat is dropped (same contents) or fails (different)",
)
def test_repeat_across_a_page_boundary_is_caught(target: ObjectStoragePath) -> None:
    first, second = USERS[:100], USERS[99:200]  # login of row 99 ends page 1 and starts page 2
    result = land_pages([first, second], MT4_USER, target).to_dict()
    assert result["duplicates_dropped"] == 1 and result["rows"] == 200
    assert pq.read_table(target.path).equals(served(USERS[:200]))
    changed = copy.deepcopy(second)
    changed[0]["balance"] += 1
    with pytest.raises(DuplicateKeyError) as err:
        land_pages([first, changed], MT4_USER, target)
    assert err.value.examples == [USERS[99]["login"]]


def key_batch(rows: list[tuple[int, str]]) -> pa.RecordBatch:
    return RecordBatchConverter(PAIRS).convert([{"login": a, "symbol": b, "volume": 0} for a, b in rows])


def test_key_tracker_proves_ordered_keys_without_reading_them_back() -> None:
    def never() -> pa.Table:
        raise AssertionError("ordered keys must not be read back")

    tracker = KeyTracker(["login", "symbol"])
    tracker.add(key_batch([(1, "A"), (1, "B"), (2, "A")]))
    tracker.add(key_batch([(2, "B"), (3, "A")]))  # (2, "B") > (2, "A"): the boundary compares both columns
    tracker.add(key_batch([]))
    assert tracker.ordered and tracker.repeated(never) is None
    for pages_of_keys in (
        [[(1, "A"), (1, "B")], [(1, "B")]],  # equal across the boundary
        [[(1, "B"), (1, "A")]],  # second column decreasing within a batch
        [[(2, "A")], [(1, "Z")]],  # first column decreasing across the boundary
    ):
        tracker = KeyTracker(["login", "symbol"])
        for keys in pages_of_keys:
            tracker.add(key_batch(keys))
        assert not tracker.ordered, pages_of_keys


@pytest.mark.matrix(
    area=KEYS,
    fault="unique keys served out of order (an unordered batch read)",
    expected="checked from the key columns read back: nothing dropped, nothing fails",
)
def test_unique_keys_out_of_order_land_whole(target: ObjectStoragePath) -> None:
    shuffled = USERS[500:] + USERS[:500]
    result = land_pages(pages(shuffled), MT4_USER, target, row_group_rows=300).to_dict()
    assert result["duplicates_dropped"] == 0 and result["rows"] == 1000
    assert pq.read_table(target.path).equals(served(shuffled))
