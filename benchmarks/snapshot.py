"""Users snapshot cases (MT4 ``UsersRequest``, ``limit=5000``), each run in its own child process.

* ``floor``: the bytes of every page over one ``requests.Session``; bodies are read whole and discarded. The
  floor does **not** parse JSON: the next cursor is cut out of the envelope's tail (``meta`` is serialised last),
  so the floor is "HTTP + emulator" and nothing else.
* ``floor_json``: the floor plus ``json.loads`` of every body (reference only, not a target): it splits what our
  path costs into JSON decoding vs. Arrow conversion and Parquet writing.
* ``ours``: the operator's code path, ``CPluginWebApiHook.paginate`` → ``land_pages`` → Parquet.
* ``ours_sequential`` (reference): ``ours`` without its two overlaps (``paginate(request_ahead=False)``,
  ``land_pages(prefetch=0)``), so requesting, decoding, converting and writing strictly alternate.
* ``naive``: requests + ``resp.json()`` + one pandas DataFrame of all rows + ``to_parquet`` (no type conversion:
  dates stay strings, which favours the baseline).

Every case fetches its own token inside the timed section (the hook has to, so the others do too). Imports
happen before it in every case, including the ``import pandas`` that pyarrow does lazily on the first
``pa.array`` of Python objects (about 0.7 s, once per process): the naive case imports pandas up front, so ours
pays it up front too (its duration is reported as ``lazy_pandas_import_s``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import CaseResult, Stopwatch, connection_from_env, current_rss_mb, peak_rss_mb

PAGE_LIMIT = 5000
_CURSOR = re.compile(rb'"nextCursor"\s*:\s*(?:null|"([^"]*)")')
TAIL_BYTES = 512


def users_url(params: dict[str, Any]) -> str:
    return f"{params['url']}/api/v2/MT4/{params['trade_platform']}/UsersRequest"


def _session_with_token(url: str) -> Any:
    import requests

    conn = connection_from_env()
    session = requests.Session()
    reply = session.post(
        f"{url}/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": conn["login"],
            "client_secret": conn["password"],
            "scope": "webapi",
        },
        timeout=30,
    )
    reply.raise_for_status()
    session.headers["Authorization"] = "Bearer " + reply.json()["access_token"]
    session.headers["Accept"] = "application/json"
    return session


def tail_cursor(body: bytes) -> str | None:
    """The envelope's ``meta.paging.nextCursor`` without parsing the body (``meta`` is the last key)."""
    match = _CURSOR.search(body, max(0, len(body) - TAIL_BYTES))
    if match is None:
        raise ValueError(f"no paging meta in the last {TAIL_BYTES} bytes of the page")
    return match.group(1).decode() if match.group(1) else None


def _raw_pages(session: Any, url: str) -> Iterator[bytes]:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if cursor:
            params["cursor"] = cursor
        resp = session.get(url, params=params, timeout=60)
        resp.raise_for_status()
        body: bytes = resp.content
        yield body
        cursor = tail_cursor(body)
        if not cursor:
            return


def floor(params: dict[str, Any]) -> CaseResult:
    import requests  # noqa: F401  (imported before the baseline RSS is taken)

    base = current_rss_mb()
    pages = nbytes = 0
    with Stopwatch() as sw:
        session = _session_with_token(params["url"])
        for body in _raw_pages(session, users_url(params)):
            pages += 1
            nbytes += len(body)
    # Rows are what the emulator served (counting them would add work to the floor); checked by the parent.
    return CaseResult(
        "floor", params["size"], sw.wall_s, params["size"], peak_rss_mb(), base, sw.cpu_s,
        {"pages": pages, "bytes": nbytes},
    )  # fmt: skip


def floor_json(params: dict[str, Any]) -> CaseResult:
    import requests  # noqa: F401

    base = current_rss_mb()
    pages = rows = 0
    with Stopwatch() as sw:
        session = _session_with_token(params["url"])
        for body in _raw_pages(session, users_url(params)):
            pages += 1
            rows += len(json.loads(body)["data"])
    return CaseResult("floor_json", params["size"], sw.wall_s, rows, peak_rss_mb(), base, sw.cpu_s, {"pages": pages})


def _warm_pyarrow() -> float:
    """pyarrow's lazy ``import pandas`` (first ``pa.array`` of Python objects), timed; see the module docstring."""
    import time

    import pyarrow as pa

    t0 = time.perf_counter()
    pa.array([{"a": 1}], type=pa.struct([("a", pa.int64())]))
    return time.perf_counter() - t0


def _land_users(params: dict[str, Any], case: str, *, pipelined: bool) -> CaseResult:
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
    from airflow_provider_cplugin.parquet.schemas import MT4_USER
    from airflow_provider_cplugin.parquet.stream import land_pages

    target = Path(params["out_dir"]) / f"{case}-{params['size']}.parquet"
    warm_s = _warm_pyarrow()
    base = current_rss_mb()
    with Stopwatch() as sw, CPluginWebApiHook() as hook:
        path = hook.v2_path("UsersRequest", trade_platform=params["trade_platform"], platform_type="MT4")
        pages = (page.items for page in hook.paginate(path, limit=PAGE_LIMIT, request_ahead=pipelined))
        result = land_pages(pages, MT4_USER, ObjectStoragePath(f"file://{target}"), prefetch=1 if pipelined else 0)
    peak = peak_rss_mb()
    file_rows = pq.read_metadata(target).num_rows
    target.unlink()
    return CaseResult(
        case, params["size"], sw.wall_s, result.landed.rows, peak, base, sw.cpu_s,
        {"pages": result.pages, "records_read": result.records_read, "file_rows": file_rows,
         "file_bytes": result.landed.bytes, "lazy_pandas_import_s": warm_s},
    )  # fmt: skip


def ours(params: dict[str, Any]) -> CaseResult:
    """The operator's path as shipped: request-ahead paging → read-ahead → convert → Parquet."""
    return _land_users(params, "ours", pipelined=True)


def ours_sequential(params: dict[str, Any]) -> CaseResult:
    """``ours`` with ``paginate(request_ahead=False)`` and ``land_pages(prefetch=0)``: request, decode, convert and
    write strictly alternate (what the two overlaps buy)."""
    return _land_users(params, "ours_sequential", pipelined=False)


def naive(params: dict[str, Any]) -> CaseResult:
    import pandas as pd
    import pyarrow.parquet as pq

    target = Path(params["out_dir"]) / f"naive-{params['size']}.parquet"
    base = current_rss_mb()
    with Stopwatch() as sw:
        session = _session_with_token(params["url"])
        url = users_url(params)
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            envelope = session.get(url, params=query, timeout=60).json()
            rows.extend(envelope["data"])
            paging = envelope["meta"]["paging"]
            cursor = paging["nextCursor"] if paging["hasMore"] else None
            if not cursor:
                break
        frame = pd.DataFrame(rows)
        frame.to_parquet(target, index=False)
    peak = peak_rss_mb()
    file_rows = pq.read_metadata(target).num_rows
    target.unlink()
    return CaseResult("naive", params["size"], sw.wall_s, len(frame), peak, base, sw.cpu_s, {"file_rows": file_rows})


CASES: dict[str, Callable[[dict[str, Any]], CaseResult]] = {
    "floor": floor,
    "floor_json": floor_json,
    "ours": ours,
    "ours_sequential": ours_sequential,
    "naive": naive,
}
