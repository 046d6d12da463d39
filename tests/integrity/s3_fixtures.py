"""A real S3-protocol server on loopback (``moto_server``) and Airflow connections pointing at it.

The fixtures are registered once, in ``tests/integrity/conftest.py``. The landing goes through
the Amazon provider's S3 filesystem exactly as in a deployment; the tests read the truth back with a separate
boto3 client, never through the code under test.

* ``AIRFLOW_CONN_S3_MOTO``: an ``aws`` connection (dummy keys, ``endpoint_url`` extra) for ``output_conn_id``.
* The plain ``s3://bucket/...`` URL (no connection id) uses boto3's default chain, so the process environment
  points it at the server too (``AWS_ENDPOINT_URL`` and dummy keys), and ``aws_default`` is defined likewise.
"""

from __future__ import annotations

import collections
import io
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

S3_CONN_ID = "s3_moto"
_RUNNING = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class MotoS3:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def connection_json(self) -> str:
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """``moto_server`` on 127.0.0.1 with a port it picks itself (read from its startup line: no port race)."""
    server = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    seen = []
    endpoint = None
    for line in proc.stderr:  # werkzeug announces the bound address once it listens
        seen.append(line)
        found = _RUNNING.search(line)
        if found:
            endpoint = found.group(1)
            break
    if endpoint is None:
        proc.kill()
        raise RuntimeError(f"moto_server did not start: {''.join(seen)[-2000:]}")
    # Keep draining its request log: a full pipe would block the server mid-request.
    threading.Thread(target=collections.deque, args=(proc.stderr, 200), daemon=True).start()
    moto = MotoS3(endpoint)
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": moto.connection_json(),
        "AIRFLOW_CONN_AWS_DEFAULT": moto.connection_json(),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            yield moto
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(moto_s3: MotoS3) -> str:
    """A fresh bucket per test."""
    name = f"landing-{uuid.uuid4().hex[:12]}"
    moto_s3.client().create_bucket(Bucket=name)
    return name


def s3_keys(moto: MotoS3, bucket: str) -> list[str]:
    """Every object key in the bucket, listed by a client independent of the code under test."""
    pages = moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def s3_table(moto: MotoS3, bucket: str, key: str) -> pa.Table:
    body = moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def child_env() -> dict[str, str]:
    """The environment for a child process running an operator (connections, AWS settings, this tree)."""
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
