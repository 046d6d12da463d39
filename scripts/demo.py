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
from pathlib import Path

import pyarrow.parquet as pq

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.sandbox import AirflowSandbox

ROOT = Path(__file__).resolve().parent.parent

# (dag id, logical date) in the order a user would read them.
DEMO_RUNS: list[tuple[str, str]] = [
    ("cplugin_users_snapshot", "2026-11-23"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000, help="synthetic MT4 users in the emulator")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    landing = args.workdir / "landing"
    with EmulatorProcess(users=args.users, seed=42) as emulator:
        print(f"Emulator of the CPlugin WebAPI running at {emulator.url} ({args.users} MT4 users)")
        sandbox = AirflowSandbox(
            root=args.workdir,
            dags_folder=ROOT / "dags_examples",
            connections={"cplugin_default": emulator.connection_json()},
            landing_path=f"file://{landing}",
        )
        print(f"Airflow home: {sandbox.home} (SQLite; logs in {args.workdir / 'logs'})")
        sandbox.migrate()
        for dag_id, logical_date in DEMO_RUNS:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
