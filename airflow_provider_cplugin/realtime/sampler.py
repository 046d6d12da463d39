"""Sample hub streams for a bounded window and land the events as Parquet batches (see ``docs/realtime.md``).

Shared by :class:`~airflow_provider_cplugin.triggers.hub_sample.HubSampleTrigger` (deferred, in the triggerer)
and :class:`~airflow_provider_cplugin.operators.hub_sample.HubSampleOperator` (inline, ``deferrable=False``).

* **Bounded**: until ``window_end`` (absolute, so a re-created trigger keeps the same window) or ``max_events``.
  Events received after the window or over ``max_events`` are not landed but counted (``not_landed``).
* **Batched, and cut by time**: each stream's events are cut into batches of ``batch_rows`` rows or about
  ``batch_bytes`` bytes, and every ``flush_interval`` seconds whatever is pending is landed too, so a killed
  triggerer loses at most that much received data. Each batch is one Parquet file written atomically **in a
  worker thread**; after every time cut a ``running`` manifest (files, gaps, counts so far) is checkpointed.
* **Restart-safe, and honest about it**: batch files are ``<run>__<stream>__b00000.parquet``, ``__b00001``...
  A sampler started for a run whose files exist (triggerer restart, task retry) reads them (``_connection``,
  ``_receivedAt``, ``_sequence*`` columns, in a thread): it continues the numbering and the connection counter,
  records a ``restart`` gap from the last landed event to its own first one (with the missed count per stream
  where the stream has a sequence function, else the stream is listed as ``unsequenced``), and its summary
  covers every file of the run. A sample whose manifest completed the same window is returned as is.
* **Nothing received is dropped without a record**: a batch that does not convert is split until the events
  that do not convert are isolated; those go to a rejects file ``<run>__<stream>__r<batch>.jsonl`` next to the
  batches (raw payload, stream, reason, received-at), are counted and logged, and the sample goes on.
* **A stream the server completes before the window ends** is a ``completed`` gap with a warning.
* **Sequences**: hub payloads carry no sequence number. ``SampleRequest.sequences`` may name a
  ``module:function`` called (in a thread) as ``function(api_base_url, platform_type, method, args)`` that
  returns a sequence function for that stream or None (the emulator's is :func:`..emulator.hubs.feeds.
  sample_sequences`); with it missed events are counted, duplicates dropped and the ``_sequence`` columns filled.
* **Event loop**: the loop only frames and routes the hub's text (raw streams, :class:`~.events.RawItems`) and
  cuts batches; decoding into Arrow, sequence tracking and writing run in a worker thread per batch
  (:mod:`.batch_writer`), as do path resolution, listing, reading earlier files, manifests and imports of
  sequence functions. No process-wide setting (garbage collector...) is touched: see ``docs/realtime.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.parquet.hub_schemas import STREAM_ENTITIES
from airflow_provider_cplugin.parquet.landing import partition_dir
from airflow_provider_cplugin.parquet.location import landing_root
from airflow_provider_cplugin.parquet.schemas import EntitySchema
from airflow_provider_cplugin.realtime.batch_writer import BatchWriter, Earlier, write_atomic
from airflow_provider_cplugin.realtime.errors import HubError
from airflow_provider_cplugin.realtime.events import RawItems
from airflow_provider_cplugin.realtime.gaps import GapRecord, SequenceFn
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client
from airflow_provider_cplugin.realtime.item_decode import Item
from airflow_provider_cplugin.realtime.sample_request import SampleRequest, StreamSpec, sample_specs
from airflow_provider_cplugin.realtime.subscriptions import HubStream
from airflow_provider_cplugin.results import HubNotLanded, HubSampleSummary

__all__ = ["BatchWriter", "HubSampler", "SampleRequest", "StreamSpec", "entity_for", "sample_specs"]

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = "__manifest.json"
GAPS_SUFFIX = "__gaps.json"
RESTART = "restart"
COMPLETED = "completed"
DRAIN_AFTER_CANCEL_S = 5.0


def entity_for(platform_type: str, spec: StreamSpec) -> EntitySchema:
    check_stream(platform_type, spec.method)
    entity = STREAM_ENTITIES.get((platform_type.upper(), spec.method))
    if entity is None:
        raise CPluginConfigError("streams", f"no Parquet schema declared for {platform_type} {spec.method}")
    return entity


def validate_request(request: SampleRequest) -> None:
    """The checks that need the hub contract and the landing location (worker side, before deferring)."""
    for spec in request.specs():
        entity_for(request.platform_type, spec)
    landing_root(request.output_path, request.output_conn_id)


@dataclass
class StreamState:
    """Per-stream counters of one sampler instance."""

    channel: str
    sequenced: bool
    resume_last: dict[str, int]
    """Last landed index per partition from earlier instances; an entry goes once its partition is seen again."""
    late: int = 0
    over_limit: int = 0
    duplicates: int = 0
    stopped_by: str = ""


class _Budget:
    """``max_events`` shared by all streams of one sample."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit if limit is not None else 1 << 62

    @property
    def exhausted(self) -> bool:
        return self.left <= 0

    def take(self, runs: list[RawItems]) -> list[RawItems]:
        taken: list[RawItems] = []
        for run in runs:
            if self.left <= 0:
                break
            if run.count > self.left:
                run = run.split(self.left)[0]
            taken.append(run)
            self.left -= run.count
        return taken


