"""The one loop every REST snapshot runs: pages of wire records → typed batches → one staged Parquet file.

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
from typing import Any

import pyarrow as pa
from airflow.sdk import ObjectStoragePath

from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.landing import LandedFile, ParquetLander, commit_staged
from airflow_provider_cplugin.parquet.schemas import EntitySchema, snake_case
from airflow_provider_cplugin.read_ahead import read_ahead

__all__ = ["StagedPages", "StreamResult", "land_pages", "read_ahead", "stage_pages"]

log = logging.getLogger(__name__)

BatchFilter = Callable[[pa.RecordBatch], pa.RecordBatch]


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
    pages: Iterable[list[dict[str, Any]]],
    entity: EntitySchema,
    target: ObjectStoragePath,
    *,
    keep: BatchFilter | None = None,
    row_group_rows: int = 100_000,
    logger: logging.Logger | Any = log,
    prefetch: int = 1,
    attempt: int = 0,
) -> StagedPages:
    """Convert and write each page as it arrives; memory is bounded by one row group (plus ``prefetch`` pages
    fetched ahead in a thread), not by the total. The entity's key is checked on the rows ``keep`` keeps. On
    failure nothing is left behind."""
    converter = RecordBatchConverter(entity)
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
    source = read_ahead(pages, prefetch) if prefetch > 0 else pages
    try:
        for records in source:
            batch = converter.convert(records)
            lander.write_batch(keep(batch) if keep else batch)
            count += 1
            records_read += len(records)
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
        # A failed write must also stop the read-ahead thread (it would keep polling while the error is handled).
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return StagedPages(lander, count, records_read, time.monotonic() - started)


def land_pages(
    pages: Iterable[list[dict[str, Any]]],
    entity: EntitySchema,
    target: ObjectStoragePath,
    *,
    keep: BatchFilter | None = None,
    row_group_rows: int = 100_000,
    logger: logging.Logger | Any = log,
    prefetch: int = 1,
    attempt: int = 0,
) -> StreamResult:
    """:func:`stage_pages` and commit that one file."""
    staged = stage_pages(
        pages, entity, target, keep=keep, row_group_rows=row_group_rows, logger=logger, prefetch=prefetch,
        attempt=attempt,
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
