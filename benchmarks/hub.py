"""Hub sampling cases: the MT4 v2 hub's ``StreamTicks()`` (all symbols) for a fixed window, one child per run.

The emulator's tick feed is clock-driven (``/_emulator/hub-config`` sets the rate, each run sets its own). At the
default 1,000,000/s it is above what either side can absorb, so a slow reader is met with TCP backpressure and
the delivered rate is the capacity of the slower of emulator and client ("full speed"). One more run of ``ours``
at the target rate (50,000/s offered) shows the event-loop lag under a load the consumer can keep up with.

* ``floor``: a raw aiohttp WebSocket: negotiate, handshake, one StreamInvocation, then frames are counted
  (``text.count('{"type":2,')``, a C-speed scan) and discarded, never parsed.
* ``client``: our realtime client (``HubClient.stream``) → Arrow → ``ParquetLander``: what the trigger does,
  without the trigger (kept as a reference, and as the measurement while the trigger is pending).
* ``ours``: ``HubSampleTrigger.run()`` to completion into Parquet batches (when the trigger exists).
* ``ours_long``: ``ours`` at full speed for ``long_seconds`` (10 min in the full bench): RSS at the start and the
  end of the sampling (the triggerer's memory must stay flat), and its highest value after the first minute.

Every case measures event-loop lag with a ticker coroutine sleeping 5 ms and recording the overshoot, and the
process's RSS when sampling starts and ends. The garbage collector is left at CPython's defaults (the provider
changes no process-wide setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.common import CaseResult, Stopwatch, connection_from_env, current_rss_mb, emulator_control, peak_rss_mb

HUB_PATH = "/hubs/mt4/v2"
RS = "\x1e"
STREAM_ITEM = '{"type":2,'
TICK_PERIOD_S = 0.005


class GcMeter:
    """Cyclic-GC pauses (count, total, longest) while active: the usual suspect for long event-loop stalls."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._t0) * 1000)

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float]:
        pauses = self.pauses_ms or [0.0]
        return {"gc_runs": len(self.pauses_ms), "gc_total_s": sum(pauses) / 1000, "gc_max_ms": max(pauses)}


class LagTicker:
    """Sleeps ``period`` in a loop and records how late each wake-up was (event-loop lag)."""

    def __init__(self, period: float = TICK_PERIOD_S) -> None:
        self.period = period
        self.lags_ms: list[float] = []
        self.rss_mb: list[tuple[float, float]] = []  # (seconds since start, RSS MB), about once a second
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = next_rss = loop.time()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period)
            self.lags_ms.append(max(0.0, (loop.time() - t0 - self.period) * 1000))
            if loop.time() >= next_rss:
                self.rss_mb.append((loop.time() - start, current_rss_mb()))
                next_rss += 1.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lags = sorted(self.lags_ms) or [0.0]
        q = statistics.quantiles(lags, n=100, method="inclusive") if len(lags) > 1 else lags * 99
        rss = self.rss_mb or [(0.0, current_rss_mb())]
        settled = [mb for t, mb in rss if t >= 60.0] or [mb for _, mb in rss]
        return {
            "lag_p50_ms": q[49],
            "lag_p99_ms": q[98],
            "lag_max_ms": lags[-1],
            "lag_samples": len(self.lags_ms),
            "rss_start_mb": rss[0][1],
            "rss_end_mb": current_rss_mb(),
            "rss_max_after_1min_mb": max(settled),
        }


async def _token(session: Any, url: str) -> str:
    conn = connection_from_env()
    form = {"grant_type": "client_credentials", "client_id": conn["login"], "client_secret": conn["password"],
            "scope": "webapi"}  # fmt: skip
    async with session.post(f"{url}/connect/token", data=form) as resp:
        resp.raise_for_status()
        body = await resp.json()
        return str(body["access_token"])