@dataclass
class _Plan:
    """What the sampler prepared in a thread before connecting."""

    done: dict[str, Any] | None = None
    writers: dict[StreamSpec, BatchWriter] = field(default_factory=dict)
    earlier: dict[StreamSpec, Earlier] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)
    offset: int = 0


class HubSampler:
    """Runs one :class:`SampleRequest` and returns a small JSON-able summary (paths and counts, never events)."""

    def __init__(self, request: SampleRequest) -> None:
        self.request = request
        self.manifest: ObjectStoragePath | None = None
        self.started = 0.0
        self.gaps: list[GapRecord] = []  # restart / completed gaps of this instance
        self.restart_gap: GapRecord | None = None
        self.offset = 0  # connections of earlier instances of the run: ours continue the count

    # ------------------------------------------------------------------ preparation (worker thread)

    def _prepare(self) -> _Plan:
        request = self.request
        specs = request.specs()
        entities = {spec: entity_for(request.platform_type, spec) for spec in specs}
        root = landing_root(request.output_path, request.output_conn_id)
        self.manifest = root / "_manifests" / f"{request.run_name}{MANIFEST_SUFFIX}"
        previous = _read_json(self.manifest) or {}
        if previous.get("status") == "success" and previous.get("window_end") == request.window_end:
            return _Plan(done={**previous, "resumed_from_manifest": True})
        plan = _Plan(previous=previous)
        manifest_files = {str(f["path"]): f for f in previous.get("files", [])}
        for spec, entity in entities.items():
            directory = partition_dir(
                root, entity.name, {"trade_platform": request.trade_platform, "date": request.partition_date}
            )
            # One file sequence per stream (two StreamTicks streams share an entity directory).
            writer = BatchWriter(
                entity, directory, f"{request.run_name}__{_slug(spec.channel)}", request, channel=spec.channel
            )
            plan.writers[spec] = writer
            plan.earlier[spec] = writer.scan(manifest_files)
        plan.offset = max([int(previous.get("connections") or 0), *(e.connection for e in plan.earlier.values())])
        _warm_up(entities.values())
        for writer in plan.writers.values():
            writer.connection_offset = plan.offset
        return plan

    def _sequence_functions(self, api_base_url: str) -> dict[StreamSpec, SequenceFn | None]:
        request = self.request
        if not request.sequences:
            return {}
        module, _, name = request.sequences.partition(":")
        try:
            factory: Callable[..., SequenceFn | None] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise CPluginConfigError("sequences", f"cannot import {request.sequences!r}: {err}") from err
        functions = {s: factory(api_base_url, request.platform_type, s.method, list(s.args)) for s in request.specs()}
        return {s: None if fn is None else _tolerant(fn) for s, fn in functions.items()}

    # ------------------------------------------------------------------ sampling

    async def run(self) -> HubSampleSummary:
        request = self.request
        plan = await asyncio.to_thread(self._prepare)
        if plan.done is not None:
            log.info("Sample %s already completed; returning its manifest", request.run_name)
            return cast(HubSampleSummary, plan.done)  # read back from JSON
        specs = list(plan.writers)
        writers = plan.writers
        self.offset = plan.offset

        hook = CPluginWebApiAsyncHook(cplugin_conn_id=request.cplugin_conn_id)
        config = await hook.get_config()
        sequences = await asyncio.to_thread(self._sequence_functions, config.api_base_url)
        states = {
            spec: StreamState(spec.channel, sequences.get(spec) is not None, dict(plan.earlier[spec].last_sequence))
            for spec in specs
        }
        landed_before = [e for e in plan.earlier.values() if e.rows]
        interrupted = plan.previous.get("status") == "running"  # an earlier instance started, never finished
        if landed_before or interrupted:
            if landed_before:
                last = max((e.last_received_at or 0.0) for e in landed_before)
                reason = f"sampler restarted: {sum(e.rows for e in landed_before)} event(s) landed earlier in this run"
                unknown = [s.channel for s in specs if not states[s].sequenced]
            else:
                # Killed before its first time cut: what it received is lost and cannot be counted.
                last = float(plan.previous.get("checkpointed_at") or 0.0)
                reason = "sampler restarted: an earlier instance of this run was interrupted before landing anything"
                unknown = [s.channel for s in specs]
            self.restart_gap = GapRecord(
                kind=RESTART,
                reason=reason,
                started_at=last,
                connection=plan.offset,
                last_event_at=last if landed_before else None,
                unsequenced=unknown,
            )
            self.gaps.append(self.restart_gap)
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
        self.started = time.time()
        budget = _Budget(request.max_events)
        flusher: asyncio.Task[None] | None = None
        try:
            await client.start()
            streams = {
                spec: await client.stream(spec.method, *spec.args, sequence=sequences.get(spec), raw=True)
                for spec in specs
            }
            for spec in specs:
                if sequences.get(spec) is not None or states[spec].resume_last:
                    writers[spec].tracker = self._tracker(streams[spec], states[spec])
                    writers[spec].late_tracker = self._tracker(streams[spec], states[spec], late=True)
            # A running manifest before the first event: a re-created trigger then knows this instance existed even
            # if it is killed before its first time cut.
            await asyncio.to_thread(self._write_manifest, plan, self._summary(plan, client, states, "running"))
            flusher = asyncio.create_task(self._flush_every(plan, client, states))
            # A TaskGroup, not gather: when one stream fails the others stop before close() flushes their writers.
            try:
                async with asyncio.TaskGroup() as group:
                    for spec in specs:
                        group.create_task(self._drain(streams[spec], writers[spec], budget, states[spec], client))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None  # callers handle HubError & co, not groups
            await asyncio.gather(*(self._stop_stream(streams[s], states[s], writers[s]) for s in specs))
        finally:
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            try:
                await asyncio.gather(*(w.close() for w in writers.values()))
            finally:
                await client.stop()
                await hook.close()
        if self.restart_gap is not None:
            for state in states.values():
                # A partition the earlier instance landed but this one never saw again: its loss is unknown.
                if state.resume_last and state.channel not in self.restart_gap.unsequenced:
                    self.restart_gap.unsequenced.append(state.channel)
        summary = self._summary(plan, client, states, "success")
        await asyncio.to_thread(self._write_manifest, plan, summary)
        self._log_problems(summary)
        return summary

    async def _flush_every(self, plan: _Plan, client: Any, states: dict[StreamSpec, StreamState]) -> None:
        """Time cuts: bound what a killed triggerer can lose; checkpoint the manifest after each."""
        while True:
            await asyncio.sleep(self.request.flush_interval)
            await asyncio.gather(*(w.flush() for w in plan.writers.values()))
            summary = self._summary(plan, client, states, "running")
            await asyncio.to_thread(self._write_manifest, plan, summary)

    async def _drain(
        self, stream: HubStream, writer: BatchWriter, budget: _Budget, state: StreamState, client: Any
    ) -> None:
        window_end = self.request.window_end
        while True:
            if budget.exhausted:
                state.stopped_by = "max_events"
                return
            remaining = window_end - time.time()
            runs = await stream.get_raw(max_items=10_000, wait_s=min(max(remaining, 0), 0.5))
            if not runs:
                if time.time() >= window_end:
                    state.stopped_by = "window"
                    return
                if not stream.active:
                    self._completed_early(state, client, window_end - time.time())
                    return
                continue
            if self.restart_gap is not None and self.restart_gap.ended_at is None:
                self.restart_gap.ended_at = runs[0].received_at
            # Runs are in arrival order: the first one received after the window ends it.
            on_time = runs if runs[-1].received_at <= window_end else [r for r in runs if r.received_at <= window_end]
            taken = budget.take(on_time)
            received = sum(r.count for r in runs)
            in_window = sum(r.count for r in on_time)
            state.late += received - in_window
            state.over_limit += in_window - sum(r.count for r in taken)
            await writer.add(taken)
            if len(on_time) < len(runs):
                writer.observe_late(runs[len(on_time) :])
                state.stopped_by = "window"
                return

    def _tracker(
        self, stream: HubStream, state: StreamState, *, late: bool = False
    ) -> Callable[[list[Item]], list[Item]]:
        """Sequence tracking of one stream, run by its writer in a worker thread, in arrival order: the client's
        tracker (duplicates dropped, jumps booked as gaps), then the restart check against the earlier instance.
        ``late``: items after the window (counted there, never landed) that only resolve the restart check."""

        def track(items: list[Item]) -> list[Item]:
            kept: list[Item] = []
            for item in items:
                deliver, item.sequence = stream.observe(item.payload, item.connection, item.received_at)
                if deliver:
                    kept.append(item)
            return self._after_restart(kept, state, late=late) if state.resume_last else kept

        return track

    def _after_restart(self, items: list[Item], state: StreamState, *, late: bool = False) -> list[Item]:
        """Count the events missed between the earlier instance's last landed event and ours, per partition."""
        gap = self.restart_gap
        kept: list[Item] = []
        for item in items:
            seq = item.sequence
            if seq is not None and state.resume_last:
                key = str(seq[0])
                last = state.resume_last.get(key)
                if last is not None:
                    if seq[1] <= last:
                        if not late:  # a late item is already counted as after the window
                            state.duplicates += 1  # landed by the earlier instance already
                        continue
                    del state.resume_last[key]
                    if gap is not None and seq[1] - last - 1:
                        gap.add_missed(state.channel, seq[1] - last - 1)
            kept.append(item)
        return kept

    def _completed_early(self, state: StreamState, client: Any, remaining: float) -> None:
        state.stopped_by = "completed"
        now = time.time()
        gap = GapRecord(
            kind=COMPLETED,
            reason=f"the server completed {state.channel} {remaining:.1f} s before the window ended",
            started_at=now,
            connection=self.offset + client.connection_number,
            last_event_at=now,
            unsequenced=[state.channel],
        )
        self.gaps.append(gap)
        log.warning("Hub sample %s: %s; nothing of it after that is sampled", self.request.run_name, gap.reason)

    async def _stop_stream(self, stream: HubStream, state: StreamState, writer: BatchWriter) -> None:
        """Cancel the stream and count what the server still sent (received after the window or the limit)."""
        if not stream.active:
            return
        cancel = asyncio.create_task(stream.cancel(drain=True, drain_s=DRAIN_AFTER_CANCEL_S))
        rest = 0
        try:
            while True:
                batch = await stream.get_raw(10_000, wait_s=0.1)
                rest += sum(r.count for r in batch)
                if state.stopped_by != "max_events":
                    writer.observe_late(batch)
                if not batch:
                    if cancel.done():
                        break
                    # An ended stream's buffer answers at once: wait on the cancel, not in a busy loop.
                    await asyncio.wait([cancel], timeout=0.1)
        except HubError as err:
            log.warning("Hub sample %s: %s ended with %s after the window", self.request.run_name, state.channel, err)
        finally:
            await cancel
            if state.stopped_by == "max_events":
                state.over_limit += rest
            else:
                state.late += rest

    # ------------------------------------------------------------------ summary, manifest, logs

    def _summary(
        self, plan: _Plan, client: Any, states: dict[StreamSpec, StreamState], status: Literal["success", "running"]
    ) -> HubSampleSummary:
        request = self.request
        writers, earlier = plan.writers, plan.earlier
        offset = plan.offset
        client_gaps = []
        for record in client.gaps:
            gap = record.to_dict()
            gap["connection"] += offset
            client_gaps.append(gap)
        gaps = [*plan.previous.get("gaps", []), *(g.to_dict() for g in self.gaps), *client_gaps]
        channels = [s.channel for s in writers]
        previous_not_landed = plan.previous.get("not_landed", {})
        not_landed: dict[str, HubNotLanded] = {}
        for spec, state in states.items():
            before = previous_not_landed.get(spec.channel, {})
            not_landed[spec.channel] = {
                "after_window": state.late + int(before.get("after_window", 0)),
                "over_max_events": state.over_limit + int(before.get("over_max_events", 0)),
                "duplicates": state.duplicates + int(before.get("duplicates", 0)),
            }
        rejects = {s.channel: earlier[s].rejects + writers[s].rejected for s in writers}
        events = {s.channel: earlier[s].rows + writers[s].events for s in writers}
        return {
            "status": status,
            "run_name": request.run_name,
            "trade_platform": request.trade_platform,
            "platform_type": request.platform_type,
            "window_end": request.window_end,
            "seconds": round(time.time() - self.started, 3),
            "checkpointed_at": time.time(),
            "transport": client.transport,
            "connections": offset + client.connection_number,
            "events": events,
            "total_events": sum(events.values()),
            "instance_events": {s.channel: w.events for s, w in writers.items()},
            "earlier_batches": {s.channel: len(earlier[s].files) for s in writers},
            "files": [f for s in writers for f in (*earlier[s].files, *writers[s].files)],
            "gaps": gaps,
            "missed": _missed(gaps, channels),
            "rejects": {
                "events": rejects,
                "total": sum(rejects.values()),
                "files": [f for s in writers for f in (*earlier[s].reject_files, *writers[s].reject_files)],
            },
            "not_landed": not_landed,
            "complete": not gaps and not sum(rejects.values()),
        }

    def _write_manifest(self, plan: _Plan, summary: HubSampleSummary) -> None:
        """Manifest (restart state and final summary) plus a gaps file next to each stream's batches."""
        assert self.manifest is not None
        write_atomic(self.manifest, json.dumps(summary, sort_keys=True, default=str))
        sidecar: dict[str, Any] = {
            k: summary[k] for k in ("status", "run_name", "window_end", "connections", "gaps", "missed", "rejects")
        }
        sidecar["not_landed"] = summary["not_landed"]
        text = json.dumps(sidecar, sort_keys=True, default=str)
        for directory in {str(w.directory): w.directory for w in plan.writers.values()}.values():
            write_atomic(directory / f"{self.request.run_name}{GAPS_SUFFIX}", text)

    def _log_problems(self, summary: HubSampleSummary) -> None:
        name = self.request.run_name
        if summary["gaps"]:
            missed = {c: ("unknown" if n is None else n) for c, n in summary["missed"].items() if n != 0}
            kinds = sorted({g["kind"] for g in summary["gaps"]})
            log.warning("Hub sample %s: %d gap(s) (%s); missed events per stream: %s", name, len(summary["gaps"]),
                        ", ".join(kinds), missed)  # fmt: skip
        rejects = summary["rejects"]
        if rejects["total"]:
            log.warning("Hub sample %s: %d event(s) did not convert and were quarantined: %s (files: %s)", name,
                        rejects["total"], rejects["events"], rejects["files"])  # fmt: skip
        not_landed = {c: {k: v for k, v in n.items() if v} for c, n in summary["not_landed"].items()}
        if any(not_landed.values()):
            log.info("Hub sample %s: received but not landed (by design): %s", name, not_landed)


