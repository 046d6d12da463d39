"""End-to-end: hub watchers drive DAG runs on the deployment, and continuous capture survives a triggerer kill.

Written by the ``events`` helper and NOT run by it (only the e2e helper runs the stack). Uses the session ``stack``
of ``conftest.py`` like ``test_deployment.py``; run after it (file order), it unpauses the watcher examples itself.
Latency is measured from the time the emulator *scheduled* the margin-call event (its feed clock: the event at
index ``i`` is due at ``clock.ticks_of(i)`` and sent within ``batch_interval_s``) to the DagRun's ``queued_at``.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime
from typing import Any

import pytest
from stack import BUCKET, Stack, wait_for

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.hubs.feeds import TICKS_PER_S, FeedClock, MarginCallFeed

pytestmark = pytest.mark.timeout(900)

RISK = "cplugin_margin_call_risk"
BATCHES = "cplugin_tick_batches"
RUNS = 20  # risk runs to measure
P50_S, P99_S = 2.0, 5.0


def unpause(stack: Stack, dag_id: str) -> None:
    assert stack.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})["is_paused"] is False


def watcher_running(stack: Stack, asset: str) -> bool:
    rows = stack.sql(
        "select t.id from asset_watcher w join trigger t on t.id = w.trigger_id join asset a on a.id = w.asset_id"
        " where a.name = %s and t.triggerer_id is not null",
        (asset,),
    )
    return bool(rows)


def margin_sent_at(config: dict[str, Any], payload: dict[str, Any]) -> float:
    """When the emulator scheduled the margin-call item this payload was made from (its feed is deterministic)."""
    feed = MarginCallFeed(Dataset(EmulatorConfig(**config["dataset"])))
    clock = FeedClock.from_dict(config["feeds"]["margin_calls"])
    event = payload["event"]
    around = clock.index_at(int(payload["received_at"] * TICKS_PER_S))
    for i in range(around, max(around - 2000, clock.base_index - 1), -1):
        item = feed.item(clock, i)
        if item["login"] == event["login"] and item["equity"] == event["equity"] and item["level"] == event["level"]:
            return clock.ticks_of(i) / TICKS_PER_S
    raise AssertionError(f"no emulator margin-call item matches {event}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def test_margin_call_starts_the_risk_dag_within_the_latency_target(stack: Stack) -> None:
    main = stack.emulators["main"]
    config = main.hub_config()
    unpause(stack, RISK)
    wait_for("the margin-call watcher's trigger to run in the triggerer",
             lambda: stack._check_all() and watcher_running(stack, "cplugin_mt4_margin_calls"), 180)  # fmt: skip

    def runs() -> list[tuple[Any, ...]] | None:
        stack._check_all()
        rows = stack.sql(
            "select dr.id, dr.run_id, dr.queued_at, dr.state, e.extra, e.timestamp from dag_run dr"
            " join dagrun_asset_event dre on dre.dag_run_id = dr.id join asset_event e on e.id = dre.event_id"
            " where dr.dag_id = %s order by dr.id, e.timestamp",
            (RISK,),
        )
        done = {r[0] for r in rows if r[3] in ("success", "failed")}
        return rows if len(done) >= RUNS else None

    rows = wait_for(f"{RUNS} finished {RISK} runs", runs, 600, 2)
    first_event: dict[int, tuple[datetime, dict[str, Any], datetime]] = {}
    for run_pk, _, queued_at, state, extra, logged_at in rows:
        assert state != "failed", (run_pk, state)
        first_event.setdefault(run_pk, (queued_at, extra["payload"], logged_at))
    latencies, to_event = [], []
    for queued_at, payload, logged_at in first_event.values():
        sent = margin_sent_at(config, payload)
        latencies.append(queued_at.timestamp() - sent)
        to_event.append(logged_at.timestamp() - sent)
        assert payload["event"]["levelType"] in (1, 2)  # the filter: MarginCall or StopOut only
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    print(
        f"\n[e2e] margin call -> DagRun queued: p50 {p50:.2f} s, p99 {p99:.2f} s over {len(latencies)} runs;"
        f" -> asset event logged: p50 {statistics.median(to_event):.2f} s, p99 {percentile(to_event, 0.99):.2f} s"
    )
    assert p50 < P50_S and p99 < P99_S, (p50, p99)

    # The risk snapshots hold the open trades of exactly the logins of their triggering events.
    from test_deployment import read_object, xcom

    run_pk, run_id = rows[0][0], rows[0][1]
    logins = sorted({int(r[4]["payload"]["event"]["login"]) for r in rows if r[0] == run_pk})
    summary = xcom(stack, RISK, run_id, "snapshot_accounts")
    assert summary["accounts"] == logins
    key = summary["files"]["mt4_open_trades"]["path"].split(f"{BUCKET}/", 1)[-1]
    table = read_object(stack, key)
    assert set(table.column("login").to_pylist()) <= set(logins) and table.num_rows == summary["trades"]
    # Debounce: a login fires at most once per 5 minutes.
    fired: dict[int, list[float]] = {}
    for *_, extra, _logged_at in rows:
        fired.setdefault(int(extra["payload"]["key"]["login"]), []).append(extra["payload"]["received_at"])
    for login, stamps in fired.items():
        ordered = sorted(stamps)
        assert all(b - a >= 300 for a, b in itertools.pairwise(ordered)), login
    stack.api("PATCH", f"/api/v2/dags/{RISK}", {"is_paused": True})


def test_capture_keeps_landing_across_a_triggerer_kill(stack: Stack) -> None:
    """``kill -9`` the triggerer while the tick capture runs: it resumes, reports the outage as a restart gap in the
    next batch's event, never lands a file twice, and every landed batch got exactly one asset event."""
    unpause(stack, BATCHES)
    wait_for("the tick capture watchers to run", lambda: stack._check_all()
             and watcher_running(stack, "cplugin_mt4_tick_batches"), 180)  # fmt: skip

    def batch_events() -> list[dict[str, Any]]:
        rows = stack.sql(
            "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = %s order by e.id",
            ("cplugin_mt4_tick_batches",),
        )
        return [r[0]["payload"] for r in rows]

    # roll_s is 60 in the example: two batches per symbol take about two minutes.
    def at_least(count: int) -> bool | None:
        stack._check_all()
        return True if len(batch_events()) >= count else None

    wait_for("two batches per symbol", lambda: at_least(4), 400, 2)
    before = len(batch_events())
    stack.services["triggerer"].kill9()
    stack.restart("triggerer")
    wait_for("batches after the restart", lambda: at_least(before + 4), 600, 2)
    events = batch_events()
    paths = [p["path"] for p in events]
    assert len(paths) == len(set(paths)), "a file was reported twice"
    landed = {k for k in stack.landing_objects("cplugin/entity=hub_ticks/") if "/cplugin_ticks_" in k}
    assert {p.split(f"{BUCKET}/", 1)[-1] for p in paths} <= landed
    restarts = [g for p in events for g in p["gaps"] if g["kind"] == "restart"]
    assert len(restarts) >= 2, restarts  # one per symbol's capture
    assert all(g["missed"] is None for g in restarts)  # the example has no sequence function: unknown, not 0
    from test_deployment import read_object

    for payload in events:
        key = payload["path"].split(f"{BUCKET}/", 1)[-1]
        assert read_object(stack, key).num_rows == payload["rows"]
    stack.api("PATCH", f"/api/v2/dags/{BATCHES}", {"is_paused": True})
