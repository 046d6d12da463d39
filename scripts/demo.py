"""README demo: run the example DAGs against the bundled emulator and show what landed.

Starts the WebAPI emulator in its own process on loopback, makes a throwaway Airflow home under ``.demo/``,
runs each example DAG with ``airflow dags test``, then prints every Parquet file that landed with its row count
and columns. Nothing here talks to the real service.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.sandbox import AirflowSandbox

ROOT = Path(__file__).resolve().parent.parent


# (dag id, logical date) in the order a user would read them.
def demo_runs(anchor: int) -> list[tuple[str, str]]:
    """The example DAGs in the order a user would read them; history runs take the two hours before ``anchor``
    (the emulator's "now"), so they are settled and hold trades."""
    hour = datetime.fromtimestamp(anchor, UTC) - timedelta(hours=2)
    day = (hour - timedelta(days=1)).strftime("%Y-%m-%d")
    return [
        ("cplugin_users_snapshot", day),
        ("cplugin_daily_snapshots", day),
        ("cplugin_daily_datasets", day),
        ("cplugin_hourly_history", hour.strftime("%Y-%m-%dT%H:00:00+00:00")),
        ("cplugin_hourly_history", (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00+00:00")),
        ("cplugin_warehouse_load", day),
        ("cplugin_reporting", day),
        ("cplugin_realtime_sample", hour.strftime("%Y-%m-%dT%H:00:00+00:00")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000, help="synthetic MT4 users in the emulator")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--sample-window", type=int, default=60, help="seconds of realtime sampling")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    landing = args.workdir / "landing"
    warehouse = args.workdir / "warehouse" / "cplugin.duckdb"
    with EmulatorProcess(users=args.users, mt5_users=args.users, seed=42) as emulator:
        print(f"Emulator of the CPlugin WebAPI running at {emulator.url} ({args.users} MT4 users)")
        sandbox = AirflowSandbox(
            root=args.workdir,
            dags_folder=ROOT / "dags_examples",
            connections={
                "cplugin_default": emulator.connection_json(),
                "cplugin_mt5": emulator.connection_json(emulator.mt5_trade_platform),
            },
            landing_path=f"file://{landing}",
            extra_env={
                "CPLUGIN_WAREHOUSE": str(warehouse),
                "AIRFLOW_VAR_CPLUGIN_SAMPLE_WINDOW": str(args.sample_window),
            },
        )
        print(f"Airflow home: {sandbox.home} (SQLite; logs in {args.workdir / 'logs'})")
        sandbox.migrate()
        for dag_id, logical_date in demo_runs(emulator.anchor):
            started = time.monotonic()
            print(f"\n== airflow dags test {dag_id} {logical_date}")
            sandbox.dags_test(dag_id, logical_date)
            print(f"   success in {time.monotonic() - started:.1f} s")

    files = sorted(landing.rglob("*.parquet"))
    print(f"\nLanded {len(files)} Parquet file(s) under {landing}:")
    for path in files:
        meta = pq.read_metadata(path)
        columns = ", ".join(meta.schema.names[:8]) + (", ..." if meta.num_columns > 8 else "")
        print(f"  {path.relative_to(landing)}\n    rows={meta.num_rows} columns={meta.num_columns} [{columns}]")
    if not files:
        print("  nothing landed: see the logs above", file=sys.stderr)
        return 1
    print(f"\nWarehouse (DuckDB): {warehouse}")
    con = duckdb.connect(str(warehouse), read_only=True)
    for (table,) in con.execute("select table_name from information_schema.tables order by 1").fetchall():
        count = con.execute(f'select count(*) from "{table}"').fetchone()
        print(f"  {table}: {count[0] if count else 0} rows")
    con.close()
    reports = sorted((warehouse.parent / "reports").glob("*"))
    print("Reports for analysts:" if reports else "No reports written.")
    for report in reports:
        print(f"  {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
