"""MT4 users changed since the run's watermark, through a users sync session (incremental alternative to a full
users snapshot: MT4 users carry no modification time)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from airflow.sdk import Context

from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.operators.dataset_support import run_interval, server_tz_hours
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.schemas import MT4_USER_CHANGE

SYNC_LIMIT_MAX = 1_000_000


class UsersChangesOperator(BaseSnapshotOperator):
    """Land the MT4 users modified at or after ``data_interval_start`` → ``mt4_user_changes`` (MT4User rows).

    ``UsersSyncStart?timestamp=`` with the interval start as server-local int32 unix seconds
    (``ManagerCommon.timeZone``), then ``UsersSyncRead?limit=`` until an empty answer. The watermark is the
    interval *start* only: the server knows no upper bound, so a user changed after the interval also lands (the
    latest state wins in the warehouse). A sync session is per trade platform and the most recent start wins:
    run at most one such task per platform at a time (``max_active_runs=1`` or a one-slot pool).

    MT5 has no sync sessions in the API: :class:`NotOfferedByApiError`.
    """

    entities = (MT4_USER_CHANGE,)
    template_fields: Sequence[str] = (*BaseSnapshotOperator.template_fields, "interval_start")

    def __init__(self, *, read_limit: int = 100_000, interval_start: str | datetime | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.read_limit = read_limit
        self.interval_start = interval_start

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type != "MT4":
            raise self.not_offered("user sync sessions", platform_type)
        start = (
            arguments.moment(self.interval_start, "interval_start")
            if self.interval_start is not None
            else run_interval(context)[0]
        )
        limit = arguments.whole_number(self.read_limit, "read_limit", maximum=SYNC_LIMIT_MAX)

        def pages() -> Iterator[pa.RecordBatch]:
            timestamp = int(start.timestamp()) + server_tz_hours(self.hook, trade_platform) * 3600
            sync = self.hook.v2_path("UsersSyncStart", trade_platform=trade_platform, platform_type="MT4")
            read = self.hook.v2_path("UsersSyncRead", trade_platform=trade_platform, platform_type="MT4")
            self.log.info("Users modified since %s (server-local timestamp %d)", start.isoformat(), timestamp)
            self.hook.request("POST", sync, params={"timestamp": timestamp})
            decoder = PageDecoder(MT4_USER_CHANGE)  # served as is: each read decodes like a REST page
            while True:
                users = self.hook.request("GET", read, params={"limit": limit}, data_decoder=decoder).data
                if users is None or not users.num_rows:
                    return
                yield users

        return [SnapshotPart(MT4_USER_CHANGE, pages)]
