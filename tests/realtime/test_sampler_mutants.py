"""Sampler accounting a plausible bug would break unseen by the other realtime tests (found by `make mutate`,
docs/mutation.md). Every received event is landed or counted under exactly one reason."""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_cplugin.realtime.events import RS, RawItems
from airflow_provider_cplugin.realtime.gaps import GapRecord
from airflow_provider_cplugin.realtime.item_decode import Item
from airflow_provider_cplugin.realtime.sampler import RESTART, HubSampler, SampleRequest, StreamState, _missed


def _sampler() -> HubSampler:
    request = SampleRequest(
        cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=["StreamTicks"],
        window_end=time.time(), output_path="file:///tmp/x", run_name="run", partition_date="2026-11-24",
    )  # fmt: skip
    return HubSampler(request)


def _tick(partition: str, index: int) -> Item:
    return Item({"i": index}, time.time(), 1, (partition, index))


def _run(count: int) -> RawItems:
    text = "".join(f'{{"type":2,"invocationId":"0","item":{{"i":{i}}}}}{RS}' for i in range(count))
    return RawItems(text, count, time.time(), 1)


def test_after_a_restart_the_last_landed_event_sent_again_is_a_duplicate() -> None:
    sampler = _sampler()
    sampler.restart_gap = GapRecord(kind=RESTART, reason="restarted", started_at=0.0, connection=1)
    state = StreamState("StreamTicks", True, {"EURUSD": 5, "GBPUSD": 9})
    kept = sampler._after_restart([_tick("EURUSD", 4), _tick("EURUSD", 5), _tick("EURUSD", 8)], state)
    assert [e.sequence for e in kept] == [("EURUSD", 8)]
    assert state.duplicates == 2  # 4 and 5 were landed by the earlier instance
    assert sampler.restart_gap.missed == {"StreamTicks": 2}  # 6 and 7 were never received
    assert state.resume_last == {"GBPUSD": 9}  # EURUSD was seen again: its loss is known


class _EndedStream:
    """A stream that still hands out ``rest`` events (in two runs) after the stop, then ends when cancelled."""

    def __init__(self, rest: int) -> None:
        self.batches = [[_run(1), _run(rest - 1)]]
        self.active = True

    async def cancel(self, drain: bool = True, drain_s: float = 0.0) -> None:
        self.active = False

    async def get_raw(self, max_items: int = 10_000, wait_s: float | None = None) -> list[Any]:
        return self.batches.pop(0) if self.batches else []


class _LateLog:
    """Stands in for a BatchWriter: records the runs handed over for sequence tracking after the window."""

    def __init__(self) -> None:
        self.runs: list[Any] = []

    def observe_late(self, runs: list[Any]) -> None:
        self.runs.extend(runs)


async def test_events_drained_after_the_stop_are_counted_under_the_reason_of_the_stop() -> None:
    sampler = _sampler()
    by_limit, limit_log = StreamState("StreamTicks", False, {}, stopped_by="max_events"), _LateLog()
    await sampler._stop_stream(_EndedStream(3), by_limit, limit_log)  # type: ignore[arg-type]
    assert (by_limit.over_limit, by_limit.late) == (3, 0)
    assert limit_log.runs == []  # over the limit: not "after the window"
    by_window, window_log = StreamState("StreamTicks", False, {}, stopped_by="window"), _LateLog()
    await sampler._stop_stream(_EndedStream(4), by_window, window_log)  # type: ignore[arg-type]
    assert (by_window.over_limit, by_window.late) == (0, 4)
    assert sum(run.count for run in window_log.runs) == 4  # still sequence-tracked (restart accounting)


def test_a_partition_seen_again_only_after_the_window_has_a_known_loss() -> None:
    """After a restart, a partition whose next event arrives after the window: not landed, not a duplicate, but its
    sequence closes the restart gap (found when late items skipped the tracker: the stream was listed unsequenced)."""
    sampler = _sampler()
    sampler.restart_gap = GapRecord(kind=RESTART, reason="restarted", started_at=0.0, connection=2)
    state = StreamState("StreamTicks", True, {"EURUSD": 5, "GBPUSD": 9})
    kept = sampler._after_restart([_tick("EURUSD", 5), _tick("EURUSD", 9)], state, late=True)
    assert [e.sequence for e in kept] == [("EURUSD", 9)]
    assert state.duplicates == 0  # a late item is counted once, as after the window
    assert sampler.restart_gap.missed == {"StreamTicks": 3}  # 6, 7 and 8 were never received
    assert state.resume_last == {"GBPUSD": 9}


def test_a_stream_unsequenced_in_any_gap_has_an_unknown_loss() -> None:
    gaps = [{"missed": {"B": 1}, "unsequenced": ["A"]}, {"missed": {"A": 3, "B": 2}, "unsequenced": []}]
    assert _missed(gaps, ["A", "B", "C"]) == {"A": None, "B": 3, "C": 0}
