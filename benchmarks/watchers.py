"""Hub watchers under load: ``python benchmarks/run.py --cases watchers`` (30 min full, 20 s ``--quick``).

One process plays the triggerer: ten ``HubEventTrigger`` watchers of ``StreamTicks()`` on one platform, run
through Airflow's own ``SharedStreamManager`` (as the triggerer runs them: one shared hub connection), plus one
``HubCaptureTrigger`` capturing the same stream continuously to Parquet (its own connection), with the emulator
offering ``--watchers-rate`` ticks/s (50,000). Measured:

* hub connections and stream invocations (the emulator's hub stats: the truth, not our count);
* event-loop lag p50/p99/max of a 5 ms probe, RSS at start, after the first minute (warm-up: imports, the first
  Arrow batches), at the end of the run and the largest after the first minute;
* watcher freshness: from the tick's scheduled time (its ``lastTime``, set by the emulator's feed clock) to the
  ``TriggerEvent`` leaving the watcher, p50/p99 (a watcher falling behind shows here, and so does an emulator
  sending late), and from the hub client receiving it to the ``TriggerEvent`` (our part alone);
* capture integrity: ticks sent on the capture's invocation up to the last landed one (emulator feed indexes),
  ticks landed (read back from the files, distinct), reported missed (sum of the files' events' ``missed``) and
  ``unaccounted = sent - landed - missed`` (must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import RESULT_PREFIX, CaseResult, Stopwatch, emulator_control, peak_rss_mb
from benchmarks.hub import GcMeter, LagTicker

SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"
WATCHERS = 10


class MemoryStore:
    """The ``asset_state_store`` accessor the triggerer injects (``aget``/``aset``), JSON round-tripped."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)


