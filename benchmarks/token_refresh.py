"""Token case: ``threads`` x ``requests`` GETs through one shared hook against an emulator issuing short tokens.

The hook reuses a token while ``expires_at - now > skew`` where the skew is 60 s clamped to a quarter of the
lifetime (``hooks/oauth2.py``: ``effective_skew``), so a 3 s token is refreshed every 2.25 s. The expected number
of token-endpoint calls is therefore the number of *refresh windows* (``lifetime - skew``) elapsed; the number of
plain lifetimes elapsed is reported next to it. ``skew=0`` (reference variant) refreshes only on expiry and so
exercises the 401 → forced-refresh path.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from benchmarks.common import CaseResult, Stopwatch, current_rss_mb, emulator_stats, peak_rss_mb


def token(params: dict[str, Any]) -> CaseResult:
    from airflow_provider_cplugin.hooks.oauth2 import DEFAULT_SKEW, effective_skew
    from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

    threads: int = params["threads"]
    per_thread: int = params["requests"]
    lifetime: float = params["lifetime"]
    skew_setting = DEFAULT_SKEW if params.get("skew") is None else float(params["skew"])
    skew = effective_skew(skew_setting, lifetime)
    hook = CPluginWebApiHook(token_skew=skew_setting)
    path = hook.v2_path("ServerTime", trade_platform=params["trade_platform"], platform_type="MT4")
    errors: list[str] = []
    done = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        start.wait()
        for _ in range(per_thread):
            try:
                hook.get(path)
                done[n] += 1
            except Exception as err:  # a failed call is a result to report, not a reason to stop the others
                errors.append(f"{type(err).__name__}: {err}")

    before = emulator_stats(params["url"])
    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    base = current_rss_mb()
    with Stopwatch() as sw:
        start.wait()
        for w in workers:
            w.join()
    after = emulator_stats(params["url"])
    hook.close()
    calls = after["token_requests"] - before["token_requests"]
    windows = sw.wall_s / (lifetime - skew)
    return CaseResult(
        params["case"], params["size"], sw.wall_s, sum(done), peak_rss_mb(), base, sw.cpu_s,
        {
            "threads": threads,
            "requests": per_thread,
            "token_calls": calls,
            "lifetime_s": lifetime,
            "skew_s": skew,
            "lifetimes_elapsed": sw.wall_s / lifetime,
            "windows_elapsed": windows,
            # A window boundary falling inside the run means one more token: ceil, within ±1 for timing jitter.
            "expected_calls": math.ceil(windows),
            "unauthorized": after["unauthorized"] - before["unauthorized"],
            "errors": len(errors),
            "first_errors": errors[:3],
        },
    )  # fmt: skip


# "token": the hook as configured by default; "token_skew0": reference variant with no refresh margin.
CASES = {"token": token, "token_skew0": token}
