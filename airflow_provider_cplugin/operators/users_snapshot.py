"""Users snapshot for MT4 and MT5 trade platforms."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, Records, SnapshotPart
from airflow_provider_cplugin.operators.row_filters import chunked, group_mask_filter
from airflow_provider_cplugin.parquet.schemas import MT4_USER, MT5_USER


class UsersSnapshotOperator(BaseSnapshotOperator):
    """Land the users of a trade platform.

    * MT4, no filter: every user, cursor-paged ``UsersRequest``.
    * MT4, ``logins``: batch reads with ``UserRecordsRequest`` (``logins_per_request`` per call; the API omits
      unknown logins).
    * MT4, ``group_mask``: ``UsersRequest`` filtered by the mask here (the API has no mask filter for users;
      ``AdmUsersRequestSafe`` takes one exact group and needs admin rights).
    * MT5: the API (v2, SDK 0.2.1) has **no user list**, so ``logins`` is required; each is read with
      ``UserGet/{login}`` (unknown logins are skipped with a warning).
    """

    entities = (MT4_USER, MT5_USER)
    template_fields: Sequence[str] = (*BaseSnapshotOperator.template_fields, "logins", "group_mask")

    def __init__(
        self,
        *,
        logins: Sequence[int] | str | None = None,
        group_mask: str | None = None,
        logins_per_request: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.logins = logins
        self.group_mask = group_mask
        self.logins_per_request = logins_per_request

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        logins = arguments.logins(self.logins)
        keep = group_mask_filter(self.group_mask) if self.group_mask else None
        if platform_type == "MT5":
            if not logins:
                raise self.not_offered("user list (pass `logins`: MT5 users are read one by one)", platform_type)
            chunk = arguments.page_size(self.page_size)
            return [SnapshotPart(MT5_USER, lambda: self._mt5_users(trade_platform, logins, chunk), keep)]
        if logins:
            per_request = arguments.whole_number(self.logins_per_request, "logins_per_request")
            return [SnapshotPart(MT4_USER, lambda: self._mt4_users_by_login(trade_platform, logins, per_request), keep)]
        return [SnapshotPart(MT4_USER, self.decoded(MT4_USER, "UsersRequest", "MT4", trade_platform), keep)]

    def _mt4_users_by_login(self, trade_platform: str, logins: list[int], per_request: int) -> Iterator[Records]:
        path = self.hook.v2_path("UserRecordsRequest", trade_platform=trade_platform, platform_type="MT4")
        for chunk in chunked(logins, per_request):
            users = self.hook.get(path, params={"logins": chunk}) or []
            # The batch read is unordered: sort so reruns write identical files.
            yield sorted(users, key=lambda u: u.get("login") or 0)

    def _mt5_users(self, trade_platform: str, logins: list[int], chunk_size: int) -> Iterator[Records]:
        for chunk in chunked(logins, chunk_size):
            users = []
            for login in chunk:
                path = self.hook.v2_path("UserGet", login, trade_platform=trade_platform, platform_type="MT5")
                try:
                    users.append(self.hook.get(path))
                except CPluginApiError as err:
                    if err.code != "NotFound":
                        raise
                    self.log.warning("MT5 login %s not found; skipped (activityId=%s)", login, err.activity_id)
            yield users
