"""Landing on S3 while another writer lists the same prefix through the same filesystem (found by ``make e2e``).

The realtime sampler writes one batch file per stream, each in its own thread; the streams of one entity share a
directory and Airflow's cached S3 filesystem. A writer's listing of the prefix (its stale-temporary scan) that was
sent before another writer's temporary was uploaded, and answered after, was cached by s3fs; the other writer then
asked for its temporary's size, s3fs answered from that listing, and the batch failed with ``FileNotFoundError``
(the triggerer failed the whole sample). The test forces that interleaving. Truth: a separate boto3 client.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_cplugin.parquet.landing import ParquetLander
from airflow_provider_cplugin.parquet.location import landing_root

from .s3_fixtures import S3_CONN_ID, MotoS3, s3_keys, s3_table

SCHEMA = pa.schema([pa.field("n", pa.int64())])


def batch(start: int, rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"n": list(range(start, start + rows))}, schema=SCHEMA)


@pytest.mark.matrix(
    area="Storage",
    fault="another writer's listing of the S3 prefix, taken before this temporary's upload, is cached after it",
    expected="the file stages and commits (no FileNotFoundError from the stale listing); both files complete",
)
def test_a_stale_listing_of_the_prefix_does_not_hide_the_temporary(
    moto_s3: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = landing_root(f"s3://{s3_bucket}/cplugin", S3_CONN_ID) / "entity=x"
    with ParquetLander(directory / "earlier.parquet", SCHEMA) as earlier:  # the prefix holds an object
        earlier.write_batch(batch(0, 3))
    first = ParquetLander(directory / "first.parquet", SCHEMA)
    second = ParquetLander(directory / "second.parquet", SCHEMA)
    assert first.fs is second.fs  # one cached filesystem per connection, as in the triggerer
    fs: Any = first.fs
    first.open()
    first.write_batch(batch(100, 5))
    fs.invalidate_cache(directory.path)
    listed_before_upload = fs.ls(directory.path, detail=True)  # the second writer's listing, sent before the upload
    assert first._out is not None
    close = first._out.close

    def close_then_listing_arrives() -> None:
        close()  # uploads the temporary (s3fs invalidates its cache entry)...
        fs.dircache[directory.path] = listed_before_upload  # ...then the other listing's answer is cached

    monkeypatch.setattr(first._out, "close", close_then_listing_arrives)
    second.open()
    second.write_batch(batch(200, 7))
    first.commit()
    second.commit()
    keys = s3_keys(moto_s3, s3_bucket)
    assert keys == [f"cplugin/entity=x/{n}.parquet" for n in ("earlier", "first", "second")]
    assert s3_table(moto_s3, s3_bucket, keys[1]).column("n").to_pylist() == list(range(100, 105))
    assert s3_table(moto_s3, s3_bucket, keys[2]).column("n").to_pylist() == list(range(200, 207))
