"""Child-process entry: ``python -m benchmarks.child`` runs one case once and prints one result line.

Parameters arrive as JSON on stdin (the client secret travels in ``AIRFLOW_CONN_CPLUGIN_DEFAULT``, never on a
command line). One process per run keeps each case's peak RSS its own. With ``"profile": PATH`` the measured
run is wrapped in pyinstrument and its text + HTML reports are written next to ``PATH``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import RESULT_PREFIX, CaseResult

CaseFn = Callable[[dict[str, Any]], CaseResult]


def lookup(group: str, case: str) -> CaseFn:
    # Imported per group so a case's child never loads another group's libraries (RSS stays the case's own).
    if group == "snapshot":
        from benchmarks import snapshot

        return snapshot.CASES[case]
    if group == "token":
        from benchmarks import token_refresh

        return token_refresh.CASES[case]
    if group == "hub":
        from benchmarks import hub

        return hub.CASES[case]
    if group == "history":
        from benchmarks import history

        return history.CASES[case]
    raise KeyError(f"unknown case group {group!r}")


def run(params: dict[str, Any]) -> CaseResult:
    fn = lookup(params["group"], params["case"])
    profile = params.get("profile")
    if not profile:
        return fn(params)
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="enabled")
    profiler.start()
    try:
        result = fn(params)
    finally:
        profiler.stop()
        out = Path(profile)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        out.with_suffix(".html").write_text(profiler.output_html())
    result.extra["profiled"] = True
    return result


def main() -> int:
    params = json.loads(sys.stdin.read())
    result = run(params)
    print(RESULT_PREFIX + json.dumps(result.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
