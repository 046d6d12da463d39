"""End-to-end: the provider on a real Airflow 3 deployment (CeleryExecutor, two workers, PostgreSQL, Redis, S3).

The tests run in file order and share one deployment: connections, the scheduled example DAGs (happy path),
then faults (triggerer killed during a hub sample, worker killed during a big snapshot, scheduler restarted),
then the secrets scan over everything the run left behind. Assertions read the metadata DB and the landing
bucket (the truth), never logs.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from conftest import DeferralObserver
from stack import BUCKET, WORKERS, Stack, StackError, jwt_claims, wait_for

from airflow_provider_cplugin.assets import schema_fingerprint
from airflow_provider_cplugin.emulator.data import MT4_LOGIN_BASE
from airflow_provider_cplugin.emulator.hubs.feeds import N_SYMBOLS

pytestmark = pytest.mark.timeout(900)

REALTIME = "cplugin_realtime_sample"
MAPPED, MAPPED_REPORT = "cplugin_platform_users", "cplugin_platform_users_report"
HUB_SAMPLE = "e2e_hub_sample"
E2E_DAGS = [HUB_SAMPLE, "e2e_big_users_snapshot"]  # tests_e2e/dags, triggered through the REST API
HUB_SLUGS = {"StreamTicks": "StreamTicks", "StreamTicks(EURUSD)": "StreamTicks-EURUSD"}  # channel → file slug
SCHEDULED = ["cplugin_users_snapshot", "cplugin_daily_snapshots", "cplugin_hourly_history", MAPPED]
ASSET_TRIGGERED = ["cplugin_warehouse_load", "cplugin_reporting", MAPPED_REPORT]
EXAMPLES = [*SCHEDULED, REALTIME, *ASSET_TRIGGERED]  # the realtime sample has its own tests
FINISHED = ("success", "failed")


# ---------------------------------------------------------------------------------------------- helpers


def trigger(stack: Stack, dag_id: str, logical_date: datetime | None = None) -> str:
    body: dict[str, Any] = {"logical_date": logical_date.isoformat() if logical_date else None}
    return str(stack.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"])


def run_state(stack: Stack, dag_id: str, run_id: str) -> str | None:
    rows = stack.sql("select state from dag_run where dag_id = %s and run_id = %s", (dag_id, run_id))
    return rows[0][0] if rows else None


def wait_run(stack: Stack, dag_id: str, run_id: str, timeout: float) -> None:
    state = wait_for(
        f"{dag_id} / {run_id} to finish",
        lambda: stack._check_all() and (s if (s := run_state(stack, dag_id, run_id)) in FINISHED else None),
        timeout,
        interval=1,
    )
    assert state == "success", f"{dag_id} / {run_id} ended {state}: {task_states(stack, dag_id, run_id)}"


def task_states(stack: Stack, dag_id: str, run_id: str) -> dict[str, tuple[str, int, str]]:
    rows = stack.sql(
        "select task_id, state, try_number, hostname from task_instance where dag_id = %s and run_id = %s",
        (dag_id, run_id),
    )
    return {task: (state, tries, host) for task, state, tries, host in rows}


def wait_task(stack: Stack, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float) -> Any:
    wanted = tuple(states)
    return wait_for(
        f"{dag_id}.{task_id} ({run_id}) in {wanted}",
        lambda: (
            stack._check_all()
            and stack.sql(
                "select state, hostname, pid, try_number from task_instance"
                " where dag_id = %s and run_id = %s and task_id = %s and state = any(%s)",
                (dag_id, run_id, task_id, list(wanted)),
            )
        ),
        timeout,
        interval=0.3,
    )[0]


def parquet_objects(stack: Stack, prefix: str) -> dict[str, int]:
    return {k: v for k, v in stack.landing_objects(prefix).items() if k.endswith(".parquet")}


def read_object(stack: Stack, key: str) -> Any:
    body = stack.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def assert_no_partial_objects(stack: Stack) -> None:
    """Every object in the landing zone is a whole file under a final name (no hidden temporaries): Parquet, or the
    realtime sampler's manifests, gaps and rejects files, or a history checkpoint."""
    final = (".parquet", "__manifest.json", "__gaps.json", ".jsonl")
    partial = [
        k for k in stack.landing_objects()
        if "/." in k or k.endswith(".inprogress") or not (k.endswith(final) or "/_checkpoints/" in k)
    ]  # fmt: skip
    assert partial == []


