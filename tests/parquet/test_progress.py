"""The landing loop logs progress every ~10 s (not per page) and one warning per kind of problem, with counts.

A fake clock moves 4 s per page, so which pages log is exact; no sleeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.schemas import MT4_USER
from airflow_provider_cplugin.parquet.stream import land_pages

USERS = list(Dataset(EmulatorConfig(seed=5, mt4_users=1000, mt5_users=0)).mt4_users(0, 1000))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps({"data": rows, "meta": {"activityId": "a", "paging": None}, "error": None}).encode()


def test_progress_every_ten_seconds_and_one_warning_per_kind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, decoder = Clock(), PageDecoder(MT4_USER)
    drifted = {3, 7}  # these pages carry a login as text: the hook hands them to the general path

    def pages() -> Iterator[pa.RecordBatch]:
        for number, start in enumerate(range(0, 1000, 100)):
            clock.now += 4.0
            rows = USERS[start : start + 100]
            if number in drifted:
                rows = [{**r, "login": str(r["login"])} for r in rows]
                assert decoder.body(body(rows)) is None
                yield decoder.records(rows)
            else:
                decoded = decoder.body(body(rows))
                assert decoded is not None and decoded.data is not None
                yield decoded.data

    target = ObjectStoragePath(f"file://{tmp_path}/users.parquet")
    with caplog.at_level(logging.INFO, logger="airflow_provider_cplugin"):
        result = land_pages(pages(), MT4_USER, target, decoder=decoder, clock=clock)
    assert pq.read_table(target.path).column("login").to_pylist() == [u["login"] for u in USERS]
    assert result.pages == 10 and result.records_read == 1000 and result.seconds == 40.0
    progress = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    # t = 4, 8, ... 40 s: a line at 12 s (page 3), then at least 10 s later: 24 s (page 6), 36 s (page 9)
    assert progress == [
        "mt4_users: 3 pages, 300 records read, 300 rows kept so far (25 rows/s)",
        "mt4_users: 6 pages, 600 records read, 600 rows kept so far (25 rows/s)",
        "mt4_users: 9 pages, 900 records read, 900 rows kept so far (25 rows/s)",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    general = [w for w in warnings if "general path" in w]
    assert general == ["mt4_users: bodies decoded on the general path (drift warned above): 2 of 10 page(s)"]
    assert sum("login" in w for w in warnings) == 1  # the drift itself: warned once, not per page
    assert not [r for r in caplog.records if "page 1:" in r.getMessage()]  # no per-page line any more
