"""Shared by the warehouse-load and reporting examples: where the DuckDB warehouse lives and its Asset.

A plain module (no DAG in it), so both DAG files can import it without defining a DAG twice.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

WAREHOUSE_ENV = "CPLUGIN_WAREHOUSE"


def warehouse_path() -> str:
    """``$CPLUGIN_WAREHOUSE`` or ``$AIRFLOW_HOME/data/cplugin_warehouse.duckdb``."""
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return os.environ.get(WAREHOUSE_ENV, os.path.join(home, "data", "cplugin_warehouse.duckdb"))


WAREHOUSE = Asset(uri=f"file://{warehouse_path()}", name="cplugin_warehouse")


def _locked(err: BaseException) -> bool:
    return "Could not set lock" in str(err)


@retry(
    retry=retry_if_exception(_locked), wait=wait_random_exponential(0.5, 10), stop=stop_after_delay(600), reraise=True
)
def connect_warehouse() -> Any:
    """Open the warehouse, waiting while another process holds it: DuckDB allows one writing process at a time, and
    the load and the report (or two Asset-triggered loads on a distributed executor) may overlap."""
    import duckdb

    os.makedirs(os.path.dirname(warehouse_path()), exist_ok=True)
    return duckdb.connect(warehouse_path())
