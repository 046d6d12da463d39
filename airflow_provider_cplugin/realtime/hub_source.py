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
import importlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.platforms import aresolve_platform
from airflow_provider_cplugin.realtime.errors import HubAuthError, HubError
from airflow_provider_cplugin.realtime.events import HubEvent, RawItems
from airflow_provider_cplugin.realtime.filters import VectorUnsupported
from airflow_provider_cplugin.realtime.gaps import SequenceFn
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client
from airflow_provider_cplugin.realtime.item_decode import decode_items
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
class HubBatch:
    """Events that arrived together, plus the outages closed since the previous batch.

    ``connection_offset`` + ``event.connection`` numbers connections across the clients of one poll; an outage's
    ``connection`` is the (offset) number of the connection it ended.
    """

    events: list[HubEvent]
    trade_platform: str
    platform_type: str
    connection_offset: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[tuple[HubEvent, str]] = field(default_factory=list)
    """Records that are not a stream item in valid JSON (``payload`` = their text) and why."""
    _columns: dict[str, pa.Array | VectorUnsupported] = field(default_factory=dict, repr=False)
    _partitions: list[Partitions | None] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def column(self, name: str) -> pa.Array:
        """One payload field of every event, in order (missing = null), built once per batch for all the watchers
        sharing it (their worker threads may ask at the same time); :class:`VectorUnsupported` when the values do
        not make one Arrow column (mixed types) or a payload is not an object."""
        with self._lock:
            column = self._columns.get(name)
            if column is None:
                try:
                    column = pa.array([e.payload.get(name) for e in self.events])
                except (AttributeError, TypeError, ValueError, OverflowError, pa.ArrowException) as err:
                    column = VectorUnsupported(f"{name}: {type(err).__name__}: {err}")
                self._columns[name] = column
        if isinstance(column, VectorUnsupported):
            raise column
        return column

    def partitions(self) -> Partitions | None:
        """Per partition: first and last index, events, strictly increasing (built once per batch); ``{}`` when no
        event is sequenced, None when some are and some are not."""
        with self._lock:
            if not self._partitions:
                self._partitions.append(_partitions(self.events))
            return self._partitions[0]


def _partitions(events: list[HubEvent]) -> Partitions | None:
    found: dict[str, list[Any]] = {}
    unsequenced = 0
    for event in events:
        sequence = event.sequence
        if sequence is None:
            unsequenced += 1
            continue
        key, index = str(sequence[0]), int(sequence[1])
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


def decode_runs(stream: HubStream, runs: list[RawItems]) -> tuple[list[HubEvent], list[tuple[HubEvent, str]]]:
    """A batch of raw runs as events (worker thread, one call at a time per stream: sequences are tracked in
    arrival order); records that do not decode come back apart with the reason."""
    items, bad = decode_items(runs, stream.name)
    events: list[HubEvent] = []
    channel = stream.name
    if stream.tracker is None:
        events = [HubEvent(channel, i.payload, i.received_at, i.connection) for i in items]
    else:
        observe = stream.observe
        for item in items:
            deliver, sequence = observe(item.payload, item.connection, item.received_at)
            if deliver:
                events.append(HubEvent(channel, item.payload, item.received_at, item.connection, sequence))
    malformed = [(HubEvent(channel, i.text, i.received_at, i.connection), reason) for i, reason in bad]
    return events, malformed


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
                while True:
                    runs = await stream.get_raw(BATCH_MAX, BATCH_WAIT_S)
                    events: list[HubEvent] = []
                    bad: list[tuple[HubEvent, str]] = []
                    if runs:
                        events, bad = await asyncio.to_thread(decode_runs, stream, runs)
                        malformed.count(bad)
                    gaps = client.gaps  # read after the decode: it books sequence jumps
                    while reported < len(gaps) and gaps[reported].ended_at is not None:
                        gap = gaps[reported].to_dict()
                        gap["connection"] += offset
                        pending.append(gap)
                        reported += 1
                    if events or pending or bad:
                        yield HubBatch(events, platform.trade_platform, platform.platform_type, offset, pending, bad)
                        pending = []
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
