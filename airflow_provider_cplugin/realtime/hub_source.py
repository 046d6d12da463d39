"""One hub stream as an endless iterator of :class:`HubBatch` (the shared poll of the hub event triggers).

Imported by the triggers in a worker thread (it pulls in aiohttp, the hooks and the hub client). The iterator
connects with the connection's OAuth2 token, subscribes one stream and yields what arrives in batches, so a
shared-stream subscriber queue holds batches, not single events.

**Event loop**: the stream is opened with ``raw=True``: the loop only routes the client's undecoded runs
(:class:`~.events.RawItems`). Each batch is decoded once, in a worker thread (orjson, one parse per run), where
the sequence function also runs (``HubStream.observe``: duplicates dropped, jumps booked in the client's gaps, in
arrival order); the watchers sharing the batch then filter it in their own worker threads, on its columns
(:meth:`HubBatch.column`, built once per field and batch). A record that is not a stream item in valid JSON is not
dropped: it travels in ``HubBatch.malformed`` (a capture quarantines it; the source logs the counts).

The iterator runs for the lifetime of the group, as Airflow's shared streams expect ("yield forever, or raise"):
when the client gives up (reconnects exhausted) or the server completes the stream, it starts a new client after a
back-off and reports the outage in the next batch. Configuration and authentication errors are raised (every
subscriber fails with the message).
"""

from __future__ import annotations

import asyncio
import bisect
import importlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.parquet.hub_schemas import SEQUENCE as SEQUENCE_FIELD
from airflow_provider_cplugin.parquet.hub_schemas import SEQUENCE_KEY, STREAM_ENTITIES
from airflow_provider_cplugin.parquet.schemas import snake_case
from airflow_provider_cplugin.platforms import aresolve_platform
from airflow_provider_cplugin.realtime.errors import HubAuthError, HubError
from airflow_provider_cplugin.realtime.events import HubEvent, RawItems
from airflow_provider_cplugin.realtime.filters import VectorUnsupported
from airflow_provider_cplugin.realtime.gaps import SequenceFn
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client
from airflow_provider_cplugin.realtime.item_decode import Item, ItemDecoder, decode_items
from airflow_provider_cplugin.realtime.sample_request import StreamSpec
from airflow_provider_cplugin.realtime.subscriptions import HubStream

log = logging.getLogger(__name__)

BATCH_MAX = 5_000
BATCH_WAIT_S = 0.05
RESTART_DELAYS = (1.0, 5.0, 15.0, 60.0)
"""Back-off before a new client when the previous one gave up (the last delay repeats)."""
MALFORMED_LOG_S = 60.0
"""At most one warning per this many seconds about malformed records (with the counts since the last one)."""

Partitions = dict[str, tuple[int, int, int, bool]]
"""Per partition of a sequenced batch: first index, last index, events, strictly increasing."""


@dataclass
class RawRows:
    """The rows of a batch the fast decoder took: the runs' text (kept for the few rows a watcher fires on), the
    Arrow batch of the hub entity (client columns and sequences filled), and which records were delivered.

    Nothing per event is a Python object here (the text is one ``str`` per run, the rest Arrow or lists of
    scalars): batches waiting in ten watchers' queues give the cyclic GC nothing to walk.
    """

    runs: list[RawItems]
    table: pa.RecordBatch
    keep: list[int] | None = None
    """Record positions delivered (None: all); duplicates a sequence function recognised are not."""
    keys: list[str | None] | None = None
    indexes: list[int | None] | None = None
    """Per delivered row: its sequence (None without a sequence function)."""
    starts: list[int] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    """Wire (payload) field name -> column number."""
    _records: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for number, f in enumerate(self.table.schema):
            if f.metadata and b"wire_name" in f.metadata:
                self.names[f.metadata[b"wire_name"].decode()] = number
        total = 0
        for run in self.runs:
            self.starts.append(total)
            total += run.count

    def position(self, row: int) -> tuple[int, int]:
        """The run (number) of a delivered row, and the row's record number in it."""
        record = row if self.keep is None else self.keep[row]
        n = bisect.bisect_right(self.starts, record) - 1
        return n, record - self.starts[n]

    def run(self, row: int) -> RawItems:
        return self.runs[self.position(row)[0]]

    def sequence(self, row: int) -> tuple[str, int] | None:
        if self.keys is None or self.indexes is None:
            return None
        key, index = self.keys[row], self.indexes[row]
        return None if key is None or index is None else (key, index)

    def payload(self, row: int) -> Any:
        """The row's item exactly as the hub sent it (one record decoded; callers hold the batch's lock)."""
        n, offset = self.position(row)
        records = self._records.get(n)
        if records is None:
            records = self._records[n] = self.runs[n].records()
        return orjson.loads(records[offset])["item"]


