"""The one loop every REST snapshot runs: pages of wire records → typed batches → one atomic Parquet file.

Kept free of Airflow context so operators, benchmarks and tests all exercise exactly the same code path.
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
from airflow_provider_cplugin.parquet.landing import LandedFile, ParquetLander
from airflow_provider_cplugin.parquet.schemas import EntitySchema
from airflow_provider_cplugin.read_ahead import read_ahead

__all__ = ["StreamResult", "land_pages", "read_ahead"]

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


def land_pages(
    pages: Iterable[list[dict[str, Any]]],
    entity: EntitySchema,
    target: ObjectStoragePath,
    *,
    keep: BatchFilter | None = None,
    row_group_rows: int = 100_000,
    logger: logging.Logger | Any = log,
    prefetch: int = 1,
) -> StreamResult:
    """Convert and write each page as it arrives; memory is bounded by one row group (plus ``prefetch`` pages
    fetched ahead in a thread), not by the total."""
    converter = RecordBatchConverter(entity)
    started = time.monotonic()
    count = records_read = 0
    with ParquetLander(target, entity.arrow_schema, row_group_rows=row_group_rows) as lander:
        for records in read_ahead(pages, prefetch) if prefetch > 0 else pages:
            batch = converter.convert(records)
            lander.write_batch(keep(batch) if keep else batch)
            count += 1
            records_read += len(records)
            rows = lander.rows_received
            logger.info(
                "%s page %d: %d records read, %d rows kept (%.0f rows/s)",
                entity.name, count, records_read, rows, rows / max(time.monotonic() - started, 1e-9),
            )  # fmt: skip
    landed = lander.landed
    assert landed is not None  # the context manager committed
    seconds = time.monotonic() - started
    logger.info(
        "Landed %s: %d rows in %d pages, %.1f s (%.0f rows/s) at %s",
        entity.name, landed.rows, count, seconds, landed.rows / max(seconds, 1e-9), landed.path,
    )  # fmt: skip
    return StreamResult(landed=landed, pages=count, records_read=records_read, seconds=seconds)
