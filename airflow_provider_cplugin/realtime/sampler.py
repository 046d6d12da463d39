"""Sample hub streams for a bounded window and land the events as Parquet batches.

Shared by :class:`~airflow_provider_cplugin.triggers.hub_sample.HubSampleTrigger` (deferred, in the triggerer)
and :class:`~airflow_provider_cplugin.operators.hub_sample.HubSampleOperator` (inline, ``deferrable=False``).

* **Bounded**: until ``window_end`` (absolute, so a re-created trigger keeps the same window) or ``max_events``.
* **Batched**: each stream's events are cut into batches of ``batch_rows`` rows or about ``batch_bytes`` bytes;
  each batch is one Parquet file written atomically **in a worker thread** (conversion and file I/O never run on
  the event loop; one write per stream is in flight while the next batch fills).
* **Deterministic and restart-safe**: batch files are ``<run>__b00000.parquet``, ``__b00001``... per entity
  partition. A sampler started for a run whose batches already exist (triggerer restart, task retry) continues
  the numbering, so nothing that landed is overwritten or written twice; a sample that already completed
  (its manifest names the same window) is returned as is, without sampling again.
* **Event loop and GC**: at high rates the cost that remains is not our writes but CPython's garbage collector:
  every tick allocates a few container objects, so young collections run every 700 allocations and buffered
  events keep being promoted, and every full collection re-walks the whole long-lived heap of the process
  (Airflow, pyarrow, ...), ~200 ms each. The first sample in a process therefore tunes the collector once
  (``tune_gc``, on by default), the remedies CPython documents for long-running servers: ``gc.freeze()`` moves
  the objects alive then (imports, mostly) to the permanent generation so later collections walk only newer
  objects, and the young-generation threshold goes from 700 to 50,000 allocations so short-lived events die
  before any collection sees them. Measured (benchmarks/, 1M ticks/s offered): events/s 115k → 290k and loop
  lag p99 ~200 ms → ~30 ms. No ``gc.collect()`` is run first (it would block the loop); the costs are that
  cyclic garbage alive at that moment is never reclaimed (a one-time bounded amount) and that later cyclic
  garbage waits a little longer. Both settings apply to the whole process (the triggerer's other triggers too).
* **Gaps**: every disconnect the client records (when, why, how many events missed where the stream has a
  sequence) is returned with the counts, and the ``_connection`` column shows it in the data.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.hub_schemas import CHANNEL, CONNECTION, RECEIVED_AT, STREAM_ENTITIES
from airflow_provider_cplugin.parquet.landing import ParquetLander, partition_dir
from airflow_provider_cplugin.parquet.schemas import TS, EntitySchema
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client
from airflow_provider_cplugin.realtime.subscriptions import HubStream

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = "__manifest.json"
_BATCH = re.compile(r"__b(\d{5})\.parquet$")


@dataclass(frozen=True)
class StreamSpec:
    """One hub stream to sample: ``StreamTicks`` with ``args=("EURUSD",)``, ``StreamMarginCallUpdates``..."""

    method: str
    args: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, value: str | dict[str, Any] | StreamSpec) -> StreamSpec:
        """``"StreamTicks:EURUSD"``, ``"StreamTrades"`` or ``{"method": ..., "args": [...]}``."""
        if isinstance(value, StreamSpec):
            return value
        if isinstance(value, dict):
            return cls(str(value["method"]), tuple(value.get("args") or ()))
        method, _, arg = value.partition(":")
        return cls(method.strip(), (arg.strip(),) if arg.strip() else ())

    @property
    def channel(self) -> str:
        return f"{self.method}({','.join(map(str, self.args))})" if self.args else self.method

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "args": list(self.args)}


@dataclass(frozen=True)
class SampleRequest:
    """Everything a sample needs, JSON-serializable (a trigger's kwargs): a connection id, never a secret."""

    cplugin_conn_id: str
    trade_platform: str
    platform_type: str
    streams: list[dict[str, Any]]
    window_end: float
    """Unix seconds when sampling stops."""
    output_path: str
    run_name: str
    """Deterministic prefix of the batch files (``<dag>__<task>__<logical date>``)."""
    partition_date: str
    max_events: int | None = None
    batch_rows: int = 50_000
    batch_bytes: int = 64 * 1024 * 1024
    transports: list[str] = field(default_factory=lambda: ["WebSockets", "LongPolling"])
    reconnect_delays: list[float] | None = None
    tune_gc: bool = True

    def specs(self) -> list[StreamSpec]:
        return [StreamSpec.parse(s) for s in self.streams]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def entity_for(platform_type: str, spec: StreamSpec) -> EntitySchema:
    check_stream(platform_type, spec.method)
    entity = STREAM_ENTITIES.get((platform_type.upper(), spec.method))
    if entity is None:
        raise CPluginConfigError("streams", f"no Parquet schema declared for {platform_type} {spec.method}")
    return entity


class BatchWriter:
    """Cuts one stream's events into numbered Parquet batches, each written in a thread."""

    def __init__(self, entity: EntitySchema, directory: ObjectStoragePath, run_name: str, request: SampleRequest):
        self.entity = entity
        self.directory = directory
        self.run_name = run_name
        self.batch_rows = request.batch_rows
        self.batch_bytes = request.batch_bytes
        self.converter = RecordBatchConverter(entity)
        self.pending: list[HubEvent] = []
        self._pending_bytes = 0
        self._bytes_per_event: int | None = None
        self._write: asyncio.Task[dict[str, Any]] | None = None
        self.files: list[dict[str, Any]] = []
        self.events = 0
        self.next_batch = 0

    def existing_batches(self) -> list[ObjectStoragePath]:
        if not self.directory.exists():
            return []
        prefix = f"{self.run_name}__b"
        return sorted(p for p in self.directory.iterdir() if p.name.startswith(prefix) and _BATCH.search(p.name))

    def resume_numbering(self) -> int:
        """Continue after batches an earlier attempt landed; returns how many there were."""
        existing = self.existing_batches()
        if existing:
            match = _BATCH.search(existing[-1].name)
            self.next_batch = int(match.group(1)) + 1 if match else len(existing)
        return len(existing)

    async def add(self, events: list[HubEvent]) -> None:
        if not events:
            return
        if self._bytes_per_event is None:
            # Estimated once from a sample event: measuring every event would cost more than the write.
            self._bytes_per_event = max(len(json.dumps(events[0].payload, default=str)), 1)
        self.pending.extend(events)
        self._pending_bytes += len(events) * self._bytes_per_event
        while len(self.pending) >= self.batch_rows or (self.pending and self._pending_bytes >= self.batch_bytes):
            rows = min(len(self.pending), self.batch_rows)
            if self._pending_bytes >= self.batch_bytes:
                rows = min(rows, max(self.batch_bytes // self._bytes_per_event, 1))
            await self._start_write(self.pending[:rows])
            del self.pending[:rows]
            self._pending_bytes = len(self.pending) * self._bytes_per_event

    async def _start_write(self, events: list[HubEvent]) -> None:
        await self._await_write()  # one write in flight per stream keeps memory bounded
        name = f"{self.run_name}__b{self.next_batch:05d}.parquet"
        self.next_batch += 1
        self.events += len(events)
        self._write = asyncio.create_task(asyncio.to_thread(self._write_file, events, self.directory / name))

    async def _await_write(self) -> None:
        if self._write is not None:
            # Shielded: a cancel (trigger cancelled mid-write) must not cancel the landing, so close() can still
            # collect this file and write what is pending.
            self.files.append(await asyncio.shield(self._write))
            self._write = None

    async def close(self) -> None:
        if self.pending:
            await self._start_write(self.pending)
            self.pending = []
        await self._await_write()

    def _write_file(self, events: list[HubEvent], target: ObjectStoragePath) -> dict[str, Any]:
        # Runs in a worker thread: Arrow conversion and the file write never block the event loop.
        received = pa.array([int(e.received_at * 1_000_000) for e in events], pa.int64()).cast(TS)
        supplied = {
            RECEIVED_AT: received,
            CONNECTION: pa.array([e.connection for e in events], pa.int64()),
            CHANNEL: pa.array([e.channel for e in events], pa.string()),
        }
        batch = self.converter.convert([e.payload for e in events], supplied)
        with ParquetLander(target, self.entity.arrow_schema) as lander:
            lander.write_batch(batch)
        assert lander.landed is not None
        return lander.landed.to_dict()


YOUNG_GC_THRESHOLD = 50_000  # allocations between young collections (CPython's default is 700)
_gc_tuned = False


def tune_gc_once() -> bool:
    """``gc.freeze()`` and raise the young-generation threshold, the first time it is called in a process (see
    the module docstring); True if it did. A threshold already above ours is left alone, as is a disabled GC."""
    global _gc_tuned
    if _gc_tuned:
        return False
    _gc_tuned = True
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)
    log.info(
        "Tuned the garbage collector for streaming: froze %d long-lived objects, thresholds %s",
        gc.get_freeze_count(),
        gc.get_threshold(),
    )
    return True


class HubSampler:
    """Runs one :class:`SampleRequest` and returns a small JSON-able summary (paths and counts, never events)."""

    def __init__(self, request: SampleRequest) -> None:
        self.request = request

    def _directory(self, entity: EntitySchema) -> ObjectStoragePath:
        base = ObjectStoragePath(self.request.output_path)
        return partition_dir(
            base, entity.name, {"trade_platform": self.request.trade_platform, "date": self.request.partition_date}
        )

    def _manifest(self) -> ObjectStoragePath:
        base = ObjectStoragePath(self.request.output_path)
        return base / "_manifests" / f"{self.request.run_name}{MANIFEST_SUFFIX}"

    async def run(self) -> dict[str, Any]:
        request = self.request
        manifest = self._manifest()
        done = await asyncio.to_thread(_read_manifest, manifest)
        if done is not None and done.get("window_end") == request.window_end:
            log.info("Sample %s already completed; returning its manifest", request.run_name)
            return {**done, "resumed_from_manifest": True}

        if request.tune_gc:
            tune_gc_once()
        specs = request.specs()
        writers: dict[StreamSpec, BatchWriter] = {}
        for spec in specs:
            entity = entity_for(request.platform_type, spec)
            directory = self._directory(entity)
            # One file sequence per stream (two StreamTicks streams share an entity directory).
            run_name = f"{request.run_name}__{_slug(spec.channel)}"
            writers[spec] = BatchWriter(entity, directory, run_name, request)
        earlier = {spec.channel: await asyncio.to_thread(w.resume_numbering) for spec, w in writers.items()}

        hook = CPluginWebApiAsyncHook(cplugin_conn_id=request.cplugin_conn_id)
        config = await hook.get_config()
        options: dict[str, Any] = {
            "allow_insecure_loopback": config.allow_insecure_loopback,
            "transports": tuple(request.transports),
        }
        if request.reconnect_delays is not None:
            options["reconnect_delays"] = tuple(request.reconnect_delays)
        # The hook's session carries the connection's TLS settings (verify / CA bundle) to the hub too.
        options["session"] = await hook.get_conn()
        client = hub_client(
            config.api_base_url, request.platform_type, request.trade_platform, hook.get_token, **options
        )
        started = time.time()
        budget = _Budget(request.max_events)
        try:
            await client.start()
            streams = {spec: await client.stream(spec.method, *spec.args) for spec in specs}
            # A TaskGroup, not gather: when one stream fails the others stop before close() flushes their writers.
            try:
                async with asyncio.TaskGroup() as group:
                    for spec in specs:
                        group.create_task(self._drain(streams[spec], writers[spec], budget))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None  # callers handle HubError & co, not groups
            for stream in streams.values():
                await stream.cancel()
        finally:
            try:
                await asyncio.gather(*(w.close() for w in writers.values()))
            finally:
                await client.stop()
                await hook.close()
        summary = {
            "status": "success",
            "trade_platform": request.trade_platform,
            "platform_type": request.platform_type,
            "window_end": request.window_end,
            "seconds": round(time.time() - started, 3),
            "transport": client.transport,
            "connections": client.connection_number,
            "events": {spec.channel: writers[spec].events for spec in specs},
            "total_events": sum(w.events for w in writers.values()),
            "earlier_batches": earlier,
            "files": [f for w in writers.values() for f in w.files],
            "gaps": [g.to_dict() for g in client.gaps],
        }
        await asyncio.to_thread(_write_manifest, manifest, summary)
        return summary

    async def _drain(self, stream: HubStream, writer: BatchWriter, budget: _Budget) -> None:
        window_end = self.request.window_end
        while not budget.exhausted:
            remaining = window_end - time.time()
            events = await stream.get_batch(max_items=min(10_000, budget.left), wait_s=min(max(remaining, 0), 0.5))
            if remaining <= 0:
                # The window is over: land what arrived before its end but still sits in the buffer, then stop
                # (events are in arrival order, so the first late one ends it).
                on_time = [e for e in events if e.received_at <= window_end]
                await writer.add(budget.take(on_time))
                if not events or len(on_time) < len(events):
                    return
                continue
            if not events and not stream.active:
                return  # the server completed the stream
            await writer.add(budget.take(events))


class _Budget:
    """``max_events`` shared by all streams of one sample."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit if limit is not None else 1 << 62

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    def take(self, events: list[HubEvent]) -> list[HubEvent]:
        events = events[: max(self.left, 0)]
        self.left -= len(events)
        return events


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _read_manifest(path: ObjectStoragePath) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with path.open("r") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _write_manifest(path: ObjectStoragePath, summary: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.inprogress"
    with tmp.open("w") as f:
        json.dump(summary, f, sort_keys=True, default=str)
    tmp.rename(path)


def sample_specs(streams: Sequence[str | dict[str, Any] | StreamSpec]) -> list[dict[str, Any]]:
    """Normalise user input (``"StreamTicks:EURUSD"``...) to the serializable form."""
    return [StreamSpec.parse(s).to_dict() for s in streams]
