"""MT4 users snapshot: every user of a trade platform, paged through ``UsersRequest``, landed as one Parquet file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator
from airflow_provider_cplugin.parquet.schemas import MT4_USER


class UsersSnapshotOperator(BaseSnapshotOperator):
    """Land all MT4 users of ``trade_platform`` (cursor-paged ``GET /api/v2/MT4/{tp}/UsersRequest``).

    Returns (XCom) ``{path, rows, bytes, row_groups, entity, schema, pages, trade_platform}``.
    """

    entity = MT4_USER

    def iter_pages(self, context: Any, trade_platform: str) -> Iterator[list[dict[str, Any]]]:
        path = self.hook.v2_path("UsersRequest", trade_platform=trade_platform, platform_type="MT4")
        for page in self.hook.paginate(path, limit=self.page_size):
            yield page.items
