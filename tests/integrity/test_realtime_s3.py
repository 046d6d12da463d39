"""The hub sample trigger landing on a real S3-protocol server from inside a running event loop, as in the
triggerer: the Amazon provider's S3 filesystem cannot be built on a thread that runs a loop (it calls
``asyncio.run``), so every storage call of the sampler must happen in a worker thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.triggers.hub_sample import HubSampleTrigger

from .s3_fixtures import S3_CONN_ID, MotoS3, s3_keys, s3_table


@pytest.fixture(scope="module")
def hub_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=5) as emu:
        yield emu


@pytest.mark.matrix(
    area="Storage",
    fault="hub sample landing on S3 from the triggerer's event loop (output_conn_id)",
    expected="every received event in S3 batch files, no temporary object",
)
async def test_hub_sample_lands_on_s3_from_an_event_loop(
    hub_emulator: EmulatorProcess, moto_s3: MotoS3, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", hub_emulator.connection_json())
    hub_emulator.hub_config(rates={"ticks": 2000})
    trigger = HubSampleTrigger(
        cplugin_conn_id="cplugin_default",
        trade_platform=hub_emulator.mt4_trade_platform,
        platform_type="MT4",
        streams=[{"method": "StreamTicks", "args": ["EURUSD"]}],
        window_end=time.time() + 12.0,
        output_path=f"s3://{s3_bucket}/cplugin",
        output_conn_id=S3_CONN_ID,
        run_name="dag__sample__20261124T000000",
        partition_date="2026-11-24",
        batch_rows=200,
        flush_interval=1.0,
    )
    events: list[dict[str, Any]] = [e.payload async for e in trigger.run()]
    (summary,) = events
    assert summary["status"] == "success", summary
    keys = s3_keys(moto_s3, s3_bucket)
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".")], keys  # no temporary left
    batches = [k for k in keys if k.endswith(".parquet")]
    assert len(batches) == len(summary["files"]) > 1
    landed = sum(s3_table(moto_s3, s3_bucket, k).num_rows for k in batches)
    assert landed == summary["total_events"] > 0
