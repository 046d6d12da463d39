"""The e2e deployment (``scripts/e2e/stack.py``) for the whole session, a DB observer, timings, log dumps.

Not collected by ``make test`` (``testpaths = tests``); run with ``make e2e``. ``E2E_KEEP=1`` keeps the work
folder (logs, DB dump, warehouse) for inspection.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "e2e"))

from stack import Stack

FAILED: list[str] = []
TIMINGS: dict[str, float] = {}
MEASURES: dict[str, str] = {}  # measured figures the suite reports but does not assert (wall times)
STACKS: list[Stack] = []


@dataclass
class Observation:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    hostname: str
    trigger_id: int
    classpath: str
    triggerer_id: int | None


@dataclass
class DeferralObserver:
    """Polls the metadata DB and keeps every (task instance, trigger) pair seen in state ``deferred``.

    Trigger rows are deleted once their task resumes, so they can only be asserted on while they exist.
    """

    stack: Stack
    seen: list[Observation] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="deferral-observer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        keys: set[tuple[Any, ...]] = set()
        while not self._stop.wait(0.5):
            try:
                rows = self.stack.sql(
                    "select ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.hostname, t.id, t.classpath,"
                    " t.triggerer_id from task_instance ti join trigger t on t.id = ti.trigger_id"
                    " where ti.state = 'deferred'"
                )
            except Exception as err:  # the DB restarts never; note it and keep going
                self.errors.append(repr(err))
                continue
            for row in rows:
                if row not in keys:
                    keys.add(row)
                    self.seen.append(Observation(*row))

    def deferred(self, dag_id: str, run_id: str | None = None) -> list[Observation]:
        return [o for o in self.seen if o.dag_id == dag_id and (run_id is None or o.run_id == run_id)]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    keep = os.environ.get("E2E_KEEP") == "1"
    with Stack.create(keep=keep) as deployment:
        STACKS.append(deployment)
        yield deployment
        if FAILED:
            dump_components(deployment)
        if keep:
            print(f"\n[e2e] work folder kept: {deployment.workdir}")
    TIMINGS.update({f"stack: {k}": v for k, v in deployment.timings.items()})


@pytest.fixture(scope="session")
def observer(stack: Stack) -> Iterator[DeferralObserver]:
    obs = DeferralObserver(stack)
    obs.start()
    yield obs
    obs.stop()


def dump_components(deployment: Stack) -> None:
    for name, service in deployment.services.items():
        print(f"\n----- {name} (last lines of {service.log}) -----\n{service.tail(40)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    started = time.monotonic()
    yield
    TIMINGS[item.name] = time.monotonic() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        FAILED.append(item.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MEASURES:
        terminalreporter.section("e2e measurements")
        for name, value in MEASURES.items():
            terminalreporter.write_line(f"{name}: {value}")
    if not TIMINGS:
        return
    terminalreporter.section("e2e timings")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{seconds:7.1f} s  {name}")
    terminalreporter.write_line(f"{sum(TIMINGS.values()):7.1f} s  total")
