"""Continuous capture of one hub stream into Parquet batch files (the body of ``HubCaptureTrigger``).

Imported in a worker thread by the trigger (pyarrow, aiohttp, hooks). One hub connection of its own
(:func:`.hub_source.hub_batches`, reconnecting forever), so the hub client's bounded buffer and TCP backpressure
apply: memory is bounded by ``roll_rows`` pending + one file being written + the client's buffer, however long it
runs. The event loop only routes the client's undecoded runs: decoding and sequences run in the source's worker
thread, the per-event bookkeeping (watermark, outages) in :meth:`HubCapture._take` in a worker thread, conversion
and writing in a third.

* **Rolling files**: the pending events are landed every ``roll_s`` seconds or ``roll_rows`` rows, whichever comes
  first, as ``<landing>/entity=<hub entity>/trade_platform=<guid>/date=<day of the first event>/
  <name>__<first event UTC, µs>__b<number>.parquet`` (atomic, written in a thread while the next batch fills), and
  one event per file is yielded: ``path``, ``rows``, ``first_event_at``/``last_event_at``, ``gaps``, ``missed``...
* **Watermark**: after each file, before its event leaves, the asset state store gets the next file number, the
  last landed event time and the last landed index per partition (sequenced streams). A re-created trigger
  resumes from it: a ``restart`` gap from the last landed event to its first new one, with the events in between
  counted as missed per partition (those received but not landed before a kill included), so
  ``landed = sent - reported missed`` for a sequenced stream. A file landed but not yet recorded (killed between
  the rename and the state write) is found by name (number >= the next one) and reported first.
* **Rejects**: events that do not convert, and records that were not stream items in valid JSON (with their
  text), go to ``<file stem>.rejects.jsonl`` next to it, counted in the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.hub_schemas import (
    CHANNEL,
    CONNECTION,
    RECEIVED_AT,
    SEQUENCE,
    SEQUENCE_KEY,
    STREAM_ENTITIES,
)
from airflow_provider_cplugin.parquet.landing import ParquetLander, partition_dir
from airflow_provider_cplugin.parquet.location import landing_root
from airflow_provider_cplugin.parquet.schemas import TS, EntitySchema, snake_case
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.hub_source import HubBatch, hub_batches
from airflow_provider_cplugin.realtime.sample_request import StreamSpec
from airflow_provider_cplugin.realtime.watcher import (
    SequenceLedger,
    StateSlot,
    close_outage,
    log_outage,
    outage_from_gap,
    restart_outage,
)
from airflow_provider_cplugin.results import CaptureEvent

log = logging.getLogger(__name__)

QUEUE_BATCHES = 2  # hub batches waiting for the capture loop (the source is not read further: backpressure)
_FILE = re.compile(r"^(?P<name>.+)__(?P<stamp>\d{8}T\d{12})__b(?P<number>\d{6})\.parquet$")
_READ = [snake_case(c) for c in (RECEIVED_AT, SEQUENCE_KEY, SEQUENCE)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(seconds: float) -> datetime:
    """Truncated to the microsecond, exactly as the ``_receivedAt`` column stores it."""
    return _EPOCH + timedelta(microseconds=int(seconds * 1_000_000))


def stamp(seconds: float) -> str:
    return utc(seconds).strftime("%Y%m%dT%H%M%S%f")


def iso(seconds: float | None) -> str | None:
    return None if seconds is None else utc(seconds).isoformat()


@dataclass
class Landed:
    """One landed file (worker thread result)."""

    info: dict[str, Any]
    seen: dict[str, int]  # last index per partition in the file
    last_at: float | None


def _isolate(
    events: list[HubEvent], convert: Callable[[list[HubEvent]], pa.RecordBatch]
) -> tuple[list[HubEvent], list[tuple[HubEvent, str]]]:
    """Split a batch that does not convert until the events that do not convert are alone (log2 steps)."""
    try:
        convert(events)
    except Exception as err:  # quarantined with the reason, never dropped
        if len(events) == 1:
            return [], [(events[0], f"{type(err).__name__}: {err}")]
        mid = len(events) // 2
        good_a, bad_a = _isolate(events[:mid], convert)
        good_b, bad_b = _isolate(events[mid:], convert)
        return good_a + good_b, bad_a + bad_b
    return events, []


class CaptureFiles:
    """Where one capture's files go, how they are named, and how one is written (worker threads)."""

    def __init__(self, root: ObjectStoragePath, entity: EntitySchema, trade_platform: str, name: str) -> None:
        self.root = root
        self.entity = entity
        self.trade_platform = trade_platform
        self.name = name
        self.converter = RecordBatchConverter(entity)

    def directory(self, seconds: float) -> ObjectStoragePath:
        day = utc(seconds).strftime("%Y-%m-%d")
        return partition_dir(self.root, self.entity.name, {"trade_platform": self.trade_platform, "date": day})

    def _convert(self, events: list[HubEvent]) -> pa.RecordBatch:
        supplied = {
            RECEIVED_AT: pa.array([int(e.received_at * 1_000_000) for e in events], pa.int64()).cast(TS),
            CONNECTION: pa.array([e.connection for e in events], pa.int64()),
            CHANNEL: pa.array([e.channel for e in events], pa.string()),
            SEQUENCE_KEY: pa.array([None if e.sequence is None else str(e.sequence[0]) for e in events], pa.string()),
            SEQUENCE: pa.array([None if e.sequence is None else e.sequence[1] for e in events], pa.int64()),
        }
        return self.converter.convert([e.payload for e in events], supplied)

    def _rows(self, part: Part) -> tuple[list[pa.RecordBatch], list[tuple[HubEvent, str]]]:
        """One pending part as Arrow: the fast decoder's rows as they are, else converted per event (what does not
        convert is isolated to the rejects)."""
        batch = part.batch
        if batch.rows is not None:
            table = batch.rows.table
            return [table if part.rows is None else table.take(pa.array(part.rows, pa.int64()))], []
        events = batch.events if part.rows is None else [batch.events[i] for i in part.rows]
        for event in events:
            event.connection += batch.connection_offset  # numbered across the source's clients (rows are disjoint)
        try:
            return [self._convert(events)], []
        except Exception:
            good, bad = _isolate(events, self._convert)
            return ([self._convert(good)] if good else []), bad

    def write(self, parts: list[Part], number: int, malformed: list[tuple[HubEvent, str]]) -> Landed:
        """Land one file (atomic) plus its rejects (``malformed`` records included)."""
        batches: list[pa.RecordBatch] = []
        bad = list(malformed)
        for part in parts:
            converted, failed = self._rows(part)
            batches += [b for b in converted if b.num_rows]
            bad += failed
        table = pa.Table.from_batches(batches, self.entity.arrow_schema) if batches else None
        if table is not None:
            received = table.column(snake_case(RECEIVED_AT))
            first_at: float = received[0].value / 1_000_000
            last_at: float | None = received[-1].value / 1_000_000
        else:
            first_at, last_at = bad[0][0].received_at, None
        target = self.directory(first_at) / f"{self.name}__{stamp(first_at)}__b{number:06d}.parquet"
        rejects = self._write_rejects(target, bad) if bad else None
        info: dict[str, Any] = {"path": None, "rows": 0, "bytes": 0}
        seen: dict[str, int] = {}
        if table is not None:
            with ParquetLander(target, self.entity.arrow_schema) as lander:
                for batch in table.to_batches():
                    lander.write_batch(batch)
            assert lander.landed is not None
            info = {"path": lander.landed.path, "rows": lander.landed.rows, "bytes": lander.landed.bytes}
            key, index = snake_case(SEQUENCE_KEY), snake_case(SEQUENCE)
            sequenced = table.filter(pc.is_valid(table.column(index)))
            for row in sequenced.group_by(key).aggregate([(index, "max")]).to_pylist():
                if row[key] is not None:
                    seen[row[key]] = int(row[f"{index}_max"])
        info.update(
            batch=number,
            entity=self.entity.name,
            first_event_at=iso(first_at),
            last_event_at=iso(last_at),
            rejects={"rows": len(bad), "path": rejects},
        )
        return Landed(info, seen, last_at)

    def _write_rejects(self, target: ObjectStoragePath, bad: list[tuple[HubEvent, str]]) -> str:
        path = target.parent / f"{target.stem}.rejects.jsonl"
        lines = [
            json.dumps({"stream": e.channel, "reason": reason, "received_at": iso(e.received_at),
                        "connection": e.connection, "payload": json.dumps(e.payload, default=str)}, sort_keys=True)
            for e, reason in bad
        ]  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.inprogress"
        with tmp.open("w") as f:
            f.write("\n".join(lines) + "\n")
        tmp.rename(path)
        return str(path)

    def unrecorded(self, next_batch: int, last_at: float | None) -> list[Landed]:
        """Files landed with a number >= ``next_batch`` (killed before the state was written), oldest first."""
        days = {self.directory(t) for t in ([last_at] if last_at else []) + [time.time()]}
        found: list[tuple[int, ObjectStoragePath]] = []
        for directory in days:
            if not directory.exists():
                continue
            for path in directory.iterdir():
                match = _FILE.match(path.name)
                if match and match["name"] == self.name and int(match["number"]) >= next_batch:
                    found.append((int(match["number"]), path))
        landed = []
        for number, path in sorted(found, key=lambda item: item[0]):
            with path.open("rb") as f:
                table = pq.read_table(f, columns=_READ)
            received, keys, seqs = (table.column(c) for c in _READ)
            first, last = (v.as_py() for v in (pc.min(received), pc.max(received)))
            seen: dict[str, int] = {}
            for key, index in zip(keys.to_pylist(), seqs.to_pylist(), strict=True):
                if key is not None and index is not None:
                    seen[key] = max(seen.get(key, -1), index)
            last_at = last.timestamp() if last is not None else None
            info = {
                "path": str(path), "rows": table.num_rows, "bytes": path.stat().st_size, "batch": number,
                "entity": self.entity.name, "first_event_at": first.isoformat() if first else None,
                "last_event_at": iso(last_at), "rejects": {"rows": 0, "path": None}, "recovered": True,
            }  # fmt: skip
            landed.append(Landed(info, seen, last_at))
        return landed


