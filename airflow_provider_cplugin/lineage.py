"""OpenLineage facets of a landing: what a run read from the WebAPI and the files it committed.

The operators return these from ``get_openlineage_facets_on_complete``, so the OpenLineage provider reports the
final files (never a hidden temporary) with their schema and row counts. OpenLineage classes are imported only
when lineage is asked for: the provider works without ``apache-airflow-providers-openlineage``.

Naming (OpenLineage dataset naming conventions):

* input: namespace ``cplugin://<WebAPI host>/<trade platform>``, name = the entity (``mt4_users``...);
* outputs: one dataset per committed file; ``file`` + absolute path for local disk, ``<scheme>://<bucket>`` +
  key for object stores (``s3://lake`` + ``landing/entity=mt4_users/.../x.parquet``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

API_SCHEME = "cplugin"


def api_namespace(api_base_url: str, trade_platform: str) -> str:
    """``cplugin://<host[:port]>/<trade platform GUID, lower case>``."""
    return f"{API_SCHEME}://{urlsplit(api_base_url).netloc.lower()}/{trade_platform.strip().lower()}"


def storage_dataset(path: str) -> tuple[str, str]:
    """(namespace, name) of a landed file from its URL or absolute path."""
    parts = urlsplit(path)
    if parts.scheme in ("", "file", "local"):
        return "file", parts.path
    bucket = parts.netloc.rsplit("@", 1)[-1]  # an Airflow conn_id@ prefix names credentials, not the store
    return f"{parts.scheme}://{bucket}", parts.path.lstrip("/")


@dataclass
class LandingLineage:
    """What one run read and landed, kept on the operator for the OpenLineage listener."""

    api_base_url: str
    trade_platform: str
    platform_type: str
    entities: list[str] = field(default_factory=list)
    """Entities read from the API (inputs), known before anything lands."""
    files: list[Mapping[str, Any]] = field(default_factory=list)
    """Committed files (``path``, ``rows``, ``bytes``, ``entity``), set only once they are visible."""
    schemas: dict[str, pa.Schema] = field(default_factory=dict)

    def operator_lineage(self) -> Any:
        """An ``OperatorLineage`` (imported here: only the OpenLineage listener calls this)."""
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
            SchemaDatasetFacet,
            SchemaDatasetFacetFields,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage

        namespace = api_namespace(self.api_base_url, self.trade_platform)
        inputs = [InputDataset(namespace=namespace, name=entity) for entity in dict.fromkeys(self.entities)]
        outputs = []
        for f in self.files:
            store, name = storage_dataset(str(f["path"]))
            facets: dict[str, Any] = {}
            schema = self.schemas.get(str(f["entity"]))
            if schema is not None:
                facets["schema"] = SchemaDatasetFacet(
                    fields=[SchemaDatasetFacetFields(name=c.name, type=str(c.type)) for c in schema]
                )
            outputs.append(
                OutputDataset(
                    namespace=store,
                    name=name,
                    facets=facets,
                    outputFacets={
                        "outputStatistics": OutputStatisticsOutputDatasetFacet(
                            rowCount=int(f["rows"]), size=int(f["bytes"]), fileCount=1
                        )
                    },
                )
            )
        return OperatorLineage(inputs=inputs, outputs=outputs)


def lineage_of(recorded: LandingLineage | None) -> Any:
    """``get_openlineage_facets_on_complete``'s answer: None before the run resolved its trade platform."""
    return recorded.operator_lineage() if recorded is not None else None


def landed_files(files: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The parts of XCom file entries lineage needs (path, rows, bytes, entity)."""
    return [{k: f[k] for k in ("path", "rows", "bytes", "entity") if k in f} for f in files]
