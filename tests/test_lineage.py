"""OpenLineage: the operators' facets as the OpenLineage provider extracts them (its ExtractorManager)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from airflow.utils.state import TaskInstanceState

from airflow_provider_cplugin.lineage import LandingLineage, api_namespace, storage_dataset
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.schemas import MT4_USER

pytest.importorskip("airflow.providers.openlineage")


def test_dataset_naming() -> None:
    assert api_namespace("https://Cloud.MyWebApi.com", " ABC-1 ") == "cplugin://cloud.mywebapi.com/abc-1"
    assert storage_dataset("file:///data/entity=x/a.parquet") == ("file", "/data/entity=x/a.parquet")
    assert storage_dataset("/data/a.parquet") == ("file", "/data/a.parquet")
    assert storage_dataset("s3://aws_lake@lake/landing/a.parquet") == ("s3://lake", "landing/a.parquet")


def extract(op: Any) -> Any:
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    run = SimpleNamespace(run_id="r", dag_id="d")
    return ExtractorManager().extract_metadata(run, op, TaskInstanceState.SUCCESS, SimpleNamespace(task=op))


def test_extractor_uses_the_operator_facets() -> None:
    op = UsersSnapshotOperator(task_id="u", output_path="file:///lake")
    schema = MT4_USER.arrow_schema
    op.landing_lineage = LandingLineage(
        "https://cloud.mywebapi.com", "TP-1", "MT4", entities=["mt4_users"],
        files=[{"path": "file:///lake/entity=mt4_users/d.parquet", "rows": 7, "bytes": 100, "entity": "mt4_users"}],
        schemas={"mt4_users": schema},
    )  # fmt: skip
    lineage = extract(op)
    assert [(i.namespace, i.name) for i in lineage.inputs] == [("cplugin://cloud.mywebapi.com/tp-1", "mt4_users")]
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("file", "/lake/entity=mt4_users/d.parquet")
    assert output.outputFacets["outputStatistics"].rowCount == 7
    assert [(f.name, f.type) for f in output.facets["schema"].fields] == [(f.name, str(f.type)) for f in schema]


def test_failed_before_commit_reports_the_input_only() -> None:
    op = UsersSnapshotOperator(task_id="u", output_path="file:///lake")
    op.landing_lineage = LandingLineage("https://cloud.mywebapi.com", "tp", "MT4", entities=["mt4_users"])
    lineage = extract(op)
    assert [i.name for i in lineage.inputs] == ["mt4_users"] and lineage.outputs == []


def test_schema_facet_types_are_arrow_types() -> None:
    lineage = LandingLineage(
        "https://h", "tp", "MT5", files=[{"path": "s3://b/k.parquet", "rows": 1, "bytes": 2, "entity": "e"}],
        schemas={"e": pa.schema([("x", pa.timestamp("us", tz="UTC"))])},
    ).operator_lineage()  # fmt: skip
    assert lineage.outputs[0].facets["schema"].fields[0].type == "timestamp[us, tz=UTC]"
    assert (lineage.outputs[0].namespace, lineage.outputs[0].name) == ("s3://b", "k.parquet")
