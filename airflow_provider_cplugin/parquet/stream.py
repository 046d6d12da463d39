"""The one loop every REST snapshot runs: pages → typed batches → one staged Parquet file.

A page is either an Arrow record batch already decoded by :class:`~.decode.PageDecoder` (the hook decoded the body
in C++) or a list of wire records (sources that build or transform records), converted here by the same decoder.
No read-ahead here: the hooks' fetch-ahead (:mod:`airflow_provider_cplugin.hooks.paging`) overlaps the next request
with decoding and writing this page, and is the only one.

Kept free of Airflow context so operators, benchmarks and tests all exercise exactly the same code path.
:func:`stage_pages` leaves the file staged (complete, key-checked, not visible) so a multi-part snapshot can commit
all its parts together (:func:`~airflow_provider_cplugin.parquet.landing.commit_staged`); :func:`land_pages` stages
and commits one part.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.landing import LandedFile, ParquetLander, commit_staged
from airflow_provider_cplugin.parquet.schemas import EntitySchema, snake_case

__all__ = ["PageData", "Progress", "StagedPages", "StreamResult", "land_pages", "stage_pages"]

log = logging.getLogger(__name__)

BatchFilter = Callable[[pa.RecordBatch], pa.RecordBatch]
PageData: TypeAlias = pa.RecordBatch | list[dict[str, Any]]
"""One page: a batch decoded by a :class:`PageDecoder` of the same entity, or wire records."""


@dataclass(frozen=True)
class StreamResult:
    landed: LandedFile
    pages: int
    records_read: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.landed.to_dict(), "pages": self.pages, "records_read": self.records_read}


@dataclass(frozen=True)
class StagedPages:
    """One part written and staged: its lander (commit it with ``commit_staged``) and how it was read."""

    lander: ParquetLander
    pages: int
    records_read: int
    seconds: float

    def result(self) -> StreamResult:
        """The part's result once committed."""
        assert self.lander.landed is not None, "not committed"
        return StreamResult(self.lander.landed, self.pages, self.records_read, self.seconds)


PROGRESS_EVERY_S = 10.0


class Progress:
    """A landing's log: one progress line every ``every_s`` seconds (pages, rows read and kept, rate), never one per
    page, and when it ends one warning per kind of problem with its count."""

    def __init__(
        self,
        entity: str,
        logger: logging.Logger | Any = log,
        *,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entity = entity
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self._next = self.started + every_s
        self.pages = 0
        self.records_read = 0
        self.rows_kept = 0
        self.problems: Counter[str] = Counter()
        """Kind of problem → how many pages had it (reported once, by :meth:`finish`)."""

    @property
    def seconds(self) -> float:
        return self.clock() - self.started

    def page(self, records_read: int, rows_kept: int) -> None:
        self.pages += 1
        self.records_read += records_read
        self.rows_kept += rows_kept
        now = self.clock()
        if now >= self._next:
            self._next = now + self.every_s
            self.logger.info(
                "%s: %d pages, %d records read, %d rows kept so far (%.0f rows/s)",
                self.entity, self.pages, self.records_read, self.rows_kept,
                self.records_read / max(now - self.started, 1e-9),
            )  # fmt: skip

    def problem(self, kind: str, pages: int = 1) -> None:
        if pages:
            self.problems[kind] += pages

    def finish(self) -> None:
        for kind, pages in sorted(self.problems.items()):
            self.logger.warning("%s: %s: %d of %d page(s)", self.entity, kind, pages, self.pages)


def stage_pages(
    pages: Iterable[PageData],
    entity: EntitySchema,
    target: ObjectStoragePath,
    *,
    keep: BatchFilter | None = None,
    row_group_rows: int = 100_000,
    logger: logging.Logger | Any = log,
    attempt: int = 0,
    decoder: PageDecoder | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StagedPages:
    """Convert and write each page as it arrives; memory is bounded by one row group, not by the total. The
    entity's key is checked on the rows ``keep`` keeps. On failure nothing is left behind.

    :param decoder: converts record pages (default: a new one for ``entity``); pass the one that decoded the
        batch pages so drift is warned about once per landing.
    """
    decoder = decoder or PageDecoder(entity)
    progress = Progress(entity.name, logger, clock=clock)
    lander = ParquetLander(
        target,
        entity.arrow_schema,
        key=[snake_case(k) for k in entity.key],
        attempt=attempt,
        row_group_rows=row_group_rows,
    )
    lander.open()
    source = iter(pages)
    fallbacks = decoder.fallbacks
    try:
        for page in source:
            batch = decoder.page(page)
            kept = keep(batch) if keep else batch
            lander.write_batch(kept)
            progress.page(batch.num_rows, kept.num_rows)
        lander.stage()
    except BaseException:
        lander.abort()
        raise
    finally:
        # A failed write must also stop the source's fetch-ahead (its request would run on unobserved).
        close = getattr(source, "close", None)
        if close is not None:
            close()
    progress.problem("bodies decoded on the general path (drift warned above)", decoder.fallbacks - fallbacks)
    progress.finish()
    return StagedPages(lander, progress.pages, progress.records_read, progress.seconds)


def land_pages(
    pages: Iterable[PageData],
    entity: EntitySchema,
    target: ObjectStoragePath,
    *,
    keep: BatchFilter | None = None,
    row_group_rows: int = 100_000,
    logger: logging.Logger | Any = log,
    attempt: int = 0,
    decoder: PageDecoder | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> StreamResult:
    """:func:`stage_pages` and commit that one file."""
    staged = stage_pages(
        pages, entity, target, keep=keep, row_group_rows=row_group_rows, logger=logger, attempt=attempt,
        decoder=decoder, clock=clock,
    )  # fmt: skip
    commit_staged([staged.lander])
    result = staged.result()
    log_landed(logger, result)
    return result


def log_landed(logger: logging.Logger | Any, result: StreamResult) -> None:
    landed = result.landed
    logger.info(
        "Landed %s: %d rows in %d pages, %.1f s (%.0f rows/s) at %s",
        landed.entity, landed.rows, result.pages, result.seconds, landed.rows / max(result.seconds, 1e-9), landed.path,
    )  # fmt: skip
