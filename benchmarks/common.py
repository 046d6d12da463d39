"""Measurement helpers shared by every case: peak RSS, CPU time, wall clock, the child-result record."""

from __future__ import annotations

import json
import os
import resource
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH_RESULT "


def peak_rss_mb() -> float:
    """Peak resident set of *this* process in MiB.

    ``VmHWM`` is the high-water mark of the current address space, so it starts fresh at ``exec``.
    ``ru_maxrss`` is the fallback only: on Linux a child started with vfork/exec inherits the parent's
    high-water mark in ``ru_maxrss``, which would charge the orchestrator's memory to the case.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CaseResult:
    """What one child run of one case reports back (one JSON line on stdout)."""

    case: str
    size: int
    wall_s: float
    items: int
    """Rows landed / events received / requests made, depending on the case."""
    peak_rss_mb: float
    base_rss_mb: float
    """RSS right before the measured section (interpreter + imports), so the case's own growth is visible."""
    cpu_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


class Stopwatch:
    """Wall and CPU time of a ``with`` block."""

    wall_s = 0.0
    cpu_s = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self._c0 = cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = cpu_seconds() - self._c0


def emulator_stats(url: str) -> dict[str, Any]:
    """``GET /_emulator/stats`` (emulator-only control endpoint) without importing the provider."""
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=30) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def emulator_control(url: str, path: str, body: Any) -> Any:
    """``POST /_emulator/<path>`` with a JSON body (hub rates and the like)."""
    req = urllib.request.Request(
        f"{url}/_emulator/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


CONN_ENV = "AIRFLOW_CONN_CPLUGIN_DEFAULT"  # children get the connection (and its secret) here, never on a command line


def connection_from_env() -> dict[str, Any]:
    conn: dict[str, Any] = json.loads(os.environ[CONN_ENV])
    return conn
