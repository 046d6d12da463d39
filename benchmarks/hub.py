"""Hub sampling cases (placeholder until the hubs land)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.common import CaseResult

CASES: dict[str, Callable[[dict[str, Any]], CaseResult]] = {}


def availability() -> tuple[bool, str]:
    return False, "hubs not committed yet"