def xcom(stack: Stack, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value"
    return stack.api("GET", path + f"?deserialize=true&map_index={map_index}")["value"]


def object_key(path: str) -> str:
    """The bucket key of a landed file's URL (``s3://aws_default@bucket/key``)."""
    return path.split(f"{BUCKET}/", 1)[-1]


def worker_ready(stack: Stack, name: str) -> bool:
    import celery

    app = celery.Celery(broker=stack.env["AIRFLOW__CELERY__BROKER_URL"])
    replies = app.control.ping(timeout=2.0) or []
    return any(worker.split("@")[0] == name for reply in replies for worker in reply)


@contextmanager
def worker_back_after(stack: Stack, name: str) -> Iterator[None]:
    """Whatever the test does to worker ``name``, it is running again afterwards (the next tests need both)."""
    try:
        yield
    finally:
        if not stack.services[name].alive():
            stack.start_worker(name)
        wait_for(f"worker {name} back", lambda: worker_ready(stack, name), 180)


def users_pages(emulator: Any) -> int:
    """``UsersRequest`` pages the emulator served so far (its request stats key routes by pattern)."""
    return sum(n for route, n in emulator.stats()["requests"].items() if route.endswith("/UsersRequest"))


def quiet_hub(stack: Stack) -> None:
    """No other sample streams from the main emulator (the realtime example is paused and done), stats reset.

    A run the scheduler queued before the pause (its cron tick while the previous run sampled, held back by
    ``max_active_runs=1``) is never started for a paused DAG, so it is deleted, not waited for.
    """
    stack.api("PATCH", f"/api/v2/dags/{REALTIME}", {"is_paused": True})
    main = stack.emulators["main"]
    busy: list[str] = []

    def quiet() -> bool:
        busy.clear()
        for run_id, state in stack.sql("select run_id, state from dag_run where dag_id = %s and state in"
                                       " ('queued', 'running')", (REALTIME,)):  # fmt: skip
            if state == "queued":
                stack.api("DELETE", f"/api/v2/dags/{REALTIME}/dagRuns/{quote(run_id, safe='')}")
            busy.append(f"run {run_id} {state}: {task_states(stack, REALTIME, run_id)}")
        open_ = [c for c in main._control("GET", "hub-stats")["connections"] if not c["closed"]]
        busy.extend(f"hub connection open: {c}" for c in open_)
        return not busy

    try:
        wait_for("the realtime example to stop sampling", quiet, 300, 1)
    except StackError as err:
        raise StackError(f"{err}; still busy: {busy}") from None
    main._control("DELETE", "hub-stats")


def hub_batches(stack: Stack, dag_id: str) -> dict[str, list[str]]:
    """Landed batch files of ``dag_id``'s hub samples, by stream slug (``<run>__<slug>__b<n>.parquet``)."""
    found: dict[str, list[str]] = {}
    for key in parquet_objects(stack, "cplugin/"):
        name = key.rsplit("/", 1)[-1]
        if name.startswith(f"{dag_id}__") and re.search(r"__b\d+\.parquet$", name):
            found.setdefault(name.split("__")[-2], []).append(key)
    return found


def other_worker(name: str) -> str:
    return next(w for w in WORKERS if w != name)


# ---------------------------------------------------------------------------------------------- tests


def test_components_listen_on_loopback_only(stack: Stack) -> None:
    assert stack.non_loopback_listeners() == []


def test_connection_test_cli_and_rest(stack: Stack) -> None:
    """``airflow connections test`` for the env and the DB connection; the REST test for the DB one."""
    outputs: dict[str, str] = {}

    def cli(conn_id: str) -> None:
        outputs[conn_id] = stack.airflow("connections", "test", conn_id)

    threads = [threading.Thread(target=cli, args=(c,)) for c in ("cplugin_default", "cplugin_mt5")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for conn_id in ("cplugin_default", "cplugin_mt5"):
        assert "Connection success!" in outputs.get(conn_id, ""), (conn_id, outputs.get(conn_id, "")[-2000:])
    # The REST test of a stored connection reuses its stored credentials (the body does not carry them).
    body = {"connection_id": "cplugin_mt5", "conn_type": "cplugin"}
    rest = stack.api("POST", "/api/v2/connections/test", body)
    assert rest["status"] is True, rest
    assert "Connection OK" in rest["message"]
    # A bad connection's test names the field only: Airflow tests a copy under a random id the user never saw.
    bad = {"connection_id": "my_broker", "conn_type": "cplugin", "host": "https://api.example.test", "login": "c",
           "password": "s", "extra": json.dumps({"env": "custom"})}  # fmt: skip
    rest = stack.api("POST", "/api/v2/connections/test", bad)
    assert rest["status"] is False and rest["message"].startswith("Invalid connection: field 'extra.auth_url': "), rest
    assert "connection '" not in rest["message"], rest


def test_scheduled_example_dags(stack: Stack, observer: DeferralObserver) -> None:
    """Unpaused examples run by the scheduler (+ one REST-triggered run); Assets trigger warehouse and reporting."""

    def parsed() -> bool:
        return {d for (d,) in stack.sql("select dag_id from serialized_dag")} >= {*EXAMPLES, *E2E_DAGS}

    wait_for("the DAG processor to parse every DAG of both bundles", parsed, 300, 1)
    for dag_id in EXAMPLES:
        assert stack.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})["is_paused"] is False
    main = stack.emulators["main"]
    rest_day = datetime.fromtimestamp(main.anchor, UTC).replace(hour=0) - timedelta(days=3)
    rest_run = trigger(stack, "cplugin_users_snapshot", rest_day)

    def done() -> list[tuple[str, str, str]] | None:
        stack._check_all()
        rows = stack.sql("select dag_id, run_id, run_type, state from dag_run")
        failed = [r for r in rows if r[3] == "failed" and r[0] != REALTIME]
        if failed:  # a StackError ends the wait at once (an AssertionError would be polled until the timeout)
            raise StackError(f"failed runs: {[(r, task_states(stack, r[0], r[1])) for r in failed]}")
        if any(r[3] in ("queued", "running") and r[0] != REALTIME for r in rows):
            return None  # e.g. a later Asset-triggered warehouse run: wait until every run has settled
        finished = {(d, t) for d, _, t, s in rows if s == "success"}
        wanted = {(d, "scheduled") for d in SCHEDULED} | {(d, "asset_triggered") for d in ASSET_TRIGGERED}
        rest_ok = any(r[1] == rest_run and r[3] == "success" for r in rows)
        return [(d, r, t) for d, r, t, _ in rows] if wanted <= finished and rest_ok else None

    runs = wait_for("the example DAGs (scheduled, REST-triggered and Asset-triggered) to succeed", done, 900, 2)

    # Deferrable tasks really deferred: a trigger row was seen for their deferred task instance. The hub sample
    # always defers; the history sensors only when their hour is not settled yet (they check once first).
    seen = observer.deferred(REALTIME)
    assert seen, f"{REALTIME}: no task seen in state deferred with a trigger row"
    assert all("HubSampleTrigger" in o.classpath for o in seen), [o.classpath for o in seen]
    history = observer.deferred("cplugin_hourly_history")
    assert all(o.classpath.endswith(".CPluginConditionTrigger") for o in history), [o.classpath for o in history]

    # Every task of every run succeeded (none left unfinished), each on one of our workers.
    for dag_id, run_id, _ in runs:
        if dag_id == REALTIME:  # its own test below
            continue
        for task, (state, _, host) in task_states(stack, dag_id, run_id).items():
            assert state == "success", (dag_id, run_id, task, state)
            assert host in WORKERS, (dag_id, task, host)

    # The Asset events that started the warehouse load exist, from the snapshot and history landings.
    events = {uri for (uri,) in stack.sql("select a.uri from asset_event e join asset a on a.id = e.asset_id")}
    assert any(u.endswith("/entity=mt4_users") for u in events), events
    assert any(u.endswith("/entity=mt4_trade_history") for u in events), events

    # The users snapshots (scheduled + REST) hold exactly the emulator's logins, once each.
    files = parquet_objects(stack, "cplugin/entity=mt4_users/")
    users_files = [k for k in files if "/cplugin_users_snapshot__" in k]
    assert len(users_files) == 2, users_files
    assert any(f"date={rest_day:%Y-%m-%d}" in k for k in users_files), users_files
    expected = list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + stack.users["main"]))
    for key in users_files:
        logins = sorted(read_object(stack, key).column("login").to_pylist())
        assert logins == expected, key
    assert_no_partial_objects(stack)

    # The warehouse (DuckDB, read from S3 through the aws connection) and the analysts' report.
    import duckdb

    con = duckdb.connect(str(stack.warehouse), read_only=True)
    tables = dict(con.execute("select table_name, estimated_size from duckdb_tables()").fetchall())
    users = con.execute("select count(*), count(distinct login) from mt4_users").fetchone()
    history = con.execute("select count(*) from mt4_trade_history").fetchone()
    con.close()
    assert {"mt4_users", "mt4_trade_history", "report_trading_summary"} <= set(tables), tables
    assert users == (stack.users["main"], stack.users["main"])
    assert history is not None and history[0] > 0
    reports = stack.warehouse.parent / "reports"
    assert (reports / "trading_summary.csv").stat().st_size > 0
    assert (reports / "trading_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mapped_platform_users_emit_their_own_asset_events(stack: Stack) -> None:
    """``UsersSnapshotOperator.partial(...).expand_kwargs(...)`` over the MT4 and the MT5 platform: each mapped
    instance emitted one Asset event, for exactly its own entity and platform, with ``extra`` equal to the truth
    (the emulator's users, the bucket's objects, the run's data interval, the landed file's schema), and those
    events started the downstream DAG, whose ``triggering_asset_events`` carried them."""
    main, mt4_users = stack.emulators["main"], stack.users["main"]
    truth = {  # trade platform → (type, entity, logins the emulator serves)
        main.mt4_trade_platform.lower(): ("MT4", "mt4_users", list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + mt4_users))),
        main.mt5_trade_platform.lower(): ("MT5", "mt5_users", stack.mt5_logins),
    }  # fmt: skip
    ((run_id, interval_start, interval_end),) = stack.sql(
        "select run_id, data_interval_start, data_interval_end from dag_run"
        " where dag_id = %s and run_type = 'scheduled'",
        (MAPPED,),
    )
    given = dict(stack.sql(  # what each mapped instance was given (its rendered arguments)
        "select map_index, rendered_fields->>'trade_platform' from rendered_task_instance_fields"
        " where dag_id = %s and run_id = %s and task_id = 'users'", (MAPPED, run_id),
    ))  # fmt: skip
    assert sorted(given) == [0, 1] and {tp.lower() for tp in given.values()} == set(truth), given
    events = stack.sql(
        "select e.id, a.uri, e.extra, e.source_task_id, e.source_map_index from asset_event e"
        " join asset a on a.id = e.asset_id where e.source_dag_id = %s and e.source_run_id = %s",
        (MAPPED, run_id),
    )
    assert sorted(e[4] for e in events) == [0, 1], events  # one event per mapped instance
    for _, uri, extra, task_id, map_index in events:
        platform = given[map_index].lower()
        kind, entity, logins = truth[platform]
        assert task_id == "users" and uri.endswith(f"/entity={entity}"), (map_index, uri)
        assert (extra["entity"], extra["trade_platform"].lower(), extra["platform_type"]) == (entity, platform, kind)
        in_bucket = {k for k in parquet_objects(stack, f"cplugin/entity={entity}/trade_platform={platform}/")
                     if f"/{MAPPED}__" in k}  # fmt: skip
        assert {object_key(f) for f in extra["files"]} == in_bucket and len(in_bucket) == 1, (extra, in_bucket)
        tables = [read_object(stack, k) for k in in_bucket]
        assert sorted(login for t in tables for login in t.column("login").to_pylist()) == logins
        assert extra["rows"] == len(logins)
        assert extra["schema_fingerprint"] == schema_fingerprint(tables[0].schema)
        interval = (
            datetime.fromisoformat(extra["data_interval_start"]),
            datetime.fromisoformat(extra["data_interval_end"]),
        )
        assert interval == (interval_start, interval_end)
        assert xcom(stack, MAPPED, run_id, "users", map_index)["trade_platform"].lower() == platform

    # The events started the downstream DAG (a run may also carry other DAGs' users events: it is on AssetAny).
    def downstream() -> list[tuple[Any, ...]] | None:
        rows = stack.sql(
            "select dr.run_id, dr.run_type, dr.state, dae.event_id from dagrun_asset_event dae"
            " join dag_run dr on dr.id = dae.dag_run_id where dr.dag_id = %s and dae.event_id = any(%s)",
            (MAPPED_REPORT, [e[0] for e in events]),
        )
        done = {r[3] for r in rows if r[2] in FINISHED}
        return rows if done == {e[0] for e in events} else None

    runs = wait_for(f"{MAPPED_REPORT} runs started by the mapped events", downstream, 300, 1)
    assert {(r[1], r[2]) for r in runs} == {("asset_triggered", "success")}, runs
    reported = [line for r in {r[0] for r in runs} for line in xcom(stack, MAPPED_REPORT, r, "users_landed")
                if line["source_dag_id"] == MAPPED and line["source_run_id"] == run_id]  # fmt: skip
    assert len(reported) == len(events), reported
    assert {line["source_map_index"]: line["extra"] for line in reported} == {e[4]: e[2] for e in events}


