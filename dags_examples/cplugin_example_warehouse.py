"""Shared by the warehouse-load and reporting examples: where the DuckDB warehouse lives and its Asset.

A plain module (no DAG in it), so both DAG files can import it without defining a DAG twice.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset

WAREHOUSE_ENV = "CPLUGIN_WAREHOUSE"


def warehouse_path() -> str:
    """``$CPLUGIN_WAREHOUSE`` or ``$AIRFLOW_HOME/data/cplugin_warehouse.duckdb``."""
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return os.environ.get(WAREHOUSE_ENV, os.path.join(home, "data", "cplugin_warehouse.duckdb"))


WAREHOUSE = Asset(uri=f"file://{warehouse_path()}", name="cplugin_warehouse")
