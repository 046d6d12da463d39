"""What a hub watcher does with each batch of its shared stream: filter, debounce, watermark, outages.

:meth:`Watcher.process_batch` runs in a worker thread (one batch at a time per watcher; the loop only saves the
state and yields the resulting events). Usual batch (**fast path**): no outage in it and, for a sequenced stream,
every partition's indexes increasing past the watermark with no jump on the live connection: the ledger is
updated once per partition, the filter runs vectorised on the batch's Arrow columns
(:attr:`~.filters.CompiledFilter.vector`) and only the matching events are visited in Python (key, debounce,
payload). Any other batch (outages, repeats, jumps, a column the kernels cannot take) goes event by event
(:meth:`Watcher.process`), with the same result (``tests/triggers/test_hub_event.py`` holds the two equal).
The hub connection is :mod:`.hub_source`'s.

**Watermark** (in the watched asset's ``asset_state_store``, key :func:`state_key`): the last event seen (time and
``(partition, index)`` per partition when the stream has a sequence function) and the debounce state, saved
**before** every event is yielded and every ``checkpoint_s`` seconds. A re-created trigger (triggerer restart)
loads it, drops events at or below the watermark (a stream that re-sends them cannot fire twice), keeps the
debounce windows, and reports the outage (``restart``: from the last event seen to the first one after the restart,
with the events missed in between counted per partition where the stream is sequenced) in its log and in the next
event's payload. Events seen after the last checkpoint and before a kill count as missed (at most
``checkpoint_s`` worth): the count errs on the side of "missed", never "seen". Each fire carries the state as of its
own event (watermark, debounce windows), saved before it leaves: a stop or kill while a batch's fires are handed to
the triggerer never fires one twice, and the events after the last fire that left (the undelivered fires among
them) are counted in the restart outage, never silently taken as seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_cplugin.realtime.filters import CompiledFilter, Debouncer, VectorUnsupported
from airflow_provider_cplugin.results import WatcherEvent

if TYPE_CHECKING:
    from airflow_provider_cplugin.realtime.hub_source import HubBatch

Fire = tuple[WatcherEvent, dict[str, Any]]
"""A payload to fire and the watcher's state as of its event."""

STATE_PREFIX = "cplugin_hub"
STATE_VERSION = 1
MAX_OUTAGES = 10
"""Outages listed in one payload (older ones are only counted in ``outages_dropped``)."""


