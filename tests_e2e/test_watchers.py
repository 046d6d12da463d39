"""End-to-end: hub watchers drive DAG runs on the deployment, and continuous capture survives a triggerer kill.

Uses the session ``stack`` of ``conftest.py`` like ``test_deployment.py`` (it also runs alone); it unpauses the
watcher DAGs itself. Latency is measured from the time the emulator *scheduled* the margin-call event (its feed
clock: the event at index ``i`` is due at ``clock.ticks_of(i)`` and sent within ``batch_interval_s``) to the
asset event's ``timestamp`` (the triggerer's part), to the DagRun's ``queued_at`` (+ the scheduler's part) and
``start_date``. The risk snapshots are held against the emulator's data set (the open trades it serves for the
triggering logins); the sequenced capture (``tests_e2e/dags/e2e_tick_capture_sequenced.py``) against the feed's
indexes: every tick between the first and the last landed one is landed once or reported missed.
"""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import datetime
from typing import Any

import pytest
from conftest import MEASURES
from stack import BUCKET, Stack, StackError, wait_for

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS, SYMBOL_INDEX, TICKS_PER_S, FeedClock, MarginCallFeed

pytestmark = pytest.mark.timeout(900)

RISK = "cplugin_margin_call_risk"
MARGIN_ASSET = "cplugin_mt4_margin_calls"
BATCHES = "cplugin_tick_batches"
SEQUENCED = "e2e_sequenced_tick_batches"
RUNS = 20  # risk runs to measure
P50_S, P99_S = 2.0, 5.0


def unpause(stack: Stack, dag_id: str) -> None:
    """Unpause once the DAG processor has parsed it (this file may run right after the stack came up)."""

    def patched() -> dict[str, Any] | None:
        stack._check_all()
        try:
            result: dict[str, Any] = stack.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        except StackError as err:
            if "HTTP 404" in str(err):
                return None
            raise
        return result

    assert wait_for(f"{dag_id} parsed", patched, 180, 1)["is_paused"] is False


def watcher_running(stack: Stack, asset: str) -> bool:
    rows = stack.sql(
        "select t.id from asset_watcher w join trigger t on t.id = w.trigger_id join asset a on a.id = w.asset_id"
        " where a.name = %s and t.triggerer_id is not null",
        (asset,),
    )
    return bool(rows)


