"""Users snapshot cases (MT4 ``UsersRequest``, ``limit=5000``), each run in its own child process.

* ``floor``: the bytes of every page over one ``requests.Session``; bodies are read whole and discarded. The
  floor does **not** parse JSON: the next cursor is cut out of the envelope's tail (``meta`` is serialised last),
  so the floor is "HTTP + emulator" and nothing else.
* ``floor_json``: the floor plus ``json.loads`` of every body (reference only, not a target): it splits what our
  path costs into JSON decoding vs. Arrow conversion and Parquet writing.
* ``decode_floor``: the floor plus what any columnar client must do with the same pages: each body straight to
  Arrow in C++ (``pyarrow.json`` with the entity's explicit schema, datetimes left as text) and one Parquet file
  written in 100k-row row groups. No checks, no paging decisions: the CPU our path is measured against.
* ``ours``: the operator's code path, ``CPluginWebApiHook.paginate(data_decoder=PageDecoder)`` → ``land_pages``.
* ``ours_sequential`` (reference): ``ours`` without the fetch-ahead (``paginate(request_ahead=False)``), so
  requesting, decoding and writing strictly alternate.
* ``naive``: requests + ``resp.json()`` + one pandas DataFrame of all rows + ``to_parquet`` (no type conversion:
  dates stay strings, which favours the baseline).
* ``sdk``: the vendor's Python SDK (``mywebapi-sdk`` 0.3.3): ``client.paged(mt4.users_request)`` into one pandas
  DataFrame → ``to_parquet``, what its README shows.
* ``dlt``: dlt's ``rest_api`` source (cursor paginator on ``meta.paging.nextCursor``, ``data`` selector) → the
  ``filesystem`` destination as Parquet, in a pipeline directory of its own.

Every case fetches its own token inside the timed section (the hook has to, so the others do too). Imports
happen before it. The cases that use pandas import it; ours never does (pyarrow would import it, ~45 MB and
~0.7 s, on its first conversion of a Python object: the landing path avoids every one), and reports
``pandas_imported`` to prove it.
"""

from __future__ import annotations

import json
import re
import sys
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


def decode_floor(params: dict[str, Any]) -> CaseResult:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    from airflow_provider_cplugin.parquet.schemas import MT4_USER

    wire = pa.struct([(n, pa.string() if pa.types.is_timestamp(t) else t) for n, t in MT4_USER.fields])
    parse = pj.ParseOptions(explicit_schema=pa.schema([("data", pa.list_(wire))]), unexpected_field_behavior="ignore")
    target = Path(params["out_dir"]) / f"decode_floor-{params['size']}.parquet"
    base = current_rss_mb()
    pages = rows = 0
    with Stopwatch() as sw:
        session = _session_with_token(params["url"])
        with pq.ParquetWriter(target, pa.schema(list(zip(wire.names, [f.type for f in wire], strict=True)))) as out:
            buffered: list[pa.RecordBatch] = []
            for body in _raw_pages(session, users_url(params)):
                read = pj.read_json(
                    pa.BufferReader(body), read_options=pj.ReadOptions(block_size=len(body) + 1), parse_options=parse
                )
                values = read.column("data").combine_chunks().flatten()
                buffered.append(pa.RecordBatch.from_struct_array(values))
                pages += 1
                rows += len(values)
                if sum(b.num_rows for b in buffered) >= 100_000:
                    out.write_table(pa.Table.from_batches(buffered), row_group_size=100_000)
                    buffered = []
            if buffered:
                out.write_table(pa.Table.from_batches(buffered), row_group_size=100_000)
    peak = peak_rss_mb()
    file_rows = pq.read_metadata(target).num_rows
    target.unlink()
    return CaseResult(
        "decode_floor", params["size"], sw.wall_s, rows, peak, base, sw.cpu_s, {"pages": pages, "file_rows": file_rows}
    )