async def _floor(params: dict[str, Any]) -> tuple[int, float, dict[str, Any]]:
    import aiohttp

    url, tp, seconds = params["url"], params["trade_platform"], float(params["seconds"])
    async with aiohttp.ClientSession() as session:
        token = await _token(session, url)
        headers = {"Authorization": f"Bearer {token}"}
        query = {"negotiateVersion": "1", "tradePlatform": tp}
        async with session.post(f"{url}{HUB_PATH}/negotiate", params=query, headers=headers) as resp:
            resp.raise_for_status()
            negotiation = await resp.json()
        ws_query = {"tradePlatform": tp, "id": negotiation["connectionToken"], "access_token": token}
        ws_url = url.replace("http", "ws", 1) + HUB_PATH
        async with session.ws_connect(ws_url, params=ws_query, max_msg_size=0, autoping=True) as ws:
            await ws.send_str('{"protocol":"json","version":1}' + RS)
            first = await ws.receive_str()
            if not first.startswith("{}" + RS):
                raise RuntimeError(f"handshake refused: {first[:200]!r}")
            await ws.send_str('{"type":4,"invocationId":"0","target":"StreamTicks","arguments":[]}' + RS)
            items = frames = messages = nbytes = 0
            started: float | None = None
            deadline = time.monotonic() + seconds + 30  # generous: the window starts at the first item
            while True:
                try:
                    msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    if started is None:
                        raise RuntimeError(f"no stream item within {seconds + 30:.0f} s of the invocation") from None
                    break  # the window is over and the server sent nothing more in time (a loaded machine)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"WebSocket ended: {msg.type!r} {msg.data!r}")
                now = time.monotonic()
                text: str = msg.data
                count = text.count(STREAM_ITEM)
                if started is None and count:
                    started, deadline = now, now + seconds
                items += count
                frames += text.count(RS)
                messages += 1
                nbytes += len(text)
                if started is not None and now >= deadline:
                    break
            elapsed = time.monotonic() - (started or time.monotonic())
            await ws.close()
    return items, elapsed, {"frames": frames, "ws_messages": messages, "chars": nbytes}


TICK_WIRE = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2024-01-01T00:00:00.1234567Z"}


def _tick_entity() -> Any:
    from airflow_provider_cplugin.parquet.schemas import FLOAT, STR, TS, EntitySchema

    return EntitySchema("bench_mt4_ticks", (("symbol", STR), ("bid", FLOAT), ("ask", FLOAT), ("lastTime", TS)), ())


def _warm_client() -> None:
    """Imports and pyarrow's lazy ``import pandas`` (first ``pa.array`` of dicts) happen once per triggerer
    process, not per sample: pay them before the lag ticker starts."""
    import aiohttp  # noqa: F401
    from airflow.sdk import ObjectStoragePath  # noqa: F401

    from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
    from airflow_provider_cplugin.realtime.client import HubClient  # noqa: F401

    RecordBatchConverter(_tick_entity()).convert([TICK_WIRE])


async def _client(params: dict[str, Any]) -> tuple[int, float, dict[str, Any]]:
    """Realtime client → Arrow → Parquet: the trigger's job done inline while the trigger is pending.

    Conversion and writing run in a worker thread (``asyncio.to_thread``) so the event loop keeps reading the
    socket; at most one batch is being converted while the next is received.
    """
    import aiohttp
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
    from airflow_provider_cplugin.parquet.landing import ParquetLander
    from airflow_provider_cplugin.realtime.client import HubClient

    tick = _tick_entity()
    url, tp, seconds = params["url"], params["trade_platform"], float(params["seconds"])
    target = Path(params["out_dir"]) / "hub-client.parquet"
    converter = RecordBatchConverter(tick)
    items = 0
    async with aiohttp.ClientSession() as session:
        token = await _token(session, url)

        async def provider() -> str:
            return token

        hub_url = f"{url}{HUB_PATH}?tradePlatform={tp}"
        async with HubClient(hub_url, provider, allow_insecure_loopback=True, session=session) as client:
            stream = await client.stream("StreamTicks")
            with ParquetLander(ObjectStoragePath(f"file://{target}"), tick.arrow_schema, entity=tick.name) as lander:

                def land(payloads: list[Any]) -> None:
                    lander.write_batch(converter.convert(payloads))

                batch = await stream.get_batch(wait_s=30)
                started = time.monotonic()
                deadline = started + seconds
                while True:
                    if batch:
                        items += len(batch)
                        await asyncio.to_thread(land, [e.payload for e in batch])
                    if time.monotonic() >= deadline:
                        break
                    batch = await stream.get_batch(max_items=10_000, wait_s=max(0.0, deadline - time.monotonic()))
                elapsed = time.monotonic() - started
                await stream.cancel()
            stats = client.stats()
    rows = lander.landed.rows if lander.landed else 0
    target.unlink(missing_ok=True)
    return items, elapsed, {"rows_landed": rows, "gaps": stats.get("gaps"), "reconnects": stats.get("reconnects")}


