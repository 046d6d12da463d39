"""Assets that tell the truth: aliases declared whatever the templating or mapping, events only for what landed.

Unit tests read what the task runner would send to the API server (``_serialize_outlet_events``); the slow test
runs a real ``airflow dags test`` and reads the asset events and queued consumer runs from Airflow's database.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pyarrow.parquet as pq
import pytest
from airflow.sdk import DAG, Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.execution_time.task_runner import _serialize_outlet_events

from airflow_provider_cplugin.assets import entity_alias, schema_fingerprint
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.operators.webapi import WebApiCallOperator
from airflow_provider_cplugin.parquet.convert import SchemaDriftError
from airflow_provider_cplugin.parquet.schemas import MT4_TRADE_HISTORY, MT4_USER, MT5_DEAL
from airflow_provider_cplugin.sandbox import AirflowSandbox

from .conftest import ANCHOR

DAY = datetime(2025, 12, 31, tzinfo=UTC)


def run_with_events(
    op: Any,
    events: OutletEventAccessors | None = None,
    interval: tuple[datetime, datetime] = (DAY, DAY + timedelta(days=1)),
) -> tuple[Any, list[dict[str, Any]]]:
    """Execute like the task runner does; returns (XCom result, the outlet events it would send)."""
    events = events if events is not None else OutletEventAccessors()
    context = {
        "ti": SimpleNamespace(dag_id="tests", task_id=op.task_id, map_index=-1),
        "logical_date": interval[0],
        "data_interval_start": interval[0],
        "data_interval_end": interval[1],
        "run_id": "test__run",
        "outlet_events": events,
    }
    return op.execute(context), list(_serialize_outlet_events(events))


def aliases(*names: str) -> list[AssetAlias]:
    return [entity_alias(n) for n in names]


# -- declared at parse time ------------------------------------------------------------------------------------


def test_aliases_declared_for_plain_templated_and_mapped_tasks(landing: str) -> None:
    from airflow.dag_processing.collection import AssetModelOperation
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    mine = Asset(uri="s3://elsewhere/x")
    with DAG("producer", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        plain = OpenOrdersSnapshotOperator(task_id="open", output_path=landing, outlets=[mine])
        templated = UsersSnapshotOperator(task_id="t", output_path="{{ params.lake }}")
        UsersSnapshotOperator.partial(task_id="mapped", output_path=landing).expand(trade_platform=["a", "b"])
        TradeHistoryOperator.partial(task_id="history", output_path=landing).expand(trade_platform=["a"])
        WebApiCallOperator(task_id="xcom", endpoint="ManagerCommon")
        WebApiCallOperator(task_id="pq", endpoint="GroupRecordGet/real", destination="parquet")

    assert plain.outlets == [mine, *aliases("mt4_open_trades", "mt5_orders", "mt5_positions")]  # the user's kept
    assert templated.outlets == aliases("mt4_users", "mt5_users")
    assert not any(isinstance(o, Asset) for o in templated.outlets)  # no Asset: events come from the run only

    # What the scheduler and DAG processor see: the serialized DAG.
    data = DagSerialization.to_dict(dag)
    collected = AssetModelOperation.collect({"producer": LazyDeserializedDAG(data=data)})
    assert set(collected.asset_aliases) == {
        f"cplugin:{n}"
        for n in ("mt4_open_trades", "mt5_orders", "mt5_positions", "mt4_users", "mt5_users", "mt4_trade_history",
                  "mt5_deals", "grouprecordget")
    }  # fmt: skip
    by_task = {t: [a.uri for _, a in refs] for t, refs in collected.outlet_references.items()}
    assert by_task == {"producer": ["s3://elsewhere/x"]}  # no concrete Asset marked updated by any success
    # The deal asset is an inlet of the (mapped) history task: its state store holds the deal checkpoints.
    assert [(t, a.uri) for t, a in collected.inlet_references["producer"]] == [
        ("history", f"{landing}/entity=mt5_deals")
    ]


# -- emitted at run time ---------------------------------------------------------------------------------------


def test_mt5_history_marks_only_the_deals_it_landed(
    connections: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    """The deployment bug: an MT5 history task also marked ``entity=mt4_trade_history`` updated."""
    start = datetime.fromtimestamp(ANCHOR, UTC) - timedelta(days=2)
    op = TradeHistoryOperator(task_id="h5", cplugin_conn_id="cplugin_mt5", output_path=landing, incremental=False)
    result, events = run_with_events(op, interval=(start, start + timedelta(days=1)))
    assert [e["source_alias_name"] for e in events] == ["cplugin:mt5_deals"]
    (event,) = events
    assert event["dest_asset_key"]["uri"] == f"{landing}/entity=mt5_deals"
    file = result["files"][0]["path"]
    rows = pq.read_metadata(file.removeprefix("file://")).num_rows
    assert rows > 0
    assert event["extra"] == {
        "entity": "mt5_deals",
        "rows": rows,
        "files": [file],
        "trade_platform": connections.mt5_trade_platform,
        "platform_type": "MT5",
        "data_interval_start": start.isoformat(),
        "data_interval_end": (start + timedelta(days=1)).isoformat(),
        "schema_fingerprint": schema_fingerprint(MT5_DEAL.arrow_schema),
    }


def test_users_event_counts_what_the_emulator_served(
    connections: EmulatorProcess, dataset: Dataset, landing: str
) -> None:
    result, events = run_with_events(UsersSnapshotOperator(task_id="u", output_path=landing))
    (event,) = events
    assert event["source_alias_name"] == "cplugin:mt4_users"
    assert event["extra"]["rows"] == dataset.mt4_user_count == 3000
    assert event["extra"]["platform_type"] == "MT4"
    # The fingerprint is the schema of the file as written (read back), not only of the declaration.
    written = pq.read_schema(result["path"].removeprefix("file://"))
    assert (
        event["extra"]["schema_fingerprint"] == schema_fingerprint(written) == schema_fingerprint(MT4_USER.arrow_schema)
    )


def test_templated_output_path_emits_for_the_rendered_location(connections: EmulatorProcess, landing: str) -> None:
    op = UsersSnapshotOperator(task_id="t", output_path="{{ params.lake }}", trade_platform=None)
    op.output_path = landing  # what rendering the template gives at run time
    _, events = run_with_events(op)
    assert [e["dest_asset_key"]["uri"] for e in events] == [f"{landing}/entity=mt4_users"]


def test_a_failed_landing_emits_nothing(connections: EmulatorProcess, landing: str) -> None:
    bad = json.dumps({"data": [{"login": "not-a-login"}], "error": None, "meta": {"activityId": "c" * 32}})
    connections.set_faults([{"path": "UsersRequest", "status": 200, "body": bad, "times": 1}])
    events = OutletEventAccessors()
    try:
        with pytest.raises(SchemaDriftError):
            run_with_events(UsersSnapshotOperator(task_id="bad", output_path=landing), events)
    finally:
        connections.set_faults([])
    assert list(_serialize_outlet_events(events)) == []


# -- a real deployment path: airflow dags test, events and queued consumer runs in Airflow's database -------------


PRODUCER = """
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_provider_cplugin.assets import entity_asset
from airflow_provider_cplugin.operators.trade_history import TradeHistoryOperator
from airflow_provider_cplugin.parquet.schemas import MT4_TRADE_HISTORY, MT4_USER, MT5_DEAL