def state_key(kind: str, identity: dict[str, Any]) -> str:
    """Store key of one trigger configuration: two watchers of one asset keep separate watermarks."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return f"{STATE_PREFIX}_{kind}:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


class StateSlot:
    """One key of the trigger's ``asset_state_store`` (Airflow injects it into event triggers it runs as asset
    watchers). Without a store (not run as a watcher, or one trigger watching several assets) the state lives in
    memory only, with one warning: a restart then starts fresh."""

    def __init__(self, store: Any, key: str, logger: logging.Logger | Any) -> None:
        self.store = store
        self.key = key
        self.log = logger
        self.memory: dict[str, Any] | None = None
        self._warned = False

    def _fallback(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            self.log.warning("Hub watcher state is kept in memory only (%s): a restart starts without it", why)
        self.store = None

    async def load(self) -> dict[str, Any] | None:
        if self.store is not None:
            try:
                value = await self.store.aget(self.key, default=None)
            except ValueError as err:  # several watched assets: no single accessor
                self._fallback(str(err))
            else:
                return value if isinstance(value, dict) and value.get("v") == STATE_VERSION else None
        else:
            self._fallback("no asset_state_store was injected")
        return self.memory

    async def save(self, value: dict[str, Any]) -> None:
        value = {**value, "v": STATE_VERSION}
        if self.store is not None:
            try:
                await self.store.aset(self.key, value)
                return
            except ValueError as err:
                self._fallback(str(err))
        self.memory = value


class SequenceLedger:
    """Last index per partition; counts jumps, drops repeats, and says which outage a jump belongs to.

    A jump in a partition's first event after an outage is that outage's loss; any other jump is a loss on a
    live connection (``live_missed``). Outages without sequences have ``missed: None`` (unknown).
    """

    def __init__(self, seen: dict[str, int] | None = None) -> None:
        self.seen: dict[str, int] = dict(seen or {})
        self.duplicates = 0
        self.live_missed = 0
        self.sequenced = False
        self._outage: dict[str, Any] | None = None
        self._fresh: set[str] = set()

    def open_outage(self, outage: dict[str, Any]) -> None:
        self._outage = outage
        self._fresh = set()

    def advance(self, partitions: dict[str, tuple[int, int, int, bool]]) -> bool:
        """A whole batch at once, when that is what :meth:`observe` per event would do with no repeat and no live
        jump (each partition increasing past its watermark without holes, except a first jump that an open outage
        takes); False (nothing changed) otherwise: then observe event by event."""
        outage = self._outage
        for partition, (first, last, count, increasing) in partitions.items():
            seen = self.seen.get(partition)
            if not increasing or last - first + 1 != count or (seen is not None and first <= seen):
                return False
            if seen is not None and first != seen + 1 and (outage is None or partition in self._fresh):
                return False
        for partition, (first, last, _, _) in partitions.items():
            seen = self.seen.get(partition)
            if seen is not None and first != seen + 1 and outage is not None:
                outage["missed"] = (outage.get("missed") or 0) + first - seen - 1
            self._fresh.add(partition)
            self.seen[partition] = last
        self.sequenced = self.sequenced or bool(partitions)
        return True

    def observe(self, sequence: tuple[Hashable, int] | None) -> bool:
        """False when the event repeats one at or below the watermark (drop it)."""
        if sequence is None:
            return True
        self.sequenced = True
        partition, index = str(sequence[0]), int(sequence[1])
        last = self.seen.get(partition)
        if last is not None:
            if index <= last:
                self.duplicates += 1
                return False
            jump = index - last - 1
            if jump:
                outage = self._outage
                if outage is not None and partition not in self._fresh:
                    outage["missed"] = (outage.get("missed") or 0) + jump
                else:
                    self.live_missed += jump
        self._fresh.add(partition)
        self.seen[partition] = index
        return True


def restart_outage(started_at: float | None, sequenced: bool) -> dict[str, Any]:
    """The outage of a trigger re-created after a restart, from the last event its state knows of."""
    return {
        "kind": "restart",
        "reason": "trigger re-created (triggerer restart or reassignment)",
        "started_at": started_at,
        "ended_at": None,
        "missed": 0 if sequenced else None,
    }


def close_outage(outage: dict[str, Any], first_at: float) -> None:
    """The outage ends with the first event after it."""
    outage["ended_at"] = first_at
    if outage.get("started_at") is not None:
        outage["duration"] = round(first_at - outage["started_at"], 3)


def outage_from_gap(gap: dict[str, Any], sequenced: bool) -> dict[str, Any]:
    """An outage the hub source reported (client disconnect, or a new client after the old one gave up)."""
    return {
        "kind": gap.get("kind", "disconnect"),
        "reason": gap.get("reason"),
        "started_at": gap.get("started_at"),
        "ended_at": gap.get("ended_at"),
        "duration": gap.get("duration"),
        "missed": 0 if sequenced else None,
    }


def log_outage(logger: logging.Logger | Any, name: str, outage: dict[str, Any]) -> None:
    missed = outage.get("missed")
    logger.warning(
        "%s: %s outage from %s to %s (%s s), missed events: %s; reason: %s",
        name, outage.get("kind"), _iso(outage.get("started_at")), _iso(outage.get("ended_at")),
        outage.get("duration"), "unknown" if missed is None else missed, outage.get("reason"),
    )  # fmt: skip


class Watcher:
    """Turns batches of one stream into small event payloads (one per fire)."""

    def __init__(
        self,
        name: str,
        compiled: CompiledFilter,
        key_fields: list[str],
        fields: list[str],
        debouncer: Debouncer,
        slot: StateSlot,
        checkpoint_s: float,
        logger: logging.Logger | Any,
    ) -> None:
        self.name = name
        self.filter = compiled
        self.key_fields = key_fields
        self.fields = fields
        self.debouncer = debouncer
        self.slot = slot
        self.checkpoint_s = checkpoint_s
        self.log = logger
        self.ledger = SequenceLedger()
        self.last_seen_at: float | None = None
        self.connection = 0
        self.outages: list[dict[str, Any]] = []  # since the last fire
        self.outages_dropped = 0
        self.live_missed_reported = 0
        self.matched = 0  # since the last fire, all keys
        self.evaluated = 0
        self.fires = 0
        self._restart: dict[str, Any] | None = None
        self._last_checkpoint = time.monotonic()
        self._dirty = False
        self._unlogged: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ state

    async def load(self) -> None:
        state = await self.slot.load()
        if not state:
            return
        self.ledger = SequenceLedger(state.get("seen"))
        self.debouncer.load(state.get("debounce", []))
        self.fires = int(state.get("fires", 0))
        self.last_seen_at = state.get("last_seen_at")
        self.outages = list(state.get("outages", []))  # reported by no event yet
        self._restart = restart_outage(self.last_seen_at, bool(state.get("seen")))
        self.ledger.open_outage(self._restart)
        self._add_outage(self._restart)
        self._unlogged.append(self._restart)

    def _state(self, now: float) -> dict[str, Any]:
        # Copies: a fire's state is kept while the batch goes on changing the watermark and the outages.
        return {
            "seen": dict(self.ledger.seen),
            "last_seen_at": self.last_seen_at,
            "debounce": self.debouncer.to_state(now),
            "fires": self.fires,
            "outages": list(self.outages),
        }

    async def checkpoint(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or (self._dirty and now - self._last_checkpoint >= self.checkpoint_s):
            await self.slot.save(self._state(time.time()))
            self._last_checkpoint = now
            self._dirty = False

    # ------------------------------------------------------------------ outages

    def _add_outage(self, outage: dict[str, Any]) -> None:
        self.outages.append(outage)
        if len(self.outages) > MAX_OUTAGES:
            self.outages.pop(0)
            self.outages_dropped += 1

    def _close_restart(self, first_at: float) -> None:
        if self._restart is not None:
            close_outage(self._restart, first_at)
            self._restart = None

    # ------------------------------------------------------------------ events

    def process_batch(self, batch: HubBatch) -> tuple[list[Fire], dict[str, Any] | None]:
        """Worker thread: the payloads to fire for this batch, each with the state as of its own event (to save
        before it leaves), and the state of a checkpoint that is due when nothing fires (else None)."""
        fires = self._fast(batch)
        if fires is None:
            fires = [(payload, self._state(time.time())) for payload in self.process(batch)]
        due = self._dirty and time.monotonic() - self._last_checkpoint >= self.checkpoint_s
        return fires, self._state(time.time()) if due and not fires else None

    async def save(self, state: dict[str, Any], *, whole: bool = True) -> None:
        """Save a state; ``whole=False`` for a fire's state inside a batch (the rest of the batch is still to be
        saved at a checkpoint)."""
        await self.slot.save(state)
        self._last_checkpoint = time.monotonic()
        self._dirty = not whole

    def _fast(self, batch: HubBatch) -> list[Fire] | None:
        """The fast path (module docstring); None when the batch must go event by event."""
        rows = len(batch)
        if not rows or batch.gaps:
            return None
        partitions = batch.partitions()
        if partitions is None:
            return None  # a sequence function that answers None for some payloads only
        seen = SeenPrefix(self.ledger.seen, batch)
        if partitions and not self.ledger.advance(partitions):
            return None
        # From here the batch is committed (the ledger moved): the filter's fallback is the predicate, not process().
        self.connection = batch.connection_offset + batch.connection(rows - 1)
        if self._restart is not None:
            self._close_restart(batch.received_at(0))
        self.last_seen_at = batch.received_at(rows - 1)
        self.evaluated += rows
        self._dirty = True
        fires = []
        debouncer = self.debouncer
        matching = self._matching(batch)
        keys = self._keys(batch, matching)
        for n, i in enumerate(matching):
            # Only the rows that fire become Python objects; the others need just their key and time.
            event = None
            if keys is None:
                event = batch.event(i)
                key = tuple(event.payload.get(f) for f in self.key_fields)
            else:
                key = keys[n]
            self.matched += 1
            covered = debouncer.offer(key, batch.received_at(i))
            if covered is not None:
                event = event or batch.event(i)
                payload = self._payload(batch, event, event.payload, covered)
                state = self._state(time.time())
                state.update(seen=seen.at(i), last_seen_at=batch.received_at(i))
                fires.append((payload, state))
        self._log_closed()
        return fires

    def _keys(self, batch: HubBatch, rows: list[int]) -> list[tuple[Any, ...]] | None:
        """The debounce keys of ``rows`` from the batch's columns (None: read them from each row's payload)."""
        if not rows:
            return []
        import pyarrow as pa

        try:
            columns = [batch.column(f).take(pa.array(rows, pa.int64())).to_pylist() for f in self.key_fields]
        except VectorUnsupported:
            return None
        return list(zip(*columns, strict=True)) if columns else [()] * len(rows)

    def _matching(self, batch: HubBatch) -> list[int]:
        """Positions of the events the filter matches: vectorised, or per event when the kernels cannot say."""
        vector = self.filter.vector
        if vector is None:
            return list(range(len(batch)))
        try:
            mask = vector(batch)
        except VectorUnsupported:
            matches = self.filter.matches
            return [i for i, e in enumerate(batch.events) if matches(e.payload)]
        import pyarrow.compute as pc

        return pc.indices_nonzero(mask).to_pylist()

    def process(self, batch: HubBatch) -> Iterator[WatcherEvent]:
        """Payloads to fire for this batch, event by event (the slow path of :meth:`process_batch`)."""
        gaps = {int(g["connection"]): g for g in batch.gaps}
        ledger = self.ledger
        matches = self.filter.matches
        debouncer = self.debouncer
        for event in batch.events:
            connection = batch.connection_offset + event.connection
            if connection != self.connection:
                self._new_connection(connection, gaps)
            if self._restart is not None:
                self._close_restart(event.received_at)
            if not ledger.observe(event.sequence):
                continue
            self.last_seen_at = event.received_at
            self.evaluated += 1
            self._dirty = True
            payload = event.payload
            if not matches(payload):
                continue
            self.matched += 1
            key = tuple(payload.get(f) for f in self.key_fields)
            covered = debouncer.offer(key, event.received_at)
            if covered is None:
                continue
            yield self._payload(batch, event, payload, covered)
        for gap in gaps.values():  # outages whose next connection brought no event in this batch
            self._take_gap(gap)
        self._log_closed()

    def _log_closed(self) -> None:
        # Logged once the batch is through: the first event per partition after an outage counted its loss.
        for outage in self._unlogged:
            if outage.get("ended_at") is not None:
                log_outage(self.log, f"Hub watcher {self.name}", outage)
        self._unlogged = [o for o in self._unlogged if o.get("ended_at") is None]

    def _new_connection(self, connection: int, gaps: dict[int, dict[str, Any]]) -> None:
        for number in sorted(n for n in gaps if n < connection):
            self._take_gap(gaps.pop(number))
        self.connection = connection

    def _take_gap(self, gap: dict[str, Any]) -> None:
        outage = outage_from_gap(gap, self.ledger.sequenced)
        self.ledger.open_outage(outage)
        self._add_outage(outage)
        self._unlogged.append(outage)

    def _payload(self, batch: HubBatch, event: Any, payload: dict[str, Any], covered: int) -> WatcherEvent:
        missed = self.ledger.live_missed - self.live_missed_reported
        self.live_missed_reported = self.ledger.live_missed
        body: WatcherEvent = {
            "watcher": self.name,
            "stream": event.channel,
            "trade_platform": batch.trade_platform,
            "platform_type": batch.platform_type,
            "key": {f: payload.get(f) for f in self.key_fields},
            "event": {f: payload[f] for f in self.fields if f in payload},
            "received_at": event.received_at,
            "sequence": None if event.sequence is None else [str(event.sequence[0]), event.sequence[1]],
            "matches": covered,
            "matched_since_last_fire": self.matched,
            "missed_live": missed if self.ledger.sequenced else None,
            "outages": self.outages,
            "outages_dropped": self.outages_dropped,
        }
        self.fires += 1
        self.matched = 0
        self.outages = []
        self.outages_dropped = 0
        return body


class SeenPrefix:
    """The watermark as of a row of a batch the ledger took whole (fast path): the watermark before the batch plus
    the batch's indexes up to that row. The rows' sequences are read only when a fire asks."""

    def __init__(self, seen: dict[str, int], batch: HubBatch) -> None:
        self.seen = dict(seen)
        self.batch = batch
        self.sequences: list[tuple[str, int] | None] | None = None
        self.next = 0

    def at(self, row: int) -> dict[str, int]:
        if self.sequences is None:
            self.sequences = self.batch.sequences()
        while self.next <= row:
            sequence = self.sequences[self.next]
            if sequence is not None:
                self.seen[str(sequence[0])] = int(sequence[1])
            self.next += 1
        return dict(self.seen)


def _iso(stamp: float | None) -> str:
    if stamp is None:
        return "unknown"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