class HubCapture:
    """Runs one capture: yields one small dict per landed file (see the module docstring)."""

    def __init__(self, kwargs: dict[str, Any], slot: StateSlot, logger: logging.Logger | Any = log) -> None:
        self.kwargs = kwargs
        self.spec = StreamSpec.parse(kwargs["stream"])
        self.name: str = kwargs["name"]
        self.roll_s: float = kwargs["roll_s"]
        self.roll_rows: int = kwargs["roll_rows"]
        self.slot = slot
        self.log = logger
        self.ledger = SequenceLedger()
        self.landed_seen: dict[str, int] = {}
        self.next_batch = 0
        self.last_landed_at: float | None = None
        self.gaps: list[dict[str, Any]] = []  # since the last file
        self.reported_live = 0
        self._restart: dict[str, Any] | None = None
        self.resumed = False

    async def _load(self) -> None:
        state = await self.slot.load()
        if not state:
            return
        self.resumed = True
        self.next_batch = int(state.get("next_batch", 0))
        self.last_landed_at = state.get("last_landed_at")
        self.landed_seen = dict(state.get("seen", {}))
        self.ledger = SequenceLedger(self.landed_seen)
        self.gaps = list(state.get("gaps", []))
        self._restart = restart_outage(self.last_landed_at, bool(self.landed_seen))
        self.ledger.open_outage(self._restart)
        self.gaps.append(self._restart)

    async def _save(self) -> None:
        await self.slot.save({
            "next_batch": self.next_batch, "last_landed_at": self.last_landed_at, "seen": self.landed_seen,
            "gaps": self.gaps,
        })  # fmt: skip

    def _record(self, landed: Landed) -> CaptureEvent:
        """Account a landed file; the event payload for it (call :meth:`_save` before yielding it)."""
        self.next_batch = max(self.next_batch, int(landed.info["batch"]) + 1)
        if landed.last_at is not None:
            self.last_landed_at = max(self.last_landed_at or 0.0, landed.last_at)
        for key, index in landed.seen.items():
            self.landed_seen[key] = max(self.landed_seen.get(key, -1), index)
        gaps, self.gaps = (
            [g for g in self.gaps if g.get("ended_at") is not None],
            [g for g in self.gaps if g.get("ended_at") is None],
        )
        live = self.ledger.live_missed - self.reported_live
        self.reported_live = self.ledger.live_missed
        sequenced = self.ledger.sequenced or bool(landed.seen)
        known = [g["missed"] for g in gaps if g.get("missed") is not None]
        missed = sum(known) + live if sequenced and len(known) == len(gaps) else None
        return cast(CaptureEvent, {  # landed.info: the file's keys of CaptureEvent
            "capture": self.name, "stream": self.spec.channel, **landed.info, "gaps": gaps,
            "missed_live": live if sequenced else None, "missed": missed,
        })  # fmt: skip

    async def run(self) -> AsyncIterator[CaptureEvent]:
        await self._load()
        queue: asyncio.Queue[HubBatch | BaseException] = asyncio.Queue(QUEUE_BATCHES)
        producer = asyncio.create_task(self._produce(queue), name=f"hub-capture-source[{self.name}]")
        files: CaptureFiles | None = None
        pending: list[Part] = []
        pending_rows = 0
        malformed: list[tuple[HubEvent, str]] = []
        started: float | None = None  # monotonic time of the first pending event
        write: asyncio.Task[Landed] | None = None
        try:
            while True:
                timeout = None if started is None else max(self.roll_s - (time.monotonic() - started), 0.0)
                item = await _next_item(queue, timeout, write)
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    if files is None:
                        files = await asyncio.to_thread(self._files, item)
                        found = []
                        if self.resumed:  # without a state, files of an earlier capture are not ours to report
                            found = await asyncio.to_thread(files.unrecorded, self.next_batch, self.last_landed_at)
                        for landed in found:
                            payload = self._record(landed)
                            self.log.warning("Hub capture %s: reporting file %s, landed before a kill but not yet "
                                             "recorded", self.name, landed.info["path"])  # fmt: skip
                            await self._save()
                            yield payload
                        self.ledger = SequenceLedger(self.landed_seen)
                        if self._restart is not None:
                            self.ledger.open_outage(self._restart)
                    # The watermark and outage bookkeeping off the loop (one batch at a time).
                    part = await asyncio.to_thread(self._take, item)
                    if part is not None:
                        pending.append(part)
                        pending_rows += part.count
                    malformed += item.malformed
                    if (pending or malformed) and started is None:
                        started = time.monotonic()
                due = started is not None and (
                    pending_rows + len(malformed) >= self.roll_rows or time.monotonic() - started >= self.roll_s
                )
                if due and files is not None:
                    if write is not None:
                        landed = await asyncio.shield(write)
                        write = None
                        payload = self._record(landed)
                        await self._save()
                        yield payload
                    parts = _cut(pending, self.roll_rows)
                    pending_rows -= sum(p.count for p in parts)
                    bad, malformed = malformed, []
                    started = time.monotonic() if pending else None
                    write = asyncio.create_task(asyncio.to_thread(files.write, parts, self.next_batch, bad))
                    self.next_batch += 1
                if write is not None and write.done():
                    landed = write.result()
                    write = None
                    payload = self._record(landed)
                    await self._save()
                    yield payload
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
            if write is not None:
                # A cancel must not abandon a file mid-write: let it land and record it, so the next instance
                # neither reports those events missed nor finds the file unrecorded (its event is then emitted
                # by nobody: it is still in the state's accounting and on disk).
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(30):
                        self._record(await asyncio.shield(write))
                        await self._save()

    def _files(self, batch: HubBatch) -> CaptureFiles:
        entity = STREAM_ENTITIES.get((batch.platform_type, self.spec.method))
        if entity is None:
            raise CPluginConfigError("stream", f"no Parquet schema for {batch.platform_type} {self.spec.method}")
        root = landing_root(self.kwargs.get("output_path"), self.kwargs.get("output_conn_id"))
        return CaptureFiles(root, entity, batch.trade_platform, self.name)

    async def _produce(self, queue: asyncio.Queue[HubBatch | BaseException]) -> None:
        try:
            async for batch in hub_batches(self.kwargs):
                await queue.put(batch)
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            await queue.put(err)

    def _take(self, batch: HubBatch) -> Part | None:
        """Worker thread: outages, the restart's end, and the rows past the watermark (repeats dropped)."""
        for gap in batch.gaps:
            outage = outage_from_gap(gap, self.ledger.sequenced)
            self.ledger.open_outage(outage)
            self.gaps.append(outage)
            log_outage(self.log, f"Hub capture {self.name}", outage)
        if not len(batch):
            return None
        restart = self._restart
        if restart is not None:
            close_outage(restart, batch.received_at(0))
            self._restart = None
        partitions = batch.partitions()
        if partitions is not None and (not partitions or self.ledger.advance(partitions)):
            part: Part | None = Part(batch, None)  # every row is new: nothing per event
        else:
            observe = self.ledger.observe
            rows = [i for i, sequence in enumerate(batch.sequences()) if observe(sequence)]
            part = Part(batch, rows) if rows else None
        if restart is not None:
            log_outage(self.log, f"Hub capture {self.name}", restart)
        return part