def test_scheduled_realtime_sample(stack: Stack) -> None:
    """The scheduler's run of the realtime example: its first attempt lands its sample (no retry needed)."""
    run_id = stack.sql("select run_id from dag_run where dag_id = %s and run_type = 'scheduled' order by id limit 1",
                       (REALTIME,))[0][0]  # fmt: skip
    state = wait_task(stack, REALTIME, run_id, "sample_ticks_and_margins", ["success", "up_for_retry", "failed"], 600)
    assert state[0] == "success"


def test_triggerer_kill9_during_hub_sample_and_resume_on_other_worker(stack: Stack, observer: DeferralObserver) -> None:
    """``kill -9`` the triggerer while HubSampleTrigger samples (after its first time cut landed); the worker that
    deferred is stopped, so the task resumes on the other one. The task completes, its batch files land once, whole.
    """
    dag_id, task_id = HUB_SAMPLE, "sample"
    main = stack.emulators["main"]
    quiet_hub(stack)  # the emulator's stream records below are this run's only
    run_id = trigger(stack, dag_id)
    _, deferring_worker, _, _ = wait_task(stack, dag_id, run_id, task_id, ["deferred"], 600)
    assert deferring_worker in WORKERS
    with worker_back_after(stack, deferring_worker):
        # The deferring worker goes away (a graceful stop: it holds no running task), so only the other can resume.
        stack.services[deferring_worker].stop()
        obs = wait_for("the trigger to be assigned", lambda: [o for o in observer.deferred(dag_id, run_id)
                                                              if o.triggerer_id], 120)  # fmt: skip
        first_triggerer = obs[0].triggerer_id
        # Killed after a batch of each stream landed: the restart must account for what the first instance held.
        wait_for(
            "a landed batch of each stream",
            lambda: hub_batches(stack, dag_id).keys() >= set(HUB_SLUGS.values()),
            120,
            0.3,
        )
        assert any(not c["closed"] for c in main._control("GET", "hub-stats")["connections"])
        stack.services["triggerer"].kill9()
        stack.restart("triggerer")
        wait_run(stack, dag_id, run_id, 600)

        resumed_on = task_states(stack, dag_id, run_id)[task_id][2]
        assert resumed_on == other_worker(deferring_worker), (deferring_worker, resumed_on)
        taken_over = {o.triggerer_id for o in observer.deferred(dag_id, run_id) if o.triggerer_id}
        assert len(taken_over) >= 2 and first_triggerer in taken_over, taken_over

        summary = xcom(stack, dag_id, run_id, task_id)
        keys = [object_key(f["path"]) for f in summary["files"]]
        assert len(keys) == len(set(keys)), keys
        # Every batch file of the run is in the summary, and every one listed exists.
        assert sorted(keys) == sorted(k for files in hub_batches(stack, dag_id).values() for k in files)
        assert sum(read_object(stack, k).num_rows for k in keys) == summary["total_events"]
        assert_no_partial_objects(stack)


