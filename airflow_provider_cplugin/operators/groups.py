"""Group configuration (leverage, margin call / stop-out, currency): the dimension table of exposure reports."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from airflow.sdk import Context

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError
from airflow_provider_cplugin.operators import arguments
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, SnapshotPart
from airflow_provider_cplugin.operators.dataset_support import Records, choice, mapped
from airflow_provider_cplugin.parquet.schemas import MT4_GROUP, MT5_GROUP

_GROUP_SECRETS = ("reportsSMTPPass",)
"""MT5ConGroup credentials: dropped before landing even when the curated DTO blanks them."""


class GroupsSnapshotOperator(BaseSnapshotOperator):
    """Land the trading groups' configuration.

    * MT4 → ``mt4_groups``: every group, ``GroupsGet`` (``source="cache"``, default: pump cache, not billed) or
      ``GroupsRequest`` (``source="live"``: Manager call, cursor-paged by name). Rows by group name.
    * MT5 → ``mt5_groups``: the API has no group list, so ``GroupGet/{group}`` for each group in ``groups``, or
      else for the groups *seen*: the groups of ``logins`` (or of the owners of the open positions of
      ``group_mask``, ``PositionByGroup``), each read with ``UserGet``. Unknown groups are skipped with a warning.
      ``commissions`` lands as JSON text; ``reportsSMTPPass`` is never landed.
    """

    entities = (MT4_GROUP, MT5_GROUP)
    template_fields: Sequence[str] = (*BaseSnapshotOperator.template_fields, "groups", "logins", "group_mask")

    def __init__(
        self,
        *,
        source: str = "cache",
        groups: Sequence[str] | str | None = None,
        logins: Sequence[int] | str | None = None,
        group_mask: str = "*",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.groups = groups
        self.logins = logins
        self.group_mask = group_mask

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if platform_type == "MT4":
            if choice(self.source, "source", ("cache", "live")) == "live":
                pages = self.decoded(MT4_GROUP, "GroupsRequest", "MT4", trade_platform)
            else:
                # The cached list comes unordered: sorted by name (the key, never null) for identical reruns.
                pages = mapped(
                    self.decoded(MT4_GROUP, "GroupsGet", "MT4", trade_platform, cursor_paged=False),
                    lambda page: page.sort_by("group") if isinstance(page, pa.RecordBatch) else page,
                )
            return [SnapshotPart(MT4_GROUP, pages)]
        explicit = _names(self.groups, "groups")
        logins = arguments.logins(self.logins)
        return [
            SnapshotPart(MT5_GROUP, lambda: self._mt5_groups(trade_platform, explicit, logins))
        ]

    def _mt5_groups(self, trade_platform: str, explicit: list[str], logins: list[int]) -> Iterator[Records]:
        names = explicit or sorted(self._groups_seen(trade_platform, logins))
        self.log.info("MT5 groups to read: %d", len(names))
        rows = []
        for name in names:
            try:
                row = self.hook.get(
                    self.hook.v2_path("GroupGet", name, trade_platform=trade_platform, platform_type="MT5")
                )
            except CPluginApiError as err:
                if err.code != "NotFound":
                    raise
                self.log.warning("MT5 group %r not found; skipped (activityId=%s)", name, err.activity_id)
                continue
            rows.append(_landable_mt5_group(row))
        yield rows

    def _groups_seen(self, trade_platform: str, logins: list[int]) -> set[str]:
        if not logins:
            positions = self.paged("PositionByGroup", "MT5", trade_platform, path_params=(self.group_mask,))
            logins = sorted({p["login"] for page in positions() for p in page if p.get("login") is not None})
        groups: set[str] = set()
        missing = 0
        for login in logins:
            path = self.hook.v2_path("UserGet", login, trade_platform=trade_platform, platform_type="MT5")
            try:
                user = self.hook.get(path) or {}
            except CPluginApiError as err:
                if err.code != "NotFound":
                    raise
                missing += 1
                continue
            if user.get("group"):
                groups.add(user["group"])
        if missing:
            self.log.warning("%d of %d MT5 login(s) not found while collecting their groups", missing, len(logins))
        return groups


def _landable_mt5_group(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in _GROUP_SECRETS}
    if out.get("commissions") is not None:
        out["commissions"] = json.dumps(out["commissions"], sort_keys=True)
    return out


def _names(value: Any, field: str) -> list[str]:
    """Group names from a list or comma-separated text (MT5 names contain backslashes, never commas)."""
    if value is None or value == "" or value == []:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) and i.strip() for i in items):
        raise CPluginConfigError(field, f"must be a list of group names or comma-separated text, got {value!r}")
    return sorted({i.strip() for i in items})
