"""MT5 deal checkpoints: where the next hourly run resumes ``DealByGroup`` instead of re-reading all history.

``DealByGroup`` has no time filter but is sorted by deal id, so a run can resume from the cursor of the page that
holds the last deal it needs to skip. A :class:`DealCheckpoint` written for a run that ended at ``watermark``
means: *at read time, every deal dated at or after ``watermark`` had an id above ``deal``* (``deal`` ends the
longest id-ordered prefix of deals all dated before ``watermark``, so out-of-order times only cost re-reading).
A run for ``[start, end)`` may resume from any checkpoint whose watermark is ``<= start``.

Resuming re-reads the page that holds the checkpoint's deal (the overlap) and checks that the deal is there with
the same time before it trusts the cursor; a cursor the server refuses or an overlap that does not match falls back
to a full scan with a warning. Where they are kept: :class:`AssetCheckpointStore` (Airflow 3.3's asset state
store, when the task has the deal asset as an inlet) or :class:`FileCheckpointStore` (one JSON object beside the
landing zone, replaced atomically). A checkpoint is written only after the run's file is committed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.paging import PageTracker
from airflow_provider_cplugin.parquet.convert import parse_utc_timestamps
from airflow_provider_cplugin.parquet.landing import partition_dir

Records = list[dict[str, Any]]

CHECKPOINT_VERSION = 1
KEEP_CHECKPOINTS = 48
"""Checkpoints kept per (trade platform, group mask): two days of hourly runs, so reruns and short backfills
resume near their interval; older intervals resume from the oldest kept one, or scan fully."""
REFUSED_CURSOR_CODES = frozenset({"Validation", "NotFound", "InvalidCursor", "BadRequest"})


@dataclass(frozen=True)
class DealCheckpoint:
    watermark: str
    """ISO UTC end of the interval of the run that wrote it."""
    cursor: str | None
    """Cursor of the page holding ``deal`` (None: the first page)."""
    deal: int
    time: str
    """``time`` of ``deal`` as served: the overlap check compares it."""
    high: int
    """Highest deal id the writing run saw: newer runs call ids above it with times before their start late."""

    @property
    def watermark_at(self) -> datetime:
        return instant(self.watermark)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DealCheckpoint:
        cursor = raw.get("cursor")
        return cls(
            watermark=str(raw["watermark"]),
            cursor=None if cursor is None else str(cursor),
            deal=int(raw["deal"]),
            time=str(raw["time"]),
            high=int(raw["high"]),
        )


def instant(value: str) -> datetime:
    """An ISO time as served (``Z``, offset or naive = UTC) → aware UTC datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def select(checkpoints: list[DealCheckpoint], start: datetime) -> DealCheckpoint | None:
    """The latest checkpoint a run starting at ``start`` may resume from (watermark ``<= start``)."""
    usable = [c for c in checkpoints if c.watermark_at <= start]
    return max(usable, key=lambda c: c.watermark_at, default=None)


def merged(checkpoints: list[DealCheckpoint], new: DealCheckpoint) -> list[DealCheckpoint]:
    """``new`` replaces a checkpoint with the same watermark; the newest :data:`KEEP_CHECKPOINTS` are kept."""
    others = [c for c in checkpoints if c.watermark_at != new.watermark_at]
    return sorted([*others, new], key=lambda c: c.watermark_at)[-KEEP_CHECKPOINTS:]


def _encode(checkpoints: list[DealCheckpoint]) -> dict[str, Any]:
    return {"version": CHECKPOINT_VERSION, "checkpoints": [asdict(c) for c in checkpoints]}


