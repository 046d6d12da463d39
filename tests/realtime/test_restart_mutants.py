"""A restarted sampler numbers its connections after every connection an earlier instance landed events from, even
when the manifest it finds is older than the files (killed between a batch and its checkpoint). Truth: the
``_connection`` column of the batch file on disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.sampler import HubSampler, SampleRequest

TICK = {"symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "lastTime": "2026-11-24T10:00:00Z"}


def sampler(tmp_path: Path) -> HubSampler:
    return HubSampler(SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4",
        streams=[{"method": "StreamTicks", "args": ["EURUSD"]}], window_end=time.time() + 60,
        output_path=f"file://{tmp_path}", run_name="run", partition_date="2026-11-24",
    ))  # fmt: skip


def test_connections_continue_after_the_files_when_the_manifest_is_older(tmp_path: Path) -> None:
    first = sampler(tmp_path)
    (writer,) = first._prepare().writers.values()
    text = "".join(json.dumps({"type": 2, "invocationId": "1", "item": TICK}) + RS for _ in range(3))
    landed, _, _ = writer._write_file([RawItems(text, 3, time.time(), 4)], 0)  # its 4th connection
    assert landed is not None
    on_disk = pq.read_table(landed["path"].removeprefix("file://")).column("_connection").to_pylist()
    assert on_disk == [4, 4, 4]
    assert first.manifest is not None
    first.manifest.parent.mkdir(parents=True, exist_ok=True)
    first.manifest.write_text(json.dumps({"status": "running", "connections": 2}))  # checkpointed before that batch
    plan = sampler(tmp_path)._prepare()
    assert plan.offset == max(on_disk)
    assert [w.connection_offset for w in plan.writers.values()] == [max(on_disk)]
