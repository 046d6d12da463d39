"""Generic operator: call any WebAPI method; result to XCom or, when asked, to Parquet."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import pyarrow as pa
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import Context

from airflow_provider_cplugin.assets import templated, with_aliases
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator, Records, SnapshotPart
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.schemas import ENTITIES, EntitySchema
from airflow_provider_cplugin.parquet.stream import PageData


class WebApiCallOperator(BaseSnapshotOperator):
    """Call one WebAPI method.

    :param endpoint: a v2 method relative to the trade platform (``"ManagerCommon"``, ``"GroupRecordGet/real"``:
        expanded to ``/api/v2/{MT4|MT5}/{tp}/...``) or an absolute API path starting with ``/``.
    :param method: HTTP method. Writes (POST/PATCH...) are sent once, never retried, with ``idempotency_key``.
    :param query: query parameters (lists are sent as repeated keys).
    :param body: JSON body for writes.
    :param paginate: follow ``meta.paging`` cursors (GET only).
    :param destination: ``"xcom"`` (default: the ``data`` of the response, keep it small) or ``"parquet"``.
    :param output_conn_id: storage connection of ``output_path`` for Parquet output (see
        :class:`BaseSnapshotOperator`); the path is validated before the API is called.
    :param entity: declared entity schema for Parquet output (a name from ``parquet.schemas.ENTITIES``); its key
        is checked for uniqueness (an inferred schema has no key).
        Without one the schema is inferred from the records, which is fine for ad-hoc pulls but may change
        between runs: declare an entity for anything a warehouse loads.
    """

    template_fields: Sequence[str] = (
        *BaseSnapshotOperator.template_fields,
        "endpoint",
        "query",
        "body",
        "idempotency_key",
    )

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "GET",
        query: dict[str, Any] | None = None,
        body: Any = None,
        paginate: bool = False,
        destination: str = "xcom",
        entity: str | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        if destination not in ("xcom", "parquet"):
            raise ValueError("destination must be 'xcom' or 'parquet'")
        if entity is not None and entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}; declared: {sorted(ENTITIES)}")
        arguments = {"endpoint": endpoint, "destination": destination, "entity": entity}
        kwargs["outlets"] = with_aliases(kwargs.get("outlets"), self.outlet_entities(arguments))
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method.upper()
        self.query = query
        self.body = body
        self.paginate = paginate
        self.destination = destination
        self.entity_name = entity
        self.idempotency_key = idempotency_key

    @classmethod
    def outlet_entities(cls, arguments: Mapping[str, Any]) -> tuple[str, ...]:
        """Parquet output lands the declared entity, else one named after the endpoint (when not templated)."""
        if arguments.get("destination", "xcom") != "parquet":
            return ()
        entity = arguments.get("entity")
        if isinstance(entity, str):
            return (entity,)
        endpoint = arguments.get("endpoint")
        return (inferred_entity_name(endpoint),) if isinstance(endpoint, str) and not templated(endpoint) else ()

    def path(self, platform_type: str, trade_platform: str) -> str:
        if self.endpoint.startswith("/"):
            return self.endpoint
        return self.hook.v2_path(self.endpoint, trade_platform=trade_platform, platform_type=platform_type)

    def records(
        self, platform_type: str, trade_platform: str, decoder: PageDecoder | None = None
    ) -> Iterator[PageData]:
        """The answer's pages: lists of records, or with ``decoder`` (a declared entity) record batches decoded
        from the bodies, the snapshot operators' decode path."""
        path = self.path(platform_type, trade_platform)
        if self.paginate:
            for page in self.hook.paginate(path, params=self.query, limit=self.page_size, data_decoder=decoder):
                yield page.items
            return
        data = self._request(path, decoder)
        if isinstance(data, pa.RecordBatch):
            yield data
            return
        yield data if isinstance(data, list) else [data] if data is not None else []

    def _request(self, path: str, decoder: PageDecoder | None = None) -> Any:
        return self.hook.request(
            self.method,
            path,
            params=self.query,
            json=self.body,
            idempotency_key=self.idempotency_key,
            data_decoder=decoder,
        ).data

    def snapshot_parts(self, context: Context, platform_type: str, trade_platform: str) -> list[SnapshotPart]:
        if self.entity_name:
            entity = ENTITIES[self.entity_name]
            return [SnapshotPart(entity, lambda: self.records(platform_type, trade_platform, PageDecoder(entity)))]
        # Infer the schema from the first page, then land that same page and the rest: every page (and a POST)
        # is requested once.
        pages = cast(Iterator[Records], self.records(platform_type, trade_platform))  # no decoder: records
        first = next(pages, [])
        return [SnapshotPart(self._inferred_entity(first), lambda: itertools.chain([first], pages))]

    def _inferred_entity(self, first: Records) -> EntitySchema:
        table = pa.Table.from_pylist([r for r in first if isinstance(r, dict)])
        name = inferred_entity_name(self.endpoint)
        fields = [(f.name, f.type if not pa.types.is_null(f.type) else pa.string()) for f in table.schema]
        return EntitySchema(name=name, fields=tuple(fields or [("value", pa.string())]), key=())

    def execute(self, context: Context) -> Any:
        if self.destination == "parquet":
            return super().execute(context)
        if self.endpoint.startswith("/"):
            platform_type = trade_platform = ""  # an absolute path needs neither
        else:
            trade_platform, platform_type = self.resolve_platform()
        if self.paginate:
            return [
                item for items in cast(Iterator[Records], self.records(platform_type, trade_platform)) for item in items
            ]
        return self._request(self.path(platform_type, trade_platform))


def __getattr__(name: str) -> Any:
    # The README of earlier versions named the operator CPluginWebApiOperator.
    if name == "CPluginWebApiOperator":
        warnings.warn(
            "CPluginWebApiOperator is deprecated; use WebApiCallOperator (same operator, new name)",
            AirflowProviderDeprecationWarning,
            stacklevel=2,
        )
        return WebApiCallOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inferred_entity_name(endpoint: str) -> str:
    """Entity name of an undeclared schema: the endpoint's first segment (``/api/TradePlatforms`` → ``api``)."""
    return endpoint.strip("/").split("/")[0].split("?")[0].lower() or "webapi"
