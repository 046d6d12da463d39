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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

import pyarrow as pa
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.landing import LandedFile, ParquetLander, commit_staged
from airflow_provider_cplugin.parquet.schemas import EntitySchema, snake_case

__all__ = ["PageData", "StagedPages", "StreamResult", "land_pages", "stage_pages"]

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
) -> StagedPages:
    """Convert and write each page as it arrives; memory is bounded by one row group, not by the total. The
    entity's key is checked on the rows ``keep`` keeps. On failure nothing is left behind.

    :param decoder: converts record pages (default: a new one for ``entity``); pass the one that decoded the
        batch pages so drift is warned about once per landing.
    """
    decoder = decoder or PageDecoder(entity)
    started = time.monotonic()
    count = records_read = 0
    lander = ParquetLander(
        target,
        entity.arrow_schema,
        key=[snake_case(k) for k in entity.key],
        attempt=attempt,
        row_group_rows=row_group_rows,
    )
    lander.open()
    source = iter(pages)
    try:
        for page in source:
            batch = decoder.page(page)
            lander.write_batch(keep(batch) if keep else batch)
            count += 1
            records_read += batch.num_rows
            rows = lander.rows_received
            logger.info(
                "%s page %d: %d records read, %d rows kept (%.0f rows/s)",
                entity.name, count, records_read, rows, rows / max(time.monotonic() - started, 1e-9),
            )  # fmt: skip
        lander.stage()
    except BaseException:
        lander.abort()
        raise
    finally:
        # A failed write must also stop the source's fetch-ahead (its request would run on unobserved).
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return StagedPages(lander, count, records_read, time.monotonic() - started)


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
) -> StreamResult:
    """:func:`stage_pages` and commit that one file."""
    staged = stage_pages(
        pages, entity, target, keep=keep, row_group_rows=row_group_rows, logger=logger, attempt=attempt,
        decoder=decoder,
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