def test_triggerer_kill9_accounting_matches_emulator(stack: Stack) -> None:
    """The killed-and-resumed sample accounts for every event the emulator scheduled on its streams: for each
    (sequenced) stream, landed + reported missed + late == the feed indexes between the first item the emulator sent
    on the first invocation and the last item of the last one (its hub stream records are the truth); one restart
    gap, the connection counter continued across trigger instances, no event landed twice."""
    dag_id, task_id = HUB_SAMPLE, "sample"
    main = stack.emulators["main"]
    runs = stack.sql("select run_id from dag_run where dag_id = %s order by id desc limit 1", (dag_id,))
    assert runs, f"{dag_id} never ran: the kill test before this one failed before triggering it"
    run_id = runs[0][0]
    summary = xcom(stack, dag_id, run_id, task_id)
    restart = [g for g in summary["gaps"] if g["kind"] == "restart"]
    assert len(restart) == 1, summary["gaps"]
    assert summary["connections"] >= 2 and summary["complete"] is False
    records = main._control("GET", "hub-stats")["streams"]
    for channel, slug in HUB_SLUGS.items():
        target, _, arg = channel.rstrip(")").partition("(")
        args = [arg] if arg else []
        served = [
            r for r in records if r["target"] == target and r["arguments"] == args and r["first_index"] is not None
        ]
        assert len(served) >= 2 and "aborted" in {r["state"] for r in served}, served  # the killed one's
        first, last = min(r["first_index"] for r in served), max(r["last_index"] for r in served)
        scheduled = (last - first) // N_SYMBOLS + 1 if args else last - first + 1  # one symbol: every N-th index
        rows = [row for k in hub_batches(stack, dag_id)[slug] for row in read_object(stack, k).to_pylist()]
        keys = [(r["_sequence_key"], r["_sequence"]) for r in rows]
        assert None not in {k for k, _ in keys} and len(set(keys)) == len(keys), channel  # sequenced, no duplicate
        connections = [r["_connection"] for r in rows]
        assert min(connections) == 1 and max(connections) >= 2, channel  # counted on across trigger instances
        missed = summary["missed"][channel]
        assert missed is not None and missed > 0 and restart[0]["missed"][channel] <= missed, (channel, summary)
        late = summary["not_landed"][channel]["after_window"]
        assert summary["events"][channel] == len(rows)
        assert len(rows) + missed + summary["rejects"]["events"][channel] + late == scheduled, (channel, summary)