class HubBatch:
    """Events that arrived together, plus the outages closed since the previous batch.

    Built by the source from raw runs (``rows``: Arrow, see :class:`RawRows`) or, when the fast decoder refused
    them, from decoded :class:`HubEvent` objects (``events``; also how tests build one). :attr:`events` materialises a
    raw batch's events on demand (the event-by-event path). ``connection_offset`` + ``event.connection`` numbers
    connections across the clients of one poll; an outage's ``connection`` is the (offset) number of the
    connection it ended. ``malformed``: records that are not a stream item in valid JSON (``payload`` = their
    text) and why.
    """

    def __init__(
        self,
        events: list[HubEvent] | None,
        trade_platform: str,
        platform_type: str,
        connection_offset: int = 0,
        gaps: list[dict[str, Any]] | None = None,
        malformed: list[tuple[HubEvent, str]] | None = None,
        *,
        rows: RawRows | None = None,
        channel: str = "",
    ) -> None:
        if (events is None) == (rows is None):
            raise ValueError("a batch has either events or raw rows")
        self._events = events
        self.rows = rows
        self.channel = channel
        self.trade_platform = trade_platform
        self.platform_type = platform_type
        self.connection_offset = connection_offset
        self.gaps = gaps or []
        self.malformed = malformed or []
        self._columns: dict[str, pa.Array | VectorUnsupported] = {}
        self._partitions: list[Partitions | None] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.rows.table.num_rows if self.rows is not None else len(self._events or [])

    @property
    def events(self) -> list[HubEvent]:
        """Every delivered event (decoded on first use for a raw batch; cached)."""
        with self._lock:
            if self._events is None:
                assert self.rows is not None
                self._events = [self._row_event(row) for row in range(len(self))]
            return self._events

    def event(self, row: int) -> HubEvent:
        """One delivered event (a raw batch decodes only that record)."""
        if self.rows is None:
            assert self._events is not None
            return self._events[row]
        with self._lock:
            return self._row_event(row)

    def _row_event(self, row: int) -> HubEvent:
        assert self.rows is not None
        run = self.rows.run(row)
        return HubEvent(self.channel, self.rows.payload(row), run.received_at, run.connection, self.rows.sequence(row))

    def received_at(self, row: int) -> float:
        return self.rows.run(row).received_at if self.rows is not None else self.event(row).received_at

    def connection(self, row: int) -> int:
        return self.rows.run(row).connection if self.rows is not None else self.event(row).connection

    def column(self, name: str) -> pa.Array:
        """One payload field of every event, in order (missing = null), shared by the watchers of the batch (their
        worker threads may ask at the same time); :class:`VectorUnsupported` when the values do not make one Arrow
        column as the hub sent them (mixed types, a payload that is not an object, a parsed timestamp)."""
        rows = self.rows
        if rows is not None:
            number = rows.names.get(name)
            if number is None:
                raise VectorUnsupported(f"{name}: not a column of the entity")
            column = rows.table.column(number)
            if pa.types.is_timestamp(column.type):
                raise VectorUnsupported(f"{name}: a parsed timestamp, not the text the hub sent")
            return column
        with self._lock:
            cached = self._columns.get(name)
            if cached is None:
                try:
                    cached = pa.array([e.payload.get(name) for e in self._events or []])
                except (AttributeError, TypeError, ValueError, OverflowError, pa.ArrowException) as err:
                    cached = VectorUnsupported(f"{name}: {type(err).__name__}: {err}")
                self._columns[name] = cached
        if isinstance(cached, VectorUnsupported):
            raise cached
        return cached

    def sequences(self) -> list[tuple[str, int] | None]:
        rows = self.rows
        if rows is None:
            return [e.sequence for e in self.events]  # type: ignore[misc]
        return [rows.sequence(row) for row in range(len(self))]

    def partitions(self) -> Partitions | None:
        """Per partition: first and last index, events, strictly increasing (built once per batch); ``{}`` when no
        event is sequenced, None when some are and some are not."""
        with self._lock:
            if not self._partitions:
                rows = self.rows
                if rows is None:
                    pairs: Any = (e.sequence for e in self._events or [])
                elif rows.keys is None or rows.indexes is None:
                    pairs = ()
                else:
                    pairs = zip(rows.keys, rows.indexes, strict=True)
                self._partitions.append(_partitions(pairs))
            return self._partitions[0]