@dataclass
class Part:
    """Rows of one source batch waiting for a file: all of them (``rows`` None) or those listed."""

    batch: HubBatch
    rows: list[int] | None

    @property
    def count(self) -> int:
        return len(self.batch) if self.rows is None else len(self.rows)

    def split(self, n: int) -> tuple[Part, Part]:
        rows = list(range(len(self.batch))) if self.rows is None else self.rows
        return Part(self.batch, rows[:n]), Part(self.batch, rows[n:])


def _cut(pending: list[Part], limit: int) -> list[Part]:
    """The first ``limit`` pending rows (a part is split where the cut falls inside it)."""
    parts: list[Part] = []
    need = limit
    while pending and need > 0:
        part = pending.pop(0)
        if part.count > need:
            part, rest = part.split(need)
            pending.insert(0, rest)
        parts.append(part)
        need -= part.count
    return parts


async def _next_item(
    queue: asyncio.Queue[HubBatch | BaseException], wait_s: float | None, write: asyncio.Task[Landed] | None
) -> HubBatch | BaseException | None:
    """The next batch, or None after ``wait_s`` or as soon as the file in flight has landed: a stream that goes
    quiet must still announce its last file (found by a mutation test: it waited for the next batch)."""
    if write is None or write.done():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                return await queue.get()
        return None
    get = asyncio.ensure_future(queue.get())
    await asyncio.wait({get, write}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    if get.done() or not get.cancel():  # it got a batch meanwhile: the batch is ours
        return get.result()
    with contextlib.suppress(asyncio.CancelledError):
        await get  # a cancelled Queue.get leaves its item in the queue
    return None