def _missed(gaps: list[dict[str, Any]], channels: list[str]) -> dict[str, int | None]:
    """Missed events per stream over all gaps; None (unknown) when a gap could not count that stream."""
    missed: dict[str, int | None] = dict.fromkeys(channels, 0)
    for gap in gaps:
        for channel in channels:
            if missed[channel] is None:
                continue
            if channel in gap.get("unsequenced", []):
                missed[channel] = None
            else:
                missed[channel] = (missed[channel] or 0) + int(gap.get("missed", {}).get(channel, 0))
    return missed


def _warm_up(entities: Any) -> None:
    """Import now, in this thread, what the first batch would (pyarrow's pandas shim, the Parquet writer):
    seconds on a cold start, during which the first write would hold up the stream."""
    pa.array([0])
    for entity in entities:
        with pq.ParquetWriter(pa.BufferOutputStream(), entity.arrow_schema):
            pass


def _tolerant(fn: SequenceFn) -> SequenceFn:
    """A sequence function that fails on a malformed payload gives "no sequence" instead of breaking the
    connection's receive loop: the event still goes through (and is quarantined if it does not convert)."""

    def sequence(payload: Any) -> Any:
        try:
            return fn(payload)
        except Exception:
            return None

    return sequence


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _read_json(path: ObjectStoragePath) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with path.open("r") as f:
        data: dict[str, Any] = json.load(f)
    return data