class MarginFeed:
    """The emulator's margin-call feed (deterministic), to find the item an asset event's payload was made from."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.dataset = Dataset(EmulatorConfig(**config["dataset"]))
        self.feed = MarginCallFeed(self.dataset)
        self.clock = FeedClock.from_dict(config["feeds"]["margin_calls"])

    def item(self, payload: dict[str, Any]) -> tuple[int, float]:
        """(feed index, time the emulator scheduled it) of the item this payload was made from."""
        event, clock = payload["event"], self.clock
        around = clock.index_at(int(payload["received_at"] * TICKS_PER_S))
        for i in range(around, max(around - 2000, clock.base_index - 1), -1):
            item = self.feed.item(clock, i)
            if (item["login"], item["equity"], item["level"]) == (event["login"], event["equity"], event["level"]):
                return i, clock.ticks_of(i) / TICKS_PER_S
        raise AssertionError(f"no emulator margin-call item matches {event}")


def assert_debounced(payloads: list[dict[str, Any]], seconds: float = 300) -> None:
    """A login fires at most once per debounce window (the example's 5 minutes)."""
    fired: dict[int, list[float]] = {}
    for payload in payloads:
        fired.setdefault(int(payload["key"]["login"]), []).append(payload["received_at"])
    for login, stamps in fired.items():
        assert all(b - a >= seconds for a, b in itertools.pairwise(sorted(stamps))), f"login {login} fired twice"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def quantiles(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} s, p99 {percentile(values, 0.99):.2f} s"


def scheduler_between(stack: Stack, start: float, end: float) -> str:
    """What the scheduler did while an asset event waited for its DagRun: its loops that saw queued asset events,
    the runs it held back at ``max_active_runs``, and its longest silence (a stalled loop)."""
    stamps, seen, deferred = [], 0, 0
    for line in (stack.workdir / "components" / "scheduler.log").read_text(errors="replace").splitlines():
        try:
            at = datetime.fromisoformat(line[:27].replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if start <= at <= end:
            stamps.append(at)
            seen += RISK in line and "Asset-triggered Dags with queued events" in line
            deferred += RISK in line and "at max_active_runs, deferring" in line
    silence = max((b - a for a, b in itertools.pairwise([start, *stamps, end])), default=end - start)
    return (
        f"{end - start:.2f} s: {seen} scheduler loop(s) saw the queued event, {deferred} deferral(s) at"
        f" max_active_runs, longest scheduler-log silence {silence:.2f} s"
    )


def open_orders(dataset: Dataset, logins: list[int]) -> set[int]:
    """What the emulator serves as the open trades of these logins (``TradesGetByLogin``)."""
    orders = set()
    for login in logins:
        index = dataset.mt4_user_index(login)
        assert index is not None, login
        orders |= {int(dataset.mt4_open_trade(j)["order"]) for j in dataset.mt4_open_trade_indexes(index)}
    return orders


def test_margin_call_starts_the_risk_dag(stack: Stack) -> None:
    main = stack.emulators["main"]
    feed = MarginFeed(main.hub_config())
    unpause(stack, RISK)
    wait_for("the margin-call watcher's trigger to run in the triggerer",
             lambda: stack._check_all() and watcher_running(stack, MARGIN_ASSET), 180)  # fmt: skip

    def runs() -> list[tuple[Any, ...]] | None:
        stack._check_all()
        rows = stack.sql(
            "select dr.id, dr.run_id, dr.queued_at, dr.start_date, dr.state, dr.run_type, e.extra, e.timestamp"
            " from dag_run dr join dagrun_asset_event dre on dre.dag_run_id = dr.id"
            " join asset_event e on e.id = dre.event_id where dr.dag_id = %s order by dr.id, e.timestamp",
            (RISK,),
        )
        done = {r[0] for r in rows if r[4] in ("success", "failed")}
        return rows if len(done) >= RUNS else None

    rows = wait_for(f"{RUNS} finished {RISK} runs", runs, 600, 2)
    first_event: dict[int, tuple[Any, ...]] = {}
    # Runs still queued or running when the wait ended count for latency, not for the outputs they have not written yet.
    finished = {r[0] for r in rows if r[4] == "success"}
    for run_pk, run_id, queued_at, started_at, state, run_type, extra, logged_at in rows:
        assert state != "failed", (run_pk, state)
        assert run_type == "asset_triggered", (run_pk, run_type)
        first_event.setdefault(run_pk, (run_id, queued_at, started_at, extra["payload"], logged_at))
    to_queued, to_event, event_to_queued, to_started = [], [], [], []
    for _, queued_at, started_at, payload, logged_at in first_event.values():
        sent = feed.item(payload)[1]
        to_queued.append(queued_at.timestamp() - sent)
        to_event.append(logged_at.timestamp() - sent)
        event_to_queued.append(queued_at.timestamp() - logged_at.timestamp())
        if started_at is not None:
            to_started.append(started_at.timestamp() - sent)
        assert payload["event"]["levelType"] in (1, 2)  # the filter: MarginCall or StopOut only
    p50, p99 = statistics.median(to_queued), percentile(to_queued, 0.99)
    print(
        f"\n[e2e] over {len(to_queued)} runs: margin call sent -> asset event stored {quantiles(to_event)};"
        f" asset event -> DagRun queued {quantiles(event_to_queued)}; sent -> DagRun queued {quantiles(to_queued)};"
        f" sent -> DagRun running {quantiles(to_started) if to_started else '-'}"
    )
    # Reported, not asserted: a wall time on a shared CI machine is a measurement (the "e2e timings" section shows it
    # against the targets), while every run above must exist, be asset-triggered and succeed.
    met = "met" if p50 < P50_S and p99 < P99_S else "MISSED"
    MEASURES[f"margin call -> DagRun queued p50 / p99 (targets {P50_S:.0f} / {P99_S:.0f} s)"] = (
        f"{p50:.2f} / {p99:.2f} s over {len(to_queued)} runs: {met}"
    )
    slowest = max(first_event.values(), key=lambda v: v[1].timestamp() - v[4].timestamp())
    MEASURES["slowest asset event -> DagRun queued, from the scheduler log"] = scheduler_between(
        stack, slowest[4].timestamp(), slowest[1].timestamp()
    )

    # Every risk run snapshotted the open trades of exactly its triggering logins, as the emulator serves them.
    from test_deployment import read_object, xcom

    dataset = feed.dataset
    checked = 0
    for run_pk, (run_id, *_rest) in first_event.items():
        if run_pk not in finished:
            continue
        logins = sorted({int(r[6]["payload"]["event"]["login"]) for r in rows if r[0] == run_pk})
        summary = xcom(stack, RISK, run_id, "snapshot_accounts")
        assert sorted(summary["accounts"]) == logins  # the DAG orders them by margin level
        key = summary["files"]["mt4_open_trades"]["path"].split(f"{BUCKET}/", 1)[-1]
        table = read_object(stack, key)
        orders = table.column("order").to_pylist()
        assert len(orders) == len(set(orders)) == summary["trades"]
        assert set(orders) == open_orders(dataset, logins), run_id
        checked += 1
    assert checked >= RUNS
    assert_debounced([r[6]["payload"] for r in rows])
    stack.api("PATCH", f"/api/v2/dags/{RISK}", {"is_paused": True})


def asset_payloads(stack: Stack, asset: str) -> list[dict[str, Any]]:
    rows = stack.sql(
        "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = %s order by e.id", (asset,)
    )
    return [r[0]["payload"] for r in rows]


def margin_events(stack: Stack) -> list[tuple[dict[str, Any], float]]:
    """The margin-call watcher's asset events: (payload, stored at), oldest first."""
    rows = stack.sql(
        "select e.extra, e.timestamp from asset_event e join asset a on a.id = e.asset_id where a.name = %s"
        " order by e.id",
        (MARGIN_ASSET,),
    )
    return [(extra["payload"], stored.timestamp()) for extra, stored in rows]


def test_capture_keeps_landing_across_a_triggerer_kill(stack: Stack) -> None:
    """``kill -9`` the triggerer while the tick captures run: they resume, report the outage as a restart gap in the
    next batch's event, never land a file twice, and every landed batch got exactly one asset event. The sequenced
    capture accounts for every tick: landed once, or reported missed. The margin-call watcher runs in the same
    triggerer: it resumes from its watermark (no emulator item fires twice, debounce windows kept) and its first
    event after the kill reports the restart outage around the kill."""
    unpause(stack, BATCHES)
    unpause(stack, SEQUENCED)
    unpause(stack, RISK)
    wait_for("the tick capture and margin-call watchers to run", lambda: stack._check_all()
             and watcher_running(stack, "cplugin_mt4_tick_batches")
             and watcher_running(stack, SEQUENCED)
             and watcher_running(stack, MARGIN_ASSET), 180)  # fmt: skip

    # roll_s is 60 in the example (10 in the sequenced one): two batches per symbol take about two minutes.
    def at_least(asset: str, count: int) -> bool | None:
        stack._check_all()
        return True if len(asset_payloads(stack, asset)) >= count else None

    wait_for("two batches per symbol", lambda: at_least("cplugin_mt4_tick_batches", 4), 400, 2)
    margins_before = len(margin_events(stack))
    wait_for("a margin call fired since the watcher (re)started", lambda: len(margin_events(stack)) > margins_before,
             120, 1)  # fmt: skip
    before = len(asset_payloads(stack, "cplugin_mt4_tick_batches"))
    sequenced_before = len(asset_payloads(stack, SEQUENCED))
    assert sequenced_before >= 2
    stack.services["triggerer"].kill9()
    killed_at = time.time()  # after it: every asset event stored later comes from the new triggerer
    stack.restart("triggerer")
    wait_for("batches after the restart", lambda: at_least("cplugin_mt4_tick_batches", before + 4), 600, 2)
    wait_for("sequenced batches after the restart", lambda: at_least(SEQUENCED, sequenced_before + 2), 120, 2)
    wait_for("a margin call fired after the restart",
             lambda: [p for p, stored in margin_events(stack) if stored > killed_at], 180, 2)  # fmt: skip
    for dag_id in (SEQUENCED, BATCHES, RISK):
        stack.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
    assert_watcher_resumed(stack, killed_at)
    from test_deployment import read_object

    for asset, prefix in (("cplugin_mt4_tick_batches", "/cplugin_ticks_"), (SEQUENCED, "/e2e_seq_ticks_")):
        events = asset_payloads(stack, asset)
        paths = [p["path"] for p in events]
        assert len(paths) == len(set(paths)), f"{asset}: a file was reported twice"
        landed = {k for k in stack.landing_objects("cplugin/entity=hub_ticks/") if prefix in k}
        assert {p.split(f"{BUCKET}/", 1)[-1] for p in paths} <= landed
        for payload in events:
            assert read_object(stack, payload["path"].split(f"{BUCKET}/", 1)[-1]).num_rows == payload["rows"]
    restarts = [g for p in asset_payloads(stack, "cplugin_mt4_tick_batches")
                for g in p["gaps"] if g["kind"] == "restart"]  # fmt: skip
    assert len(restarts) >= 2, restarts  # one per symbol's capture
    assert all(g["missed"] is None for g in restarts)  # the example has no sequence function: unknown, not 0

    # The sequenced capture: every landed file has one event; the ticks between the first and the last landed one
    # are each landed once or counted in a reported ``missed``.
    events = asset_payloads(stack, SEQUENCED)
    keys = sorted(k for k in stack.landing_objects("cplugin/entity=hub_ticks/") if "/e2e_seq_ticks_" in k)
    assert sorted(p["path"].split(f"{BUCKET}/", 1)[-1] for p in events) == keys, "a landed file without its event"
    indexes = [i for k in keys for i in read_object(stack, k).column("_sequence").to_pylist()]
    assert len(indexes) == len(set(indexes)), "a tick landed twice"
    missed = [p["missed"] for p in events]
    assert None not in missed, missed
    sent = max(indexes) - min(indexes) + 1
    restart = [g for p in events for g in p["gaps"] if g["kind"] == "restart"]
    print(
        f"\n[e2e] sequenced capture across the kill: {sent} ticks sent from the first to the last landed one,"
        f" {len(indexes)} landed in {len(keys)} files, {sum(missed)} reported missed; restart gap: {restart}"
    )
    assert sent == len(indexes) + sum(missed)
    assert len(restart) == 1 and restart[0]["missed"] is not None
    records = [r for r in main_records(stack) if r["target"] == "StreamTicks" and r["arguments"] == ["EURUSD"]]
    first = min(indexes) * N_SYMBOLS + SYMBOL_INDEX["EURUSD"]
    assert any(r["first_index"] == first for r in records), "the first landed tick is the first one sent"


def assert_watcher_resumed(stack: Stack, killed_at: float) -> None:
    """The margin-call watcher across the kill: every fire is a distinct emulator item (none fired again from the
    restored watermark), the debounce held across the restart, and the first fire after it reports the outage."""
    events = margin_events(stack)
    feed = MarginFeed(stack.emulators["main"].hub_config())
    items = [feed.item(payload)[0] for payload, _ in events]
    assert len(items) == len(set(items)), "an emulator margin-call item fired twice"
    assert_debounced([payload for payload, _ in events])
    first_after = next(payload for payload, stored in events if stored > killed_at)
    restarts = [o for o in first_after.get("outages", []) if o["kind"] == "restart"]
    assert any(o["started_at"] is not None and o["started_at"] <= killed_at <= o["ended_at"] for o in restarts), (
        killed_at,
        first_after,
    )
    print(f"\n[e2e] margin-call watcher across the kill: {len(events)} fires, restart outage reported: {restarts}")


def main_records(stack: Stack) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = stack.emulators["main"]._control("GET", "hub-stats")["streams"]
    return records
