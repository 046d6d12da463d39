"""The watcher example DAGs: they parse with their watchers attached and serializable, the risk DAG reads the
logins from the asset events, and its snapshot lands exactly the emulator's open trades of those accounts."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE, Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.triggers.hub_event import HubCaptureTrigger, HubEventTrigger

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


@pytest.fixture(scope="module")
def bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLES))  # as Airflow does for its DAGs folder (reporting imports a sibling)
        return DagBag(dag_folder=str(EXAMPLES))


def assets_of(dag: Any) -> list[Any]:
    return list(dag.timetable.asset_condition.objects)


def test_watcher_dags_parse_with_their_watchers(bag: Any) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    assert bag.import_errors == {}
    (margin,) = assets_of(bag.dags["cplugin_margin_call_risk"])
    (watcher,) = margin.watchers
    assert isinstance(watcher.trigger, HubEventTrigger) and watcher.trigger.debounce_s == 300
    (ticks,) = assets_of(bag.dags["cplugin_tick_batches"])
    assert [type(w.trigger) for w in ticks.watchers] == [HubCaptureTrigger, HubCaptureTrigger]
    assert {w.trigger.spec.args for w in ticks.watchers} == {("EURUSD",), ("GBPUSD",)}
    for dag_id in ("cplugin_margin_call_risk", "cplugin_tick_batches"):
        text = json.dumps(DagSerialization.to_dict(bag.dags[dag_id]))
        assert "triggers.hub_event.Hub" in text  # the watchers travel with the serialized DAG
    # Kwargs re-create the same trigger (what the triggerer does), and hold no secret.
    classpath, kwargs = watcher.trigger.serialize()
    assert HubEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert "secret" not in json.dumps(kwargs) and "password" not in json.dumps(kwargs)


def load_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_risk_dag_snapshots_the_accounts_of_the_triggering_events(
    bag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_module("cplugin_margin_call_watch")
    dag = module.cplugin_margin_call_risk()
    with EmulatorProcess(users=300, seed=9) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", emu.connection_json())
        monkeypatch.setenv("CPLUGIN_LANDING_PATH", f"file://{tmp_path}")
        ds = Dataset(EmulatorConfig(seed=9, mt4_users=300))
        owners = sorted({ds.mt4_trade_owner(x) for x in range(20)})[:3]  # accounts with open trades
        payloads = [
            {"trade_platform": emu.mt4_trade_platform, "key": {"login": MT4_LOGIN_BASE + u},
             "event": {"login": MT4_LOGIN_BASE + u, "group": ds.mt4_user_group(u).name, "level": 40.0 + n,
                       "levelType": 1}, "outages": []}
            for n, u in enumerate(owners)
        ]  # fmt: skip
        payloads.append(payloads[0])  # the same account twice in one run: snapshotted once
        events = {module.MARGIN_CALLS: [SimpleNamespace(extra={"from_trigger": True, "payload": p}) for p in payloads]}
        accounts = dag.get_task("affected_accounts").python_callable(triggering_asset_events=events)
        assert [a["login"] for a in accounts] == [MT4_LOGIN_BASE + u for u in owners]
        # An asset-triggered run's context has no logical_date key at all (Airflow 3.3; the e2e run found it).
        context = {"ti": SimpleNamespace(dag_id=dag.dag_id, task_id="snapshot_accounts"), "run_id": "asset__r1"}
        monkeypatch.setattr(module, "get_current_context", lambda: context)
        summary = dag.get_task("snapshot_accounts").python_callable(accounts)
    expected = sorted(ds.mt4_open_trade(j)["order"] for u in owners for j in ds.mt4_open_trade_indexes(u))
    trades = pq.read_table(summary["files"]["mt4_open_trades"]["path"].removeprefix("file://"))
    assert sorted(trades.column("order").to_pylist()) == expected and summary["trades"] == len(expected) > 0
    levels = pq.read_table(summary["files"]["mt4_margin_levels"]["path"].removeprefix("file://"))
    assert sorted(levels.column("login").to_pylist()) == [MT4_LOGIN_BASE + u for u in owners]


async def test_compaction_dag_gathers_the_hours_captured_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS

    module = load_module("cplugin_tick_capture")
    dag = module.cplugin_tick_compaction()
    monkeypatch.setenv("CPLUGIN_LANDING_PATH", f"file://{tmp_path}")
    with EmulatorProcess(users=300, seed=9) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", emu.connection_json())
        emu.hub_config(rates={"ticks": 2000})
        capture = HubCaptureTrigger(
            stream="StreamTicks:EURUSD", platform_type="MT4", name=f"{module.CAPTURE}_EURUSD", roll_s=0.5,
            roll_rows=150, sequences="airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences",
        )  # fmt: skip
        landed: list[dict[str, Any]] = []
        events = capture.run()
        async with asyncio.timeout(60):
            async for event in events:
                landed.append(event.payload)
                if len(landed) >= 3:
                    break
        await events.aclose()  # type: ignore[attr-defined]
        (record,) = [r for r in emu._control("GET", "hub-stats")["streams"] if r["target"] == "StreamTicks"]
    # An unrelated file of the same entity (a hub sample's batch) is not the capture's: not compacted.
    source = landed[0]["path"].removeprefix("file://")
    shutil.copyfile(source, Path(source).with_name("dag__sample__x__b00000.parquet"))
    first = datetime.fromisoformat(landed[0]["first_event_at"])
    start = first.replace(minute=0, second=0, microsecond=0)
    context = {"logical_date": start + timedelta(hours=1, minutes=10)}
    monkeypatch.setattr(module, "get_current_context", lambda: context)
    summary = dag.get_task("compact_previous_hour").python_callable()
    (platform,) = summary["platforms"].values()
    table = pq.read_table(platform["path"].removeprefix("file://"))
    captured = pq.read_table([p["path"].removeprefix("file://") for p in landed])
    in_hour = [s for s, t in zip(captured.column("_sequence").to_pylist(), captured.column("_received_at").to_pylist(),
                                 strict=True) if start <= t < start + timedelta(hours=1)]  # fmt: skip
    assert sorted(table.column("_sequence").to_pylist()) == in_hour
    if datetime.fromisoformat(landed[-1]["last_event_at"]) < start + timedelta(hours=1):  # no hour boundary crossed
        first_k = record["first_index"] // N_SYMBOLS
        assert in_hour == list(range(first_k, first_k + len(in_hour)))  # every tick the emulator sent, once
    assert platform["files_read"] == len(landed) and datetime.now(UTC) > start