def _partitions(pairs: Any) -> Partitions | None:
    found: dict[str, list[Any]] = {}
    unsequenced = 0
    for pair in pairs:
        if pair is None or pair[0] is None:
            unsequenced += 1
            continue
        key, index = str(pair[0]), int(pair[1])
        entry = found.get(key)
        if entry is None:
            found[key] = [index, index, 1, True]
        else:
            entry[3] = entry[3] and index > entry[1]
            entry[1] = index
            entry[2] += 1
    if unsequenced and found:
        return None
    return {k: (v[0], v[1], v[2], v[3]) for k, v in found.items()}


def _track(
    stream: HubStream, runs: list[RawItems]
) -> tuple[list[int] | None, list[str | None], list[int | None], bool]:
    """The stream's sequence tracking over every item, one record at a time: each payload is dropped as soon as
    its sequence is known, so none lives long enough to be promoted to an older GC generation (a batch's worth
    of surviving dicts made the cyclic GC's full collections frequent and long). Returns the delivered items'
    positions among the batch's items (None: all), their sequences, and whether every record was an item (the
    others are skipped here; :func:`decode_items` reports them)."""
    keep: list[int] = []
    keys: list[str | None] = []
    indexes: list[int | None] = []
    observe = stream.observe
    position = 0
    clean = True
    for run in runs:
        for record in run.records():
            try:
                payload = orjson.loads(record)["item"]
            except (ValueError, KeyError, TypeError, IndexError):
                clean = False
                continue
            deliver, sequence = observe(payload, run.connection, run.received_at)
            if deliver:
                keep.append(position)
                keys.append(None if sequence is None else str(sequence[0]))
                indexes.append(None if sequence is None else int(sequence[1]))
            position += 1
    return (None if len(keep) == position else keep), keys, indexes, clean


def decode_batch(
    stream: HubStream, decoder: ItemDecoder | None, runs: list[RawItems], meta: dict[str, Any]
) -> HubBatch:
    """A batch of raw runs (worker thread; one call at a time per stream, so sequences are tracked in arrival
    order). Usually the C++ reader decodes it into the entity's Arrow batch and no Python object is made per event
    (with a sequence function the items are also decoded with orjson for it, and dropped right after). What the
    reader refuses is decoded per event; records that do not decode come back apart with the reason."""
    runs = [run for run in runs if run.count]
    channel = stream.name
    items: list[Item] | None = None
    bad: list[tuple[Item, str]] = []
    keep: list[int] | None = None
    keys: list[str | None] | None = None
    indexes: list[int | None] | None = None
    clean = True
    if stream.tracker is not None:
        keep, keys, indexes, clean = _track(stream, runs)
    if decoder is not None and clean:
        try:
            table = decoder.decode(runs, meta["connection_offset"])
        except Exception:  # anything the reader refuses goes per event below
            pass
        else:
            if keep is not None:
                mask = [False] * table.num_rows
                for position in keep:
                    mask[position] = True
                table = table.filter(pa.array(mask, pa.bool_()))
            if keys is not None:
                table = _with_sequences(table, keys, indexes or [])
            return HubBatch(None, **meta, rows=RawRows(runs, table, keep, keys, indexes), channel=channel)
    if items is None:
        items, bad = decode_items(runs, channel)
        if keys is not None and indexes is not None:  # tracked already: keep the delivered items
            kept = set(keep if keep is not None else range(len(items)))
            items = [i for n, i in enumerate(items) if n in kept]
            for item, key, index in zip(items, keys, indexes, strict=True):
                item.sequence = None if key is None or index is None else (key, index)
    events = [HubEvent(channel, i.payload, i.received_at, i.connection, i.sequence) for i in items]
    malformed = [(HubEvent(channel, i.text, i.received_at, i.connection), reason) for i, reason in bad]
    return HubBatch(events, **meta, malformed=malformed, channel=channel)


def _with_sequences(table: pa.RecordBatch, keys: list[str | None], indexes: list[int | None]) -> pa.RecordBatch:
    names = table.schema.names
    key_at, seq_at = names.index(snake_case(SEQUENCE_KEY)), names.index(snake_case(SEQUENCE_FIELD))
    table = table.set_column(key_at, table.schema.field(key_at), pa.array(keys, pa.string()))
    return table.set_column(seq_at, table.schema.field(seq_at), pa.array(indexes, pa.int64()))