def _emulator(url: str, method: str, path: str) -> Any:
    import urllib.request

    req = urllib.request.Request(f"{url}/_emulator/{path}", method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def _quantiles(values: list[float]) -> tuple[float | None, float | None]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (None, None)
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[98]


def _lasttime(value: str) -> float:
    # .NET round-trip text with up to 7 fractional digits (trimmed): Python parses at most 6.
    text = value.rstrip("Z")
    head, _, frac = text.partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + (float("0." + frac) if frac else 0.0)


async def _drain(name: str, events: Any, fired: dict[str, list[float]], processing: list[float]) -> None:
    async for event in events:
        payload = event.payload
        now = time.time()
        fired.setdefault(name, []).append(now - _lasttime(payload["event"]["lastTime"]))
        processing.append(now - payload["received_at"])


async def _body(params: dict[str, Any], ticker: LagTicker) -> tuple[int, float, dict[str, Any]]:
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger, HubEventTrigger

    out_dir = Path(params["out_dir"]) / f"watchers-{os.getpid()}"
    # The watchers without a sequence function (a real hub has none: nothing to compute per event but the decode);
    # the capture with the emulator's, so that its landed ticks can be held against the sent ones.
    common = {"stream": "StreamTicks", "trade_platform": params["trade_platform"], "platform_type": "MT4"}
    from airflow_provider_cplugin.emulator.data import SYMBOLS

    # One symbol each, above its base price (about half of its ticks match), debounced per symbol: what a desk
    # would set up. Matching rows cost Python (key, debounce), the others only the vectorised filter.
    watchers = []
    for n in range(WATCHERS):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        where = [{"field": "symbol", "op": "==", "value": symbol.name},
                 {"field": "bid", "op": ">", "value": symbol.base_price}]  # fmt: skip
        watchers.append(HubEventTrigger(**common, where=where, debounce_s=1.0, name=f"{symbol.name}_{n}"))
    keys = {w.shared_stream_key() for w in watchers}
    assert len(keys) == 1, keys
    (key,) = keys
    capture = HubCaptureTrigger(**common, sequences=SEQUENCES, output_path=f"file://{out_dir}", name="bench_ticks",
                                roll_s=min(10.0, float(params["seconds"]) / 6), roll_rows=100_000)  # fmt: skip
    for trigger in [*watchers, capture]:
        trigger.asset_state_store = MemoryStore()
    manager = SharedStreamManager()
    fired: dict[str, list[float]] = {}
    processing: list[float] = []  # the hub client received the tick -> its TriggerEvent left the watcher
    files: list[dict[str, Any]] = []

    async def run_capture() -> None:
        async for event in capture.run():
            files.append(event.payload)

    subscriptions = [manager.subscribe(trigger_id=n, trigger=w, key=key) for n, w in enumerate(watchers)]
    tasks = [
        asyncio.create_task(_drain(w.name or "", w.filter_shared_stream(sub), fired, processing))
        for w, sub in zip(watchers, subscriptions, strict=True)
    ]
    tasks.append(asyncio.create_task(run_capture()))
    started = time.time()
    try:
        done, _ = await asyncio.wait(tasks, timeout=float(params["seconds"]), return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # a watcher or the capture failed: the run fails with it
    finally:
        elapsed = time.time() - started
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for n in range(len(watchers)):
            await manager.unsubscribe(n, key)
    # The probe stops before the truth is read back (10M rows of Parquet would count as the triggerer's RSS).
    lag = await ticker.stop()
    samples = ticker.rss_mb or [(0.0, lag["rss_end_mb"])]
    lag["rss_at_1min_mb"] = next((mb for t, mb in samples if t >= 60.0), samples[0][1])
    lag["peak_rss_before_check_mb"] = peak_rss_mb()  # the process's high-water mark, before the read-back below
    stats = _emulator(params["url"], "GET", "hub-stats")
    extra = {**lag, **_capture_truth(stats, files)}
    shutil.rmtree(out_dir, ignore_errors=True)
    records = [r for r in stats["streams"] if r["target"] == "StreamTicks"]
    latencies = sorted(x for values in fired.values() for x in values)
    p50, p99 = _quantiles(latencies)
    q50, q99 = _quantiles(sorted(processing))
    extra.update(
        hub_connections=stats["connections_opened"],
        hub_invocations=stats["invocations"].get("StreamTicks", 0),
        expected_connections="1 shared by the watchers + 1 capture",
        ticks_sent_per_connection=[r["items"] for r in records],
        offered_per_s=params["rate"],
        watcher_fires={name: len(v) for name, v in sorted(fired.items())},
        fire_freshness_p50_s=p50,
        fire_freshness_p99_s=p99,
        fire_after_receive_p50_s=q50,
        fire_after_receive_p99_s=q99,
    )
    return sum(r["items"] for r in records), elapsed, extra


def _capture_truth(stats: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """Landed vs sent on the capture's invocation (the one whose feed indexes the files hold)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS, SYMBOL_INDEX

    paths = [f["path"].removeprefix("file://") for f in files if f.get("path")]
    if not paths:
        return {"capture_files": 0, "capture_landed": 0, "capture_missed": None, "capture_unaccounted": None}
    # Feed indexes as one int64 array, file by file (a 30-min run lands ~90M ticks: Python ints would need ~16 GB).
    names = pa.array(list(SYMBOL_INDEX), pa.string())
    offsets = pa.array(list(SYMBOL_INDEX.values()), pa.int64())
    parts = []
    for path in paths:
        table = pq.read_table(path, columns=["_sequence_key", "_sequence"])
        symbol = pc.take(offsets, pc.index_in(table.column("_sequence_key").cast(pa.string()), value_set=names))
        index = pc.add(pc.multiply(table.column("_sequence").cast(pa.int64()), N_SYMBOLS), symbol)
        parts.append(index.to_numpy())
    landed = np.sort(np.concatenate(parts))
    distinct = int(np.count_nonzero(np.diff(landed))) + 1
    first, last = int(landed[0]), int(landed[-1])
    # The capture's invocation: the record whose index range holds what was landed.
    records = [r for r in stats["streams"] if r["target"] == "StreamTicks" and r["first_index"] is not None]
    exact = [r for r in records if r["first_index"] == first]
    record = exact[0] if exact else min(records, key=lambda r: abs(r["first_index"] - first))
    sent = last - record["first_index"] + 1  # every index up to the last landed one was sent
    missed = [f["missed"] for f in files]
    reported = sum(missed) if None not in missed else None
    return {
        "capture_files": len(files),
        "capture_sent_upto_last_landed": sent,
        "capture_landed": distinct,
        "capture_duplicates": len(landed) - distinct,
        "capture_missed": reported,
        "capture_unaccounted": None if reported is None else sent - distinct - reported,
        "capture_rejects": sum(f["rejects"]["rows"] for f in files),
    }


def run(params: dict[str, Any]) -> CaseResult:
    emulator_control(params["url"], "hub-config", {"rates": {"ticks": params["rate"]}})
    _emulator(params["url"], "DELETE", "hub-stats")

    async def main() -> tuple[CaseResult, Stopwatch]:
        from benchmarks.common import current_rss_mb

        ticker = LagTicker()
        base = current_rss_mb()
        with Stopwatch() as sw, GcMeter() as gc_meter:
            ticker.start()
            items, elapsed, extra = await _body(params, ticker)
        extra.update(**gc_meter.summary(), loadavg_end=os.getloadavg()[0])
        return CaseResult("watchers", int(params["rate"]), elapsed, items, 0.0, base, 0.0, extra), sw

    result, sw = asyncio.run(main())
    result.cpu_s = sw.cpu_s
    result.peak_rss_mb = result.extra["peak_rss_before_check_mb"]
    return result


def table(runs: list[dict[str, Any]]) -> str:
    """The report's section (one row per run)."""
    rows = [
        "## Watchers: 10 `HubEventTrigger`s sharing one `StreamTicks()` + continuous capture",
        "",
        "| offered/s | s | hub connections | lag p50 / p99 / max ms | RSS start → 1 min → end (max after 1 min) MB | "
        "fire freshness p50 / p99 s (after receive) | capture sent / landed / missed / unaccounted | CPU s | "
        "load avg start → end |",
        "|---:|---:|---|---|---|---|---|---:|---|",
    ]
    for run_ in runs:
        result = run_.get("result")
        if not result:
            rows.append(f"| failed: {run_.get('error', '')[:200]!r} |")
            continue
        e = result["extra"]
        rows.append(
            f"| {e['offered_per_s']:,.0f} | {result['wall_s']:.0f} | {e['hub_connections']} "
            f"({e['expected_connections']}) | {e['lag_p50_ms']:.1f} / {e['lag_p99_ms']:.1f} / {e['lag_max_ms']:.0f} | "
            f"{e['rss_start_mb']:.0f} → {e['rss_at_1min_mb']:.0f} → {e['rss_end_mb']:.0f} "
            f"({e['rss_max_after_1min_mb']:.0f}) | "
            f"{_num(e['fire_freshness_p50_s'])} / {_num(e['fire_freshness_p99_s'])} "
            f"({_num(e.get('fire_after_receive_p50_s'))} / {_num(e.get('fire_after_receive_p99_s'))}) | "
            f"{e.get('capture_sent_upto_last_landed', 0):,} / {e['capture_landed']:,} / {e['capture_missed']} / "
            f"{e['capture_unaccounted']} | {result['cpu_s']:.0f} | {run_.get('loadavg', float('nan')):.1f} → "
            f"{e['loadavg_end']:.1f} |"
        )  # fmt: skip
    return "\n".join(rows)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    params = json.loads(sys.stdin.read())
    print(RESULT_PREFIX + json.dumps(run(params).to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