def test_worker_kill9_during_big_users_snapshot(stack: Stack) -> None:
    """``kill -9`` the worker running a 300k-user snapshot: the retry (other worker) lands it exactly once."""
    dag_id, task_id = "e2e_big_users_snapshot", "big_users"
    big = stack.emulators["big"]
    before = users_pages(big)
    run_id = trigger(stack, dag_id)
    _, victim, _, tries = wait_task(stack, dag_id, run_id, task_id, ["running"], 600)
    assert tries == 1 and victim in WORKERS
    # Kill while the snapshot is being read (users pages served), not before it started.
    wait_for("the snapshot to be reading users", lambda: users_pages(big) >= before + 2, 300, 0.1)
    assert run_state(stack, dag_id, run_id) == "running", "the snapshot finished before the kill: raise the users"
    with worker_back_after(stack, victim):
        stack.services[victim].kill9()
        wait_run(stack, dag_id, run_id, 600)

        history = stack.sql(
            "select try_number, state, hostname from task_instance_history where dag_id = %s and run_id = %s"
            " and task_id = %s order by try_number",
            (dag_id, run_id, task_id),
        )
        final = stack.sql(
            "select try_number, state, hostname from task_instance where dag_id = %s and run_id = %s and task_id = %s",
            (dag_id, run_id, task_id),
        )[0]
        assert [(t, h) for t, _, h in history] == [(1, victim)], history
        assert history[0][1] != "success"
        assert final == (2, "success", other_worker(victim))

        files = [k for k in parquet_objects(stack, "cplugin/entity=mt4_users/") if f"/{dag_id}__" in k]
        assert len(files) == 1, files
        logins = read_object(stack, files[0]).column("login").to_pylist()
        assert len(logins) == stack.users["big"]
        assert sorted(logins) == list(range(MT4_LOGIN_BASE, MT4_LOGIN_BASE + stack.users["big"]))
        assert_no_partial_objects(stack)


