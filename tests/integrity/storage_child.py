"""Child process for the storage tests: runs the MT4 users snapshot, optionally dying or pausing on cue.

``python storage_child.py OUTPUT_PATH OUTPUT_CONN_ID TRY MODE`` with MODE one of
* ``run``: just run it;
* ``kill-after-page-N``: SIGKILL itself when the API source is asked for page N+1 (pages 1..N handed over, the
  temporary half written);
* ``pause-before-pages``: print ``OPENED`` once the landing is open (its stale-temporary cleanup done) and wait for
  a line on stdin before reading pages;
* ``pause-before-commit``: print ``STAGED`` once every part is staged and wait for a line on stdin to commit.
Markers go to stdout; the XCom result is printed as ``RESULT <json>``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from airflow_provider_cplugin.operators.base_snapshot import SnapshotPart, StagedPages
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator

LOGICAL_DATE = datetime(2025, 12, 31, tzinfo=UTC)


def say(marker: str) -> None:
    print(marker, flush=True)


def wait_for_go() -> None:
    sys.stdin.readline()


def wrap(pages: Callable[[], Iterable[Any]], mode: str) -> Callable[[], Iterator[Any]]:
    def wrapped() -> Iterator[Any]:
        if mode == "pause-before-pages":
            say("OPENED")
            wait_for_go()
        for number, page in enumerate(pages(), start=1):
            yield page
            if mode == f"kill-after-page-{number}":
                os.kill(os.getpid(), signal.SIGKILL)

    return wrapped


class ChildUsersSnapshot(UsersSnapshotOperator):
    mode = "run"

    def snapshot_parts(self, context: Any, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        parts = super().snapshot_parts(context, platform_type, trade_platform)
        return [SnapshotPart(p.entity, wrap(p.pages, self.mode), p.keep) for p in parts]

    def commit(self, staged: list[StagedPages]) -> list[dict[str, Any]]:
        if self.mode == "pause-before-commit":
            say("STAGED")
            wait_for_go()
        return super().commit(staged)


def main() -> None:
    output_path, conn_id, attempt, mode = sys.argv[1:5]
    op = ChildUsersSnapshot(task_id="users", output_path=output_path, output_conn_id=conn_id or None, page_size=500)
    op.mode = mode
    context = {
        "ti": SimpleNamespace(dag_id="tests", task_id="users", map_index=-1, try_number=int(attempt)),
        "logical_date": LOGICAL_DATE,
        "data_interval_start": LOGICAL_DATE,
        "data_interval_end": LOGICAL_DATE,
        "run_id": "test",
    }
    result = op.execute(context)
    say(f"RESULT {json.dumps(result)}")


if __name__ == "__main__":
    main()
