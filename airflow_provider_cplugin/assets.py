"""Assets the landing operators declare and the asset events they emit.

An operator cannot know at DAG-parse time which entities a run will land: that depends on the trade platform's
type (MT4 or MT5), on templates rendered at run time and on mapped arguments. So every operator declares one
:class:`~airflow.sdk.AssetAlias` per entity it *may* land (``cplugin:<entity>``), always, and at run time adds
an event for the concrete :class:`~airflow.sdk.Asset` (the entity's directory, ``<landing>/entity=<name>``) of
each entity it *did* land, with ``extra`` metadata. A DAG scheduled on the concrete Asset (or on the alias) is
triggered by exactly those events; nothing is marked updated that the run did not land.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath

from airflow_provider_cplugin.parquet.landing import partition_dir
from airflow_provider_cplugin.parquet.location import check_output_path, default_landing_path
from airflow_provider_cplugin.parquet.schemas import EntitySchema

ALIAS_PREFIX = "cplugin:"
log = logging.getLogger(__name__)


def templated(value: Any) -> bool:
    """Whether a string argument is still a Jinja template (known only at run time)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_literal_output_path(output_path: str | None) -> None:
    """Refuse a bad literal ``output_path`` when the DAG is parsed (a template is checked when rendered)."""
    if output_path is not None and not templated(output_path):
        check_output_path(output_path)


def entity_alias(entity: str | EntitySchema) -> AssetAlias:
    """The alias every operator that may land ``entity`` declares as an outlet: ``cplugin:<entity>``."""
    name = entity if isinstance(entity, str) else entity.name
    return AssetAlias(name=f"{ALIAS_PREFIX}{name}")


def entity_asset(output_path: str | None, entity: str | EntitySchema) -> Asset | None:
    """The Asset downstream DAGs schedule on: the entity's directory in the landing zone.

    ``None`` when the path is only known at run time (a Jinja template). A relative path or one climbing out
    with ``..`` is a :class:`~airflow_provider_cplugin.exceptions.CPluginConfigError` here already.
    """
    base = output_path or default_landing_path()
    if templated(base):
        return None
    name = entity if isinstance(entity, str) else entity.name
    return Asset(uri=str(partition_dir(ObjectStoragePath(check_output_path(base)), name, {})))


def with_aliases(outlets: Any, entities: Iterable[str]) -> list[Any]:
    """The user's outlets (kept) plus the alias of every entity not already among them."""
    result = list(outlets) if isinstance(outlets, list | tuple) else [] if outlets is None else [outlets]
    for name in entities:
        alias = entity_alias(name)
        if alias not in result:
            result.append(alias)
    return result


def with_state_inlets(inlets: Any, output_path: Any, entities: Iterable[str]) -> list[Any]:
    """The user's inlets plus the concrete Asset of each entity whose asset state store the operator uses.

    An Asset inlet gives the task an accessor to that Asset's state store without marking it updated (an Asset
    outlet would emit an event on every success, whether or not that entity landed).
    """
    result = list(inlets) if isinstance(inlets, list | tuple) else [] if inlets is None else [inlets]
    if output_path is not None and not isinstance(output_path, str):
        return result  # an XComArg or other run-time value
    for name in entities:
        asset = entity_asset(output_path, name)
        if asset is not None and asset not in result:
            result.append(asset)
    return result


def schema_fingerprint(schema: pa.Schema) -> str:
    """Short sha256 of the Arrow schema's IPC serialization (names, types, nullability, metadata)."""
    return hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:16]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def landed_extras(
    files: Sequence[Mapping[str, Any]],
    *,
    context: Mapping[str, Any],
    trade_platform: str,
    platform_type: str,
    schemas: Mapping[str, pa.Schema],
) -> dict[str, dict[str, Any]]:
    """Event ``extra`` per landed entity: rows, files, trade platform and type, data interval, schema."""
    extras: dict[str, dict[str, Any]] = {}
    for f in files:
        entity = str(f["entity"])
        extra = extras.setdefault(
            entity,
            {
                "entity": entity,
                "rows": 0,
                "files": [],
                "trade_platform": trade_platform,
                "platform_type": platform_type,
                "data_interval_start": _iso(context.get("data_interval_start")),
                "data_interval_end": _iso(context.get("data_interval_end")),
                "schema_fingerprint": schema_fingerprint(schemas[entity]) if entity in schemas else None,
            },
        )
        extra["rows"] += int(f["rows"])
        extra["files"].append(str(f["path"]))
    return extras


def emit_landed(
    context: Mapping[str, Any],
    outlets: Sequence[Any],
    output_path: str | None,
    extras: Mapping[str, dict[str, Any]],
    logger: logging.Logger | Any = log,
) -> list[str]:
    """Add one event per landed entity to its alias among ``outlets``; returns the Asset URIs emitted.

    Called after the files are committed, so an event always names files that exist.
    """
    events = context.get("outlet_events")
    if events is None:  # not run by Airflow's task runner (a bare ``execute`` call)
        return []
    emitted: list[str] = []
    undeclared: list[str] = []
    for entity, extra in extras.items():
        alias = entity_alias(entity)
        asset = entity_asset(output_path, entity)
        if alias not in outlets or asset is None:
            undeclared.append(entity)
            continue
        events[alias].add(asset, extra=extra)
        emitted.append(asset.uri)
    if undeclared:
        logger.warning(
            "No asset event for %d landed entit(ies) %s: their alias (%s<entity>) is not an outlet of this task",
            len(undeclared), undeclared, ALIAS_PREFIX,
        )  # fmt: skip
    for uri in emitted:
        logger.info("Asset event: %s", uri)
    return emitted