LAKE = {lake!r}
START = pendulum.datetime(2026, 1, 1, tz="UTC")
with DAG("producer", schedule=None, start_date=START, params={{"lake": LAKE}}):
    # Mapped over the broker's trade platforms (MT4 and MT5) with a templated landing path: both used to lose
    # their outlets.
    TradeHistoryOperator.partial(
        task_id="history", output_path="{{{{ params.lake }}}}", incremental=False,
        interval_start={start!r}, interval_end={end!r},
    ).expand(trade_platform=[{mt4!r}, {mt5!r}])

for entity in (MT4_TRADE_HISTORY, MT5_DEAL, MT4_USER):
    with DAG(f"consumer_{{entity.name}}", schedule=[entity_asset(LAKE, entity)], start_date=START):
        EmptyOperator(task_id="noop")
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowSandbox, Path, str]]:
    root = tmp_path_factory.mktemp("assets_sandbox")
    with EmulatorProcess(users=300, mt5_users=100, seed=5) as emulator:
        hour = datetime.fromtimestamp(emulator.anchor, UTC).replace(minute=0, second=0, microsecond=0)
        lake = f"file://{root / 'landing'}"
        dags = root / "dags"
        dags.mkdir()
        (dags / "producer.py").write_text(
            textwrap.dedent(PRODUCER).format(
                lake=lake, mt4=emulator.mt4_trade_platform, mt5=emulator.mt5_trade_platform,
                start=(hour - timedelta(hours=6)).isoformat(), end=(hour - timedelta(hours=2)).isoformat(),
            )
        )  # fmt: skip
        box = AirflowSandbox(
            root=root,
            dags_folder=dags,
            connections={"cplugin_default": emulator.connection_json()},
            landing_path=lake,
            extra_env={
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(root / "openlineage.jsonl"), "append": True}
                ),
                "AIRFLOW__OPENLINEAGE__NAMESPACE": "assets-test",
            },
        )
        box.migrate()
        box._airflow("dags", "reserialize", timeout=300, log_name="reserialize")
        box.dags_test("producer", "2026-11-20")
        yield box, root, lake


