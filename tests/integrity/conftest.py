"""The integrity fault matrix: one test per fault, each tagged with the row it proves.

Tag a test ``@pytest.mark.matrix(area="REST paging", fault="hasMore without nextCursor",
expected="error naming method and page, nothing landed")``. At the end of the session the outcome of every tagged
test is written to ``.integrity/matrix.json``; ``scripts/integrity_matrix.py`` renders it as the table in
``docs/integrity.md`` (``make integrity``), so the documented matrix is what the tests last proved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# One moto server per session for every module (a fixture imported into two modules would start two servers, and
# Airflow caches the S3 filesystem per connection id, so the second module would talk to the first server).
from .s3_fixtures import moto_s3, s3_bucket

RESULTS = Path(os.environ.get("CPLUGIN_MATRIX_RESULTS", Path(__file__).resolve().parents[2] / ".integrity"))
XFAILED = "xfailed"  # a known bug, kept visible in the matrix (the test is marked xfail(strict=True))
__all__ = ["moto_s3", "s3_bucket"]

_rows: dict[str, dict[str, Any]] = {}
_collected: set[str] = set()  # matrix tests that exist in the files collected this session (before -k/-m)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so _collected lists every test of the files
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("matrix")
        if marker is not None:
            missing = {"area", "fault", "expected"} - set(marker.kwargs)
            if missing:
                raise pytest.UsageError(f"{item.nodeid}: matrix marker lacks {sorted(missing)}")
            _collected.add(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    marker = item.get_closest_marker("matrix")
    if marker is not None and (report.when == "call" or report.outcome != "passed"):
        row = _rows.setdefault(item.nodeid, {**marker.kwargs, "test": item.nodeid, "outcome": "passed"})
        if report.outcome == "skipped" and hasattr(report, "wasxfail"):
            row["outcome"] = XFAILED
        elif report.outcome != "passed":
            row["outcome"] = report.outcome
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _rows:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "matrix.json"
    previous: dict[str, Any] = {}
    if path.exists():
        previous = {r["test"]: r for r in json.loads(path.read_text())}
    # A focused run updates its rows and keeps the others, except rows of tests that no longer exist in a file
    # collected this session (renamed or removed tests).
    files = {nodeid.split("::", 1)[0] for nodeid in _collected}
    previous = {k: r for k, r in previous.items() if k in _collected or k.split("::", 1)[0] not in files}
    previous.update(_rows)
    path.write_text(json.dumps(sorted(previous.values(), key=lambda r: (r["area"], r["fault"])), indent=1))