def test_scheduler_restart_mid_run(stack: Stack) -> None:
    """Stop and start the scheduler while a daily-snapshots run is half done: it completes, every task once."""
    dag_id = "cplugin_daily_snapshots"
    day = datetime.fromtimestamp(stack.emulators["main"].anchor, UTC).replace(hour=0) - timedelta(days=5)
    run_id = trigger(stack, dag_id, day)

    def half_done() -> bool:
        states = [s for s, _, _ in task_states(stack, dag_id, run_id).values()]
        return "success" in states and any(s in (None, "scheduled", "queued", "running") for s in states)

    wait_for("the run to be half done", lambda: stack._check_all() and half_done(), 600, 0.5)
    stack.services["scheduler"].stop()
    stack.restart("scheduler")
    wait_run(stack, dag_id, run_id, 600)
    states = task_states(stack, dag_id, run_id)
    assert {t: (s, n) for t, (s, n, _) in states.items()} == {t: ("success", 1) for t in states}
    files = [k for k in parquet_objects(stack, "cplugin/") if f"date={day:%Y-%m-%d}" in k and f"/{dag_id}__" in k]
    # One file per (entity, task): a task that ran twice would have replaced its file, so compare with the tries
    # above; here every snapshot task landed, and nothing else did.
    snapshot_tasks = {t for t in states if not t.endswith("_reachable")}
    landed = [(k.split("/", 2)[1], k.rsplit("/", 1)[-1].split("__")[1]) for k in files]
    assert {task for _, task in landed} == snapshot_tasks
    assert len(landed) == len(set(landed)), landed