def load_sequence(
    factory_path: str | None, api_base_url: str, platform_type: str, spec: StreamSpec
) -> SequenceFn | None:
    """The ``module:function`` sequence factory's function for the stream (blocking: call in a thread)."""
    if not factory_path:
        return None
    module, _, name = factory_path.partition(":")
    try:
        factory: Callable[..., SequenceFn | None] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise CPluginConfigError("sequences", f"cannot import {factory_path!r}: {err}") from err
    fn = factory(api_base_url, platform_type, spec.method, list(spec.args))
    if fn is None:
        return None

    def tolerant(payload: Any) -> Any:
        # A malformed payload has no sequence: it must not break the client's receive loop.
        try:
            return fn(payload)
        except Exception:
            return None

    return tolerant


async def hub_batches(kwargs: dict[str, Any]) -> AsyncIterator[HubBatch]:
    """Endless batches of one stream; ``kwargs`` are a hub trigger's (only the shared-key fields are read)."""
    spec = StreamSpec.parse(kwargs["stream"])
    hook = CPluginWebApiAsyncHook(cplugin_conn_id=kwargs["cplugin_conn_id"])
    try:
        config = await hook.get_config()
        platform = await aresolve_platform(hook, kwargs.get("trade_platform"), kwargs.get("platform_type"))
        check_stream(platform.platform_type, spec.method)
        sequence = await asyncio.to_thread(
            load_sequence, kwargs.get("sequences"), config.api_base_url, platform.platform_type, spec
        )
        entity = STREAM_ENTITIES.get((platform.platform_type, spec.method))
        decoder = None if entity is None else ItemDecoder(entity, spec.channel)
        options: dict[str, Any] = {"allow_insecure_loopback": config.allow_insecure_loopback}
        if kwargs.get("reconnect_delays") is not None:
            options["reconnect_delays"] = tuple(kwargs["reconnect_delays"])
        offset = 0
        failures = 0
        outage: dict[str, Any] | None = None
        malformed = _MalformedLog(spec.channel)
        while True:
            # The hook's session carries the connection's TLS settings to the hub.
            client = hub_client(
                config.api_base_url, platform.platform_type, platform.trade_platform, hook.get_token,
                session=await hook.get_conn(), **options,
            )  # fmt: skip
            reported = 0
            try:
                await client.start()
                stream = await client.stream(spec.method, *spec.args, sequence=sequence, raw=True)
                failures = 0
                pending: list[dict[str, Any]] = []
                if outage is not None:
                    outage["ended_at"] = time.time()
                    pending.append(outage)
                    outage = None
                meta: dict[str, Any] = {"trade_platform": platform.trade_platform,
                                        "platform_type": platform.platform_type,
                        "connection_offset": offset}  # fmt: skip
                while True:
                    runs = await stream.get_raw(BATCH_MAX, BATCH_WAIT_S)
                    batch = await asyncio.to_thread(decode_batch, stream, decoder, runs, meta) if runs else None
                    if batch is not None:
                        malformed.count(batch.malformed)
                    gaps = client.gaps  # read after the decode: it books sequence jumps
                    while reported < len(gaps) and gaps[reported].ended_at is not None:
                        gap = gaps[reported].to_dict()
                        gap["connection"] += offset
                        pending.append(dict(gap))
                        reported += 1
                    if pending and batch is None:
                        batch = HubBatch([], **meta, channel=stream.name)
                    if batch is not None and (len(batch) or batch.malformed or pending):
                        batch.gaps, pending = pending, []
                        yield batch
                    elif not stream.active:
                        raise HubError(f"the server completed {spec.channel}")
            except HubAuthError:
                raise
            except HubError as err:
                failures += 1
                delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
                log.warning("Hub stream %s stopped (%s); a new connection in %.0f s", spec.channel, err, delay)
                if outage is None:
                    outage = {
                        "kind": "disconnect", "reason": f"{type(err).__name__}: {err}", "started_at": time.time(),
                        "connection": offset + client.connection_number, "ended_at": None,
                    }  # fmt: skip
                offset += client.connection_number
                await client.stop()
                await asyncio.sleep(delay)
            finally:
                await client.stop()
    finally:
        await hook.close()


class _MalformedLog:
    """One warning per ``MALFORMED_LOG_S`` about records that did not decode, with counts."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.total = 0
        self.unlogged = 0
        self.logged_at = 0.0

    def count(self, bad: list[tuple[HubEvent, str]]) -> None:
        if not bad:
            return
        self.total += len(bad)
        self.unlogged += len(bad)
        now = time.monotonic()
        if now - self.logged_at >= MALFORMED_LOG_S:
            log.warning(
                "Hub stream %s: %d records were not stream items in valid JSON (%d in all; e.g. %s)",
                self.channel, self.unlogged, self.total, bad[0][1],
            )  # fmt: skip
            self.unlogged = 0
            self.logged_at = now
