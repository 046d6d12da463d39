"""Smoke test of ``benchmarks/run.py --quick``: the command runs end to end and its numbers are coherent.

No wall-time assertions (the machine is shared); only counts and ratios the code path guarantees.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import SNAPSHOT_CASES

REPO = Path(__file__).resolve().parents[2]
SIZES = (7000,)  # two pages: the cursor is followed once
# Every case, with the baselines (vendor SDK, dlt) and the long hub run, in one quick run: minutes on a loaded
# machine, longer than the suite's default guard.
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--out", str(out),
           "--sizes", ",".join(map(str, SIZES)), "--hub-seconds", "1", "--hub-long-seconds", "3"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1100, check=False)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    payload: dict[str, Any] = json.loads((out / "results.json").read_text())
    payload["_out"] = out
    payload["_stdout"] = proc.stdout
    return payload


def _runs(bench: dict[str, Any], group: str, case: str | None = None) -> list[dict[str, Any]]:
    return [r for r in bench["runs"] if r["group"] == group and (case is None or r["case"] == case)]


def test_outputs_written(bench: dict[str, Any]) -> None:
    out: Path = bench["_out"]
    text = (out / "results.md").read_text()
    for heading in ("## Users snapshot", "## Token refresh", "## Targets", "| b/a (ours"):
        assert heading in text
    assert text in bench["_stdout"]  # the same table is printed
    assert (out / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(r.get("result") for r in bench["runs"]), [r.get("error") for r in bench["runs"] if not r.get("result")]


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_rows_landed_equal_rows_served(bench: dict[str, Any], size: int) -> None:
    runs = {r["case"]: r["result"] for r in _runs(bench, "snapshot") if r["size"] == size}
    assert set(runs) == set(SNAPSHOT_CASES)
    pages = math.ceil(size / 5000)
    assert runs["floor"]["extra"]["pages"] == pages
    assert runs["floor_json"]["items"] == size
    ours = runs["ours"]
    assert ours["items"] == ours["extra"]["file_rows"] == ours["extra"]["records_read"] == size
    assert ours["extra"]["pages"] == runs["decode_floor"]["extra"]["pages"] == pages
    for baseline in ("decode_floor", "naive", "sdk", "dlt"):  # what users would pick instead lands every row too
        assert runs[baseline]["items"] == runs[baseline]["extra"]["file_rows"] == size, baseline
    for result in runs.values():
        assert result["extra"]["rows_ok"] is True
        assert result["wall_s"] > 0 and result["peak_rss_mb"] >= result["base_rss_mb"] > 0


def test_snapshot_ratios_reported(bench: dict[str, Any]) -> None:
    ratios = {r["size"]: r for r in bench["snapshot_ratios"]}
    assert set(ratios) == set(SIZES)
    for r in ratios.values():
        assert r["b_over_a"] > 0 and r["c_over_b"] > 0 and r["b_cpu_over_d_cpu"] > 0
    names = [t["target"] for t in bench["targets"]]
    for prefix in ("snapshot client CPU b/d", "snapshot wall b/a", "our peak RSS ≤", "hub b/a ≥", "triggerer RSS flat"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)


def test_token_calls_match_refresh_windows(bench: dict[str, Any]) -> None:
    runs = [r["result"] for r in _runs(bench, "token")]
    assert {r["case"] for r in runs} == {"token", "token_skew0"}
    for result in runs:
        extra = result["extra"]
        assert extra["errors"] == 0, extra["first_errors"]
        assert result["items"] == extra["threads"] * extra["requests"]
        assert abs(extra["token_calls"] - extra["expected_calls"]) <= 1, extra
        assert extra["token_calls"] >= 1


def test_hub_cases(bench: dict[str, Any]) -> None:
    runs = [r["result"] for r in _runs(bench, "hub")]
    assert {r["case"] for r in runs} == {"floor", "client", "ours", "ours_long"}
    for result in runs:
        extra = result["extra"]
        assert result["items"] > 0
        assert 0 <= extra["lag_p50_ms"] <= extra["lag_p99_ms"] <= extra["lag_max_ms"]
        if result["case"] != "floor":
            assert extra["rows_landed"] == result["items"]  # every event received is in Parquet


def test_history_cases_cost_flat_on_the_new_paths(bench: dict[str, Any]) -> None:
    """The new history paths cost the same at both sizes (users for MT4, history length for MT5); the old ones grow.
    Both paths land the same rows."""

    def calls(case: str) -> dict[int, int]:
        runs = _runs(bench, "history", case)
        assert runs, f"no history run for {case}"
        assert all(r["result"] for r in runs), [r.get("error") for r in runs]
        return {r["size"]: r["result"]["extra"]["calls"] for r in runs}

    for new, old in (("mt4_sync", "mt4_reports"), ("mt5_incremental", "mt5_full")):
        new_calls, old_calls = calls(new), calls(old)
        assert len(set(new_calls.values())) == 1, (new, new_calls)
        small, large = sorted(old_calls)
        assert old_calls[large] > old_calls[small] and old_calls[large] > new_calls[large], (old, old_calls)
        rows = {(r["case"], r["size"]): r["result"]["items"] for r in _runs(bench, "history")}
        for size in new_calls:
            assert rows[(new, size)] == rows[(old, size)] > 0, rows
