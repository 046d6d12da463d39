"""The example DAGs as a user runs them: DagBag import, then real `airflow dags test` runs against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.parquet.schemas import MT4_USER
from airflow_provider_cplugin.sandbox import AirflowSandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples"


def test_dagbag_imports_every_example_without_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.syspath_prepend(str(EXAMPLES))  # as Airflow does for its DAGs folder (reporting imports a sibling)
    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "cplugin_users_snapshot",
        "cplugin_daily_snapshots",
        "cplugin_daily_datasets",
        "cplugin_hourly_history",
        "cplugin_warehouse_load",
        "cplugin_reporting",
        "cplugin_realtime_sample",
        "cplugin_margin_call_risk",
        "cplugin_tick_batches",
        "cplugin_tick_compaction",
        "cplugin_platform_users",
        "cplugin_platform_users_report",
    }
    for dag in bag.dags.values():
        assert "cplugin" in dag.tags


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowSandbox, EmulatorProcess, Path]]:
    root = tmp_path_factory.mktemp("sandbox")
    with EmulatorProcess(users=2500, mt5_users=500, seed=3) as emulator:
        box = AirflowSandbox(
            root=root,
            dags_folder=EXAMPLES,
            connections={
                "cplugin_default": emulator.connection_json(),
                "cplugin_mt5": emulator.connection_json(emulator.mt5_trade_platform),
            },
            landing_path=f"file://{root / 'landing'}",
            extra_env={
                "CPLUGIN_WAREHOUSE": str(root / "warehouse" / "w.duckdb"),
                "AIRFLOW_VAR_CPLUGIN_SAMPLE_WINDOW": "4",
            },
        )
        box.migrate()
        yield box, emulator, root / "landing"


@pytest.mark.slow
def test_users_snapshot_dag_lands_typed_parquet(sandbox: tuple[AirflowSandbox, EmulatorProcess, Path]) -> None:
    box, emulator, landing = sandbox
    output = box.dags_test("cplugin_users_snapshot", "2026-11-20")
    assert emulator.client_secret not in output  # never logged
    files = list((landing / "entity=mt4_users").rglob("*.parquet"))
    assert [f.name for f in files] == ["cplugin_users_snapshot__mt4_users_snapshot__20261120T000000.parquet"]
    table = pq.read_table(files[0])
    assert table.num_rows == 2500
    assert table.schema.equals(MT4_USER.arrow_schema, check_metadata=False)
    assert "date=2026-11-20" in str(files[0])


def run_history_hour(box: AirflowSandbox, emulator: EmulatorProcess) -> tuple[datetime, datetime]:
    """Run the hourly history DAG for an hour well before the emulator's clock; returns its data interval."""
    hour = (datetime.fromtimestamp(emulator.anchor, UTC) - timedelta(hours=3)).replace(
        minute=0, second=0, microsecond=0
    )
    box.dags_test("cplugin_hourly_history", hour.isoformat())
    # A manual run (``dags test``) of a cron data-interval timetable covers the last whole interval before it.
    return hour - timedelta(hours=1), hour


@pytest.mark.slow
def test_history_dag_loads_exactly_its_hour(sandbox: tuple[AirflowSandbox, EmulatorProcess, Path]) -> None:
    box, emulator, landing = sandbox
    start, end = run_history_hour(box, emulator)
    for entity, column in (("mt4_trade_history", "close_time"), ("mt5_deals", "time")):
        files = list((landing / f"entity={entity}").rglob("*.parquet"))
        assert len(files) == 1, files
        times = pq.read_table(files[0]).column(column).to_pylist()
        assert times and all(start <= t < end for t in times), (entity, min(times), max(times))


@pytest.mark.slow
def test_snapshots_warehouse_and_report_dags_chain(sandbox: tuple[AirflowSandbox, EmulatorProcess, Path]) -> None:
    import duckdb

    box, emulator, _ = sandbox
    box.dags_test("cplugin_daily_snapshots", "2026-11-20")
    run_history_hour(box, emulator)
    box.dags_test("cplugin_warehouse_load", "2026-11-20")
    box.dags_test("cplugin_reporting", "2026-11-20")
    warehouse = Path(box.extra_env["CPLUGIN_WAREHOUSE"])
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("mt4_users", "mt4_open_trades")}
        history = con.execute('select count(*), count(distinct "order") from mt4_trade_history').fetchone()
        summary = con.execute("select count(*) from report_trading_summary").fetchone()[0]
    finally:
        con.close()
    assert counts["mt4_users"] == 2500 and counts["mt4_open_trades"] > 0
    assert history[0] > 0 and history[0] == history[1]  # loaded history has no duplicate orders
    reports = warehouse.parent / "reports"
    csv_lines = (reports / "trading_summary.csv").read_text().splitlines()
    assert summary > 0 and len(csv_lines) == summary + 1  # header + one line per summary row
    assert (reports / "trading_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_deferrable_sensor_defers_then_resumes(
    sandbox: tuple[AirflowSandbox, EmulatorProcess, Path], tmp_path: Path
) -> None:
    box, _, _ = sandbox
    deferral = AirflowSandbox(
        root=box.root,
        dags_folder=Path(__file__).parent / "deferral",
        connections=box.connections,
    )
    output = deferral.dags_test("cplugin_deferral_check", "2026-11-20")
    assert "deferred" in output.lower()
    # Logged only by execute_complete, i.e. after the trigger fired and the task resumed on the worker.
    assert "Condition met: server time" in output


@pytest.mark.slow
def test_realtime_dag_defers_samples_and_lands_batches(
    sandbox: tuple[AirflowSandbox, EmulatorProcess, Path],
) -> None:
    box, emulator, landing = sandbox
    output = box.dags_test("cplugin_realtime_sample", "2026-11-20T10:05:00+00:00")
    assert "deferred" in output.lower() and emulator.client_secret not in output
    ticks = list((landing / "entity=hub_ticks").rglob("*.parquet"))
    margins = list((landing / "entity=hub_mt4_margin_calls").rglob("*.parquet"))
    assert ticks and margins
    symbols = {s for f in ticks for s in pq.read_table(f).column("symbol").to_pylist()}
    assert symbols == {"EURUSD", "GBPUSD"}
    assert all(pq.read_metadata(f).num_rows > 0 for f in ticks + margins)