def _warm_trigger() -> None:
    import pyarrow as pa

    from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger  # noqa: F401

    # pyarrow imports pandas on the first pa.array of Python objects: once per triggerer process, not per sample.
    pa.array([{"a": 1}], type=pa.struct([("a", pa.int64())]))


async def _trigger(params: dict[str, Any], **request: Any) -> tuple[int, float, dict[str, Any]]:
    """``HubSampleTrigger.run()`` for a window of ``seconds``, exactly as the triggerer drives it.

    The rate is events / (window end - trigger start): connect time counts against us, the final flush after
    the window does not (it is reported as ``flush_after_window_s``).
    """
    from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger

    out_dir = Path(params["out_dir"]) / f"hub-trigger-{os.getpid()}"
    started = time.time()
    window_end = started + float(params["seconds"])
    trigger = HubSampleTrigger(
        cplugin_conn_id="cplugin_default",
        trade_platform=params["trade_platform"],
        platform_type="MT4",
        streams=[{"method": "StreamTicks", "args": []}],
        window_end=window_end,
        output_path=f"file://{out_dir}",
        run_name=f"bench__hub__{os.getpid()}",
        partition_date=time.strftime("%Y-%m-%d", time.gmtime(started)),
        **request,
    )
    events = [event.payload async for event in trigger.run()]
    finished = time.time()
    if len(events) != 1 or events[0].get("status") != "success":
        raise RuntimeError(f"trigger did not succeed: {events!r:.500}")
    summary = events[0]
    total = int(summary["total_events"])
    rows = sum(int(f["rows"]) for f in summary["files"])
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)
    return (
        total,
        window_end - started,
        {
            "rows_landed": rows,
            "files": len(summary["files"]),
            "gaps": len(summary["gaps"]),
            "connections": summary.get("connections"),
            "flush_after_window_s": finished - window_end,
        },
    )


Body = Callable[[dict[str, Any]], Awaitable[tuple[int, float, dict[str, Any]]]]


def _run(name: str, body: Body, warm: Callable[[], None] | None = None) -> Callable[[dict[str, Any]], CaseResult]:
    def case(params: dict[str, Any]) -> CaseResult:
        # Each run sets the feed rate it wants (runs are sequential; the emulator outlives them).
        emulator_control(params["url"], "hub-config", {"rates": {"ticks": params["rate"]}})
        if warm is not None:
            warm()

        async def main() -> tuple[CaseResult, Stopwatch]:
            ticker = LagTicker()
            base = current_rss_mb()
            with Stopwatch() as sw, GcMeter() as gc_meter:
                ticker.start()
                items, elapsed, extra = await body(params)
                lag = await ticker.stop()
            extra.update(lag, **gc_meter.summary(), stream="StreamTicks()")
            result = CaseResult(name, int(params["rate"]), elapsed, items, 0.0, base, 0.0, extra)
            return result, sw

        result, sw = asyncio.run(main())
        # Wall is the sampling window (from the first item); CPU covers set-up too, so report it per event.
        result.cpu_s = sw.cpu_s
        result.extra["cpu_us_per_event"] = sw.cpu_s / result.items * 1e6 if result.items else None
        result.peak_rss_mb = peak_rss_mb()
        return result

    return case


CASES: dict[str, Callable[[dict[str, Any]], CaseResult]] = {
    "floor": _run("floor", _floor),
    "client": _run("client", _client, _warm_client),
    "ours": _run("ours", _trigger, _warm_trigger),
    "ours_long": _run("ours_long", lambda p: _trigger({**p, "seconds": p["long_seconds"]}), _warm_trigger),
}
NOTE = "(b) = HubSampleTrigger"