def test_no_secret_in_db_dump_logs_or_landing(stack: Stack) -> None:
    """The client secret and every emulator-issued token appear nowhere: DB dump, every log, every object."""
    secret = stack.client_secret
    needles = {secret.encode(), quote(secret, safe="").encode()}
    issuers = {emu.url.rstrip("/") for emu in stack.emulators.values()}
    client_ids = {emu.client_id for emu in stack.emulators.values()}
    jwt = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")

    def emulator_tokens(blob: bytes) -> list[str]:
        found = []
        for match in jwt.findall(blob):
            claims = jwt_claims(match.decode()) or {}
            if str(claims.get("iss", "")).rstrip("/") in issuers or claims.get("client_id") in client_ids:
                found.append(match.decode()[:16] + "...")
        return found

    # The scan can fail: the secret and a token fresh from the emulator are found in a canary blob.
    token = fetch_token(stack)
    canary = b"x " + secret.encode() + b" Bearer " + token.encode()
    assert any(n in canary for n in needles) and emulator_tokens(canary)

    blobs: dict[str, bytes] = {"pg_dump": stack.pg_dump()}
    for folder in stack.log_dirs:
        for path in folder.rglob("*"):
            if path.is_file():
                blobs[str(path)] = path.read_bytes()
    for key in stack.landing_objects():
        blobs[f"s3://{BUCKET}/{key}"] = stack.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(blobs) > 20
    hits = {name: "secret" for name, blob in blobs.items() if any(n in blob for n in needles)}
    hits.update({name: f"tokens {t}" for name, blob in blobs.items() if (t := emulator_tokens(blob))})
    assert hits == {}
    issued = sum(emu.stats()["tokens_issued"] for emu in stack.emulators.values())
    assert issued > 1, "the run must have used emulator tokens for the scan to mean anything"


def fetch_token(stack: Stack) -> str:
    import urllib.parse
    import urllib.request

    emu = stack.emulators["main"]
    form = {"grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": stack.client_secret}
    request = urllib.request.Request(f"{emu.url.rstrip('/')}/connect/token", urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])
