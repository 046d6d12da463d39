"""Landing-location checks a plausible bug would break unseen by the storage tests (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

import pytest

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.parquet.location import check_output_path, landing_root


@pytest.mark.parametrize("url", ["/srv/landing/..", "file:///srv/landing/..", "s3://bucket/landing/..", "/srv/../x"])
def test_a_dot_dot_segment_anywhere_is_refused(url: str) -> None:
    with pytest.raises(CPluginConfigError) as excinfo:
        check_output_path(url)
    assert excinfo.value.field == "output_path" and "'..'" in str(excinfo.value)


@pytest.mark.parametrize("url", ["/srv/landing/..data", "s3://bucket/a..b/c"])
def test_dots_inside_a_name_are_fine(url: str) -> None:
    assert check_output_path(url) == url


def test_the_storage_connection_is_bound_to_the_landing_root() -> None:
    """Without it the filesystem falls back to the URL's default credentials (for S3: boto3's chain)."""
    root = landing_root("s3://bucket/landing", "aws_landing")
    assert root.conn_id == "aws_landing" and str(root) == "s3://aws_landing@bucket/landing"
    assert landing_root("s3://bucket/landing").conn_id is None