def query(box: AirflowSandbox, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(box.home / "airflow.db") as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
def test_mapped_templated_history_triggers_exactly_the_consumers_of_what_landed(
    deployed: tuple[AirflowSandbox, Path, str],
) -> None:
    box, _, lake = deployed
    events = query(
        box,
        "select a.uri, e.source_task_id, e.source_map_index, e.extra from asset_event e "
        "join asset a on a.id = e.asset_id order by e.source_map_index",
    )
    assert [(uri, task, index) for uri, task, index, _ in events] == [
        (f"{lake}/entity=mt4_trade_history", "history", 0),
        (f"{lake}/entity=mt5_deals", "history", 1),
    ]
    for (_, _, _, extra), platform_type in zip(events, ("MT4", "MT5"), strict=True):
        extra = json.loads(extra)
        (file,) = extra["files"]
        assert extra["platform_type"] == platform_type
        assert extra["rows"] == pq.read_metadata(file.removeprefix("file://")).num_rows
    queued = query(box, "select target_dag_id from asset_dag_run_queue order by target_dag_id")
    assert queued == [("consumer_mt4_trade_history",), ("consumer_mt5_deals",)]  # not consumer_mt4_users


@pytest.mark.slow
def test_openlineage_reports_the_committed_files_never_a_temporary(deployed: tuple[AirflowSandbox, Path, str]) -> None:
    _, root, _ = deployed
    events = [json.loads(line) for line in (root / "openlineage.jsonl").read_text().splitlines() if line.strip()]
    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "producer.history"]
    assert len(complete) == 2, [e["job"]["name"] for e in events]
    landed = sorted(str(p) for p in (root / "landing").rglob("*.parquet"))
    outputs = sorted(o["name"] for e in complete for o in e["outputs"])
    assert outputs == landed and all(o["namespace"] == "file" for e in complete for o in e["outputs"])
    text = json.dumps(events)
    assert ".inprogress" not in text and "/." not in "".join(outputs)
    by_entity = {e["inputs"][0]["name"]: e for e in complete}
    assert set(by_entity) == {"mt4_trade_history", "mt5_deals"}
    for entity, event in by_entity.items():
        (output,) = event["outputs"]
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == pq.read_metadata(output["name"]).num_rows
        schema = {f["name"]: f["type"] for f in output["facets"]["schema"]["fields"]}
        declared = MT4_TRADE_HISTORY if entity == "mt4_trade_history" else MT5_DEAL
        assert schema == {f.name: str(f.type) for f in declared.arrow_schema}
        assert event["inputs"][0]["namespace"].startswith("cplugin://127.0.0.1:")