class CheckpointStore:
    """Where the checkpoints of one (trade platform, group mask) live: :meth:`read`/:meth:`write` raw JSON."""

    where = ""

    def __init__(self, log: logging.Logger | Any) -> None:
        self.log = log
        self._warned = False

    def read(self) -> Any:
        raise NotImplementedError

    def write(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def load(self) -> list[DealCheckpoint]:
        raw = self.read()
        if raw is None:
            return []
        try:
            if isinstance(raw, str):
                raw = json.loads(raw)
            if raw.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            return [DealCheckpoint.from_dict(c) for c in raw["checkpoints"]]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            # A checkpoint only saves work: an unreadable one costs a full scan, never a wrong landing.
            if not self._warned:
                self.log.warning("Ignoring unreadable deal checkpoints at %s (%s); scanning all deals", self.where, err)
                self._warned = True
            return []

    def save(self, checkpoints: list[DealCheckpoint]) -> None:
        self.write(_encode(checkpoints))


class FileCheckpointStore(CheckpointStore):
    """``<landing>/_checkpoints/entity=mt5_deals/trade_platform=<guid>/group_mask=<quoted>.json``.

    Written to a temporary name and renamed over the old one (a single PUT on object stores), so a reader sees the
    old or the new object, never half of one. Concurrent writers can only drop each other's newest entry, which
    costs a later run a longer resume, never a wrong one.
    """

    def __init__(self, base: str, entity: str, trade_platform: str, group_mask: str, log: logging.Logger | Any):
        super().__init__(log)
        folder = partition_dir(ObjectStoragePath(base) / "_checkpoints", entity, {"trade_platform": trade_platform})
        self.path = folder / f"group_mask={quote(group_mask, safe='')}.json"
        self.where = str(self.path)

    def read(self) -> Any:
        return self.path.read_text() if self.path.exists() else None

    def write(self, payload: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(payload, indent=1))
        try:
            tmp.rename(self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class AssetCheckpointStore(CheckpointStore):
    """One key of Airflow 3.3's asset state store (``context["asset_state_store"][asset]``): kept by Airflow on
    the deal asset across runs, DAGs and workers."""

    def __init__(self, accessor: Any, trade_platform: str, group_mask: str, log: logging.Logger | Any):
        super().__init__(log)
        self.accessor = accessor
        self.key = f"cplugin.deal_checkpoints.{trade_platform}.{group_mask}"
        self.where = f"asset state store key {self.key!r}"

    def read(self) -> Any:
        return self.accessor.get(self.key)

    def write(self, payload: dict[str, Any]) -> None:
        self.accessor.set(self.key, payload)


class DealScan:
    """The ``DealByGroup`` pages one run reads, from a checkpoint when one fits, and the checkpoint it leaves.

    :param request: ``cursor -> ApiResponse`` for one page (cursor None = the first page), never retried past a
        refusal: used to resume.
    :param full_scan: a fresh iterator of :class:`~.hooks.paging.Page` from the first page (request-ahead).
    :param track: work out the checkpoint to write (off for ``incremental=False``: the old path, as it was).
    """

    def __init__(
        self,
        *,
        path: str,
        limit: int,
        request: Callable[[str | None], Any],
        full_scan: Callable[[], Iterator[Any]],
        start: datetime,
        end: datetime,
        resume: DealCheckpoint | None,
        track: bool,
        log: logging.Logger | Any,
    ) -> None:
        self.path = path
        self.limit = limit
        self.request = request
        self.full_scan = full_scan
        self.start = start
        self.end = end
        self.resume = resume
        self.track = track
        self.log = log
        self.mode = "full"
        self.fallback: str | None = None
        self.pages_read = 0
        self.late = 0
        self._prefix_open = True
        self._candidate: tuple[str | None, int, str] | None = None
        self._high = 0

    def pages(self) -> Iterator[Records]:
        if self.resume is not None:
            resumed = self._resume(self.resume)
            if resumed is not None:
                yield from resumed
                return
            self.log.warning(
                "DealByGroup: cannot resume from the checkpoint of %s (deal %d): %s; scanning all deals instead",
                self.resume.watermark, self.resume.deal, self.fallback,
            )  # fmt: skip
        self.mode = "full"
        self._prefix_open, self._candidate, self._high = True, None, 0
        cursor: str | None = None
        for page in self.full_scan():
            self.pages_read += 1
            self._observe(cursor, page.items)
            cursor = page.next_cursor
            yield page.items

    def _resume(self, checkpoint: DealCheckpoint) -> Iterator[Records] | None:
        tracker = PageTracker("GET", self.path, self.limit)
        tracker.cursor = checkpoint.cursor
        try:
            page = tracker.page(self.request(checkpoint.cursor))
        except CPluginApiError as err:
            if err.code not in REFUSED_CURSOR_CODES:
                raise
            self.fallback = f"the server refused the saved cursor ({err.code}: {err.description})"
            return None
        self.pages_read += 1
        new = self._after_overlap(page.items, checkpoint)
        if new is None:
            return None
        self.mode = "incremental"
        self._candidate = (checkpoint.cursor, checkpoint.deal, checkpoint.time)
        self._high = checkpoint.deal
        return self._resumed(tracker, checkpoint.cursor, new)

    def _resumed(self, tracker: PageTracker, cursor: str | None, first: Records) -> Iterator[Records]:
        self._observe(cursor, first)
        yield first
        while not tracker.done:
            cursor = tracker.cursor
            page = tracker.page(self.request(cursor))
            self.pages_read += 1
            self._observe(cursor, page.items)
            yield page.items

    def _after_overlap(self, rows: Records, checkpoint: DealCheckpoint) -> Records | None:
        """The rows after the checkpoint's deal, or None (and ``fallback`` says why) when the overlap differs."""
        for n, row in enumerate(rows):
            deal = row.get("deal")
            if not isinstance(deal, int) or deal > checkpoint.deal:
                break
            if deal == checkpoint.deal:
                served = row.get("time")
                if not isinstance(served, str) or instant(served) != instant(checkpoint.time):
                    self.fallback = f"deal {deal} is now dated {served!r}, the checkpoint saw {checkpoint.time!r}"
                    return None
                return rows[n + 1 :]
        first = rows[0].get("deal") if rows else None
        self.fallback = (
            f"the page at the saved cursor does not hold deal {checkpoint.deal} (it starts at deal {first!r}): the "
            "sequence has a gap or the cursor moved"
        )
        return None

    def _observe(self, cursor: str | None, rows: Records) -> None:
        """Extend the checkpoint candidate over the id-ordered prefix of deals dated before ``end``."""
        if not self.track or not rows:
            return
        deals = [r.get("deal") for r in rows]
        times = parse_utc_timestamps(pa.array([r.get("time") for r in rows], type=pa.string()))
        numeric = [d for d in deals if isinstance(d, int)]
        if self.resume is not None and self.mode == "incremental":
            older = pc.fill_null(pc.less(times, pa.scalar(self.start, type=times.type)), False)
            newer = pa.array([isinstance(d, int) and d > self.resume.high for d in deals])
            self.late += int(pc.sum(pc.and_(older, newer)).as_py() or 0)
        self._high = max([self._high, *numeric])
        if not self._prefix_open:
            return
        before = pc.fill_null(pc.less(times, pa.scalar(self.end, type=times.type)), False).to_pylist()
        stop = before.index(False) if False in before else len(rows)
        last = deals[stop - 1] if stop else None
        if isinstance(last, int):
            self._candidate = (cursor, last, str(rows[stop - 1].get("time")))
        if stop < len(rows):
            self._prefix_open = False

    def checkpoint(self) -> DealCheckpoint | None:
        """What a successful run leaves for the next one (None when it saw no deal dated before its end)."""
        if not self.track or self._candidate is None:
            return None
        cursor, deal, time = self._candidate
        return DealCheckpoint(watermark=iso_utc(self.end), cursor=cursor, deal=deal, time=time, high=self._high)
