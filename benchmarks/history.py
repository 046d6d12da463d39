"""Hourly trade-history runs, old path vs new: API calls and wall time of one run of ``TradeHistoryOperator``.

* ``mt4_reports`` (old): ``UsersRequest`` pages + ``ReportsRequest`` per 200 logins: calls grow with users.
* ``mt4_sync`` (new): ``ManagerCommon`` + ``TradesSyncStart`` + ``TradesSyncRead`` until ``[]``.
* ``mt5_full`` (old, ``incremental=False``): every ``DealByGroup`` page of the whole history.
* ``mt5_incremental`` (new): resumes from the checkpoint the previous hour's run left (that priming run is made,
  untimed, when the landing directory has no checkpoint yet): calls follow the new deals, not the history.

The run is the last full hour before the emulator's anchor (the newest data it serves); calls are the emulator's
``/_emulator/stats`` request counts for ``/api/v2/`` routes during the timed run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.common import CaseResult, Stopwatch, current_rss_mb, emulator_stats, peak_rss_mb

HOUR = timedelta(hours=1)
CASES_MT4 = ("mt4_reports", "mt4_sync")
CASES_MT5 = ("mt5_full", "mt5_incremental")


def _v2_calls(url: str) -> dict[str, int]:
    return {route: n for route, n in emulator_stats(url)["requests"].items() if "/api/v2/" in route}


def _method(route: str) -> str:
    """``GET /api/v2/MT5/{tradePlatform}/DealByGroup/{mask}`` → ``DealByGroup``."""
    return next(part for part in reversed(route.split("/")) if not part.startswith("{"))


def _run(op: Any, start: datetime) -> dict[str, Any]:
    context = {
        "ti": SimpleNamespace(dag_id="bench", task_id=op.task_id, map_index=-1),
        "logical_date": start,
        "data_interval_start": start,
        "data_interval_end": start + HOUR,
        "run_id": f"bench__{start.isoformat()}",
    }
    result: dict[str, Any] = op.execute(context)
    return result


def _operator(params: dict[str, Any]) -> Any:
    from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator

    case = params["case"]
    common = {"task_id": "history", "output_path": f"file://{Path(params['out_dir']) / case}"}
    if case.startswith("mt4"):
        method = "reports" if case == "mt4_reports" else "sync"
        return TradeHistoryOperator(platform_type="MT4", method=method, **common)
    return TradeHistoryOperator(
        trade_platform=params["mt5_trade_platform"], platform_type="MT5", incremental=case == "mt5_incremental",
        **common,
    )  # fmt: skip


def history_case(params: dict[str, Any]) -> CaseResult:
    start = datetime.fromtimestamp(params["anchor"], UTC) - HOUR
    op = _operator(params)
    if params["case"] == "mt5_incremental" and not (Path(params["out_dir"]) / params["case"] / "_checkpoints").exists():
        _run(op, start - HOUR)  # the previous hour's run, which leaves the checkpoint (untimed)
    base = current_rss_mb()
    before = _v2_calls(params["url"])
    with Stopwatch() as sw:
        result = _run(op, start)
    after = _v2_calls(params["url"])
    by_route = {_method(r): after[r] - before.get(r, 0) for r in after if after[r] != before.get(r, 0)}
    return CaseResult(
        case=params["case"],
        size=params["size"],
        wall_s=sw.wall_s,
        items=result["rows"],
        peak_rss_mb=peak_rss_mb(),
        base_rss_mb=base,
        cpu_s=sw.cpu_s,
        extra={
            "calls": sum(by_route.values()),
            "calls_by_route": by_route,
            "records_read": result["files"][0].get("records_read"),
            "pages": result["files"][0].get("pages"),
            "label": params["label"],
        },
    )


CASES = {name: history_case for name in (*CASES_MT4, *CASES_MT5)}