def _land_users(params: dict[str, Any], case: str, *, pipelined: bool) -> CaseResult:
    import pyarrow.parquet as pq
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
    from airflow_provider_cplugin.parquet.decode import PageDecoder
    from airflow_provider_cplugin.parquet.schemas import MT4_USER
    from airflow_provider_cplugin.parquet.stream import land_pages

    target = Path(params["out_dir"]) / f"{case}-{params['size']}.parquet"
    base = current_rss_mb()
    with Stopwatch() as sw, CPluginWebApiHook() as hook:
        path = hook.v2_path("UsersRequest", trade_platform=params["trade_platform"], platform_type="MT4")
        decoder = PageDecoder(MT4_USER)
        paged = hook.paginate(path, limit=PAGE_LIMIT, request_ahead=pipelined, data_decoder=decoder)
        result = land_pages((page.items for page in paged), MT4_USER, ObjectStoragePath(f"file://{target}"),
                            decoder=decoder)  # fmt: skip
    peak = peak_rss_mb()
    file_rows = pq.read_metadata(target).num_rows
    target.unlink()
    return CaseResult(
        case, params["size"], sw.wall_s, result.landed.rows, peak, base, sw.cpu_s,
        {"pages": result.pages, "records_read": result.records_read, "file_rows": file_rows,
         "file_bytes": result.landed.bytes, "bodies_in_cpp": decoder.bodies,
         "pandas_imported": "pandas" in sys.modules},
    )  # fmt: skip


def ours(params: dict[str, Any]) -> CaseResult:
    """The operator's path as shipped: fetch-ahead paging → columnar decode → Parquet."""
    return _land_users(params, "ours", pipelined=True)


def ours_sequential(params: dict[str, Any]) -> CaseResult:
    """``ours`` with ``paginate(request_ahead=False)``: request, decode and write strictly alternate (what the
    fetch-ahead buys)."""
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


def sdk(params: dict[str, Any]) -> CaseResult:
    import pandas as pd
    import pyarrow.parquet as pq
    from cplugin_webapi_sdk import CPluginWebApiClient

    conn = connection_from_env()
    target = Path(params["out_dir"]) / f"sdk-{params['size']}.parquet"
    base = current_rss_mb()
    with Stopwatch() as sw:
        client = CPluginWebApiClient(
            env="custom", client_id=conn["login"], client_secret=conn["password"], api_base_url=params["url"],
            authority=params["url"], timeout=60,
        )  # fmt: skip
        with client:
            tp = params["trade_platform"]
            rows: list[Any] = []
            for data in client.paged(lambda cursor: client.mt4.users_request(tp, cursor=cursor, limit=PAGE_LIMIT)):
                rows.extend(r if isinstance(r, dict) else r.to_dict() for r in data)
        frame = pd.DataFrame(rows)
        frame.to_parquet(target, index=False)
    peak = peak_rss_mb()
    file_rows = pq.read_metadata(target).num_rows
    target.unlink()
    return CaseResult("sdk", params["size"], sw.wall_s, len(frame), peak, base, sw.cpu_s, {"file_rows": file_rows})


def dlt_rest_api(params: dict[str, Any]) -> CaseResult:
    import os

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    import pyarrow.parquet as pq
    from dlt.sources.rest_api import rest_api_source

    work = Path(params["out_dir"]) / f"dlt-{params['size']}"
    base = current_rss_mb()
    with Stopwatch() as sw:
        token = _session_with_token(params["url"]).headers["Authorization"].removeprefix("Bearer ")
        source = rest_api_source(
            {
                "client": {
                    "base_url": params["url"],
                    "auth": {"type": "bearer", "token": token},
                    "paginator": {"type": "cursor", "cursor_path": "meta.paging.nextCursor", "cursor_param": "cursor"},
                },
                "resources": [
                    {
                        "name": "users",
                        "endpoint": {
                            "path": f"api/v2/MT4/{params['trade_platform']}/UsersRequest",
                            "params": {"limit": PAGE_LIMIT},
                            "data_selector": "data",
                        },
                    }
                ],
            }
        )
        pipeline = dlt.pipeline(
            pipeline_name=f"bench_{params['size']}", pipelines_dir=str(work / "pipelines"),
            destination=dlt.destinations.filesystem(bucket_url=(work / "lake").as_uri()), dataset_name="cplugin",
        )  # fmt: skip
        pipeline.run(source, loader_file_format="parquet")
    peak = peak_rss_mb()
    files = sorted((work / "lake").rglob("*.parquet"))
    file_rows = sum(pq.read_metadata(f).num_rows for f in files if "users" in f.parts[-2] or "users" in f.name)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return CaseResult("dlt", params["size"], sw.wall_s, file_rows, peak, base, sw.cpu_s, {"file_rows": file_rows})


CASES: dict[str, Callable[[dict[str, Any]], CaseResult]] = {
    "floor": floor,
    "floor_json": floor_json,
    "decode_floor": decode_floor,
    "ours": ours,
    "ours_sequential": ours_sequential,
    "naive": naive,
    "sdk": sdk,
    "dlt": dlt_rest_api,
}
