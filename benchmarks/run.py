"""One command for every benchmark: ``python benchmarks/run.py`` (``make bench``).

Starts the emulator on loopback in its own process, runs each case ``--repeat`` times, each run in a fresh child
process (so peak RSS is per case), then prints a Markdown table and writes ``.bench/results.md``,
``.bench/results.json`` (every run, raw) and ``.bench/benchmarks.png``.

    python benchmarks/run.py                    # full: 100k and 1M users, hub, token (minutes)
    python benchmarks/run.py --quick            # CI smoke: tiny sizes, 1 repeat (seconds)
    python benchmarks/run.py --cases snapshot --sizes 100000 --repeat 1 --profile
    python benchmarks/run.py --cases history --repeat 1   # hourly history runs: calls, old path vs new
    python benchmarks/run.py --cases watchers --watchers-seconds 120   # 10 hub watchers + capture at 50k/s
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: import ``benchmarks.*`` from the repository root, and drop the script's own directory
    # from the path so module names here can never shadow the standard library.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks import report
from benchmarks.common import CONN_ENV, REPO_ROOT, RESULT_PREFIX

SNAPSHOT_ORDER = ("floor", "floor_json", "decode_floor", "ours", "ours_sequential", "naive", "sdk", "dlt")
CHILD_TIMEOUT_S = 1800.0
"""A child's bound beyond the run length it is given (``seconds``, or ``long_seconds`` for ``ours_long``)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat (CI smoke)")
    p.add_argument("--repeat", type=int, default=None, help="runs per case, medians reported (default 3; quick 1)")
    p.add_argument("--sizes", default=None, help="users per snapshot, comma-separated (default 100000,1000000)")
    p.add_argument("--cases", default="snapshot,hub,token,history,watchers",
                   help="groups: snapshot,hub,token,history,watchers")  # fmt: skip
    p.add_argument("--snapshot-cases", default=",".join(SNAPSHOT_ORDER))
    p.add_argument("--token-lifetime", type=int, default=None, help="token lifetime in s (default 3; quick 1)")
    p.add_argument("--token-threads", type=int, default=None, help="default 16; quick 4")
    p.add_argument("--token-requests", type=int, default=None, help="per thread; default 1000; quick 150")
    p.add_argument("--hub-seconds", type=float, default=None, help="sampling s per hub run (default 10; quick 1.5)")
    p.add_argument("--hub-rate", type=float, default=None, help="full-speed tick rate, events/s (default 1000000)")
    p.add_argument("--hub-long-seconds", type=float, default=None, help="ours_long s (600; quick 20)")
    p.add_argument("--hub-target-rate", type=float, default=report.HUB_EVENTS_MIN, help="offered rate of the lag run")
    p.add_argument("--watchers-seconds", type=float, default=None, help="watchers run s (default 1800; quick 30)")
    p.add_argument("--watchers-rate", type=float, default=50_000.0, help="ticks/s offered to the watchers run")
    p.add_argument("--profile", action="store_true", help="after the timed runs, one pyinstrument run per case")
    p.add_argument("--out", type=Path, default=REPO_ROOT / ".bench")
    args = p.parse_args(argv)
    args.out = args.out.resolve()  # children run Airflow with a home under it: a relative path breaks its DB URL
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.sizes = [int(s) for s in (args.sizes or ("2000,12000" if quick else "100000,1000000")).split(",")]
    args.groups = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.snapshot_cases = [c for c in SNAPSHOT_ORDER if c in args.snapshot_cases.split(",")]
    args.token_lifetime = args.token_lifetime or (1 if quick else 3)
    args.token_threads = args.token_threads or (4 if quick else 16)
    args.token_requests = args.token_requests or (150 if quick else 1000)
    args.hub_seconds = args.hub_seconds or (1.5 if quick else 10.0)
    args.hub_rate = args.hub_rate or 1_000_000.0
    args.hub_long_seconds = args.hub_long_seconds or (20.0 if quick else 600.0)
    args.watchers_seconds = args.watchers_seconds or (30.0 if quick else 1800.0)
    return args


def child_env(conn_json: str, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env[CONN_ENV] = conn_json
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Importing airflow.sdk must not touch the user's own AIRFLOW_HOME.
    env["AIRFLOW_HOME"] = str(out / "airflow_home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _emu_cpu(pid: int) -> float | None:
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except Exception:  # psutil missing or the emulator gone: the column just stays empty
        return None


def run_child(
    params: dict[str, Any], env: dict[str, str], out: Path, emu_pid: int | None, module: str = "benchmarks.child"
) -> dict[str, Any]:
    """One case, once, in a fresh interpreter (``python -m module``, parameters on stdin); returns the run record
    (``result`` None on failure)."""
    tag = f"{params['group']}-{params['case']}-{params['size']}-{params.get('rep', 'p')}"
    log_path = out / "logs" / f"{tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {k: params[k] for k in ("group", "case", "size")}
    record["rep"] = params.get("rep")
    cpu0 = _emu_cpu(emu_pid) if emu_pid else None
    timeout = CHILD_TIMEOUT_S + float(params.get("long_seconds" if params["case"] == "ours_long" else "seconds", 0))
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", module],
                input=json.dumps(params),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO_ROOT,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            record.update(result=None, error=f"timed out after {timeout:.0f}s (log: {log_path})")
            return record
    cpu1 = _emu_cpu(emu_pid) if emu_pid else None
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith(RESULT_PREFIX)), None)
    if proc.returncode != 0 or line is None:
        tail = log_path.read_text(errors="replace")[-1500:]
        record.update(result=None, error=f"exit {proc.returncode} (log: {log_path})\n{tail}")
        print(f"  ! {tag} failed: exit {proc.returncode}; see {log_path}\n{tail}", file=sys.stderr)
        return record
    result = json.loads(line[len(RESULT_PREFIX) :])
    record["result"] = result
    record["emu_cpu_s"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    result["emu_cpu_s"] = record["emu_cpu_s"]
    extra = "" if params.get("profile") else f"{result['rate']:,.0f}/s"
    if params["group"] == "history":
        extra = f"{result['extra']['calls']} API calls,"
    print(f"  {tag}: {result['wall_s']:.2f} s, {extra} peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
    return record


def run_snapshot(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    from airflow_provider_cplugin.emulator.process import EmulatorProcess

    runs: list[dict[str, Any]] = []
    for size in args.sizes:
        print(f"snapshot: {size:,} users", flush=True)
        with EmulatorProcess(seed=42, users=size) as emu:
            env = child_env(emu.connection_json(), out)
            base = {"group": "snapshot", "size": size, "url": emu.url, "trade_platform": emu.mt4_trade_platform,
                    "out_dir": str(out / "data")}  # fmt: skip
            (out / "data").mkdir(parents=True, exist_ok=True)
            for rep in range(args.repeat):
                for case in args.snapshot_cases:
                    runs.append(run_child({**base, "case": case, "rep": rep}, env, out, emu.pid))
            if args.profile:
                for case in args.snapshot_cases:
                    prof = out / "profiles" / f"snapshot-{case}-{size}.html"
                    runs.append(run_child({**base, "case": case, "profile": str(prof)}, env, out, emu.pid))
        for run in runs:
            check_snapshot_run(run, size)
    return runs


def check_snapshot_run(run: dict[str, Any], size: int) -> None:
    """Rows landed must equal rows served; a mismatch is recorded on the run (and shown in the report)."""
    result = run.get("result")
    if not result or run["size"] != size:
        return
    extra = result["extra"]
    expected_pages = max(1, -(-size // 5000))
    problems = []
    if result["items"] != size:
        problems.append(f"{result['items']} rows, served {size}")
    if "file_rows" in extra and extra["file_rows"] != size:
        problems.append(f"file has {extra['file_rows']} rows")
    if "pages" in extra and extra["pages"] != expected_pages:
        problems.append(f"{extra['pages']} pages, expected {expected_pages}")
    extra["rows_ok"] = not problems
    if problems:
        extra["problems"] = problems
        print(f"  ! {run['case']} @ {size}: {'; '.join(problems)}", file=sys.stderr)


def run_token(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    from airflow_provider_cplugin.emulator.process import EmulatorProcess

    runs: list[dict[str, Any]] = []
    print(f"token: {args.token_threads} threads x {args.token_requests} requests, lifetime {args.token_lifetime} s")
    with EmulatorProcess(seed=42, users=100, token_lifetime=args.token_lifetime) as emu:
        env = child_env(emu.connection_json(), out)
        base = {"group": "token", "size": args.token_threads * args.token_requests, "url": emu.url,
                "trade_platform": emu.mt4_trade_platform, "threads": args.token_threads,
                "requests": args.token_requests, "lifetime": float(args.token_lifetime)}  # fmt: skip
        for rep in range(args.repeat):
            runs.append(run_child({**base, "case": "token", "rep": rep}, env, out, emu.pid))
            runs.append(run_child({**base, "case": "token_skew0", "skew": 0.0, "rep": rep}, env, out, emu.pid))
    return runs


def run_hub(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]], str]:
    """Every hub case at full speed, then ``ours`` at the target rate; returns (runs, note for the report)."""
    from airflow_provider_cplugin.emulator.process import EmulatorProcess
    from benchmarks import hub

    note = hub.NOTE

    runs: list[dict[str, Any]] = []
    print(f"hub: {args.hub_seconds:.1f} s windows at {args.hub_rate:,.0f} and {args.hub_target_rate:,.0f} events/s "
          f"offered ({note})", flush=True)  # fmt: skip
    with EmulatorProcess(seed=42, users=1000) as emu:
        env = child_env(emu.connection_json(), out)
        base = {"group": "hub", "url": emu.url, "trade_platform": emu.mt4_trade_platform,
                "seconds": args.hub_seconds, "long_seconds": args.hub_long_seconds,
                "out_dir": str(out / "data")}  # fmt: skip
        (out / "data").mkdir(parents=True, exist_ok=True)
        # Full speed for every case (rate above both sides' capacity), then (b) at the target rate; the long RSS
        # run once, at the end.
        plan = [(case, args.hub_rate) for case in hub.CASES if case != "ours_long"]
        plan.append(("ours", args.hub_target_rate))
        for rep in range(args.repeat):
            for case, rate in plan:
                load = os.getloadavg()[0]
                runs.append(run_child({**base, "case": case, "rate": rate, "size": int(rate), "rep": rep}, env, out,
                                      emu.pid) | {"loadavg": load})  # fmt: skip
        load = os.getloadavg()[0]
        runs.append(run_child({**base, "case": "ours_long", "rate": args.hub_rate, "size": int(args.hub_rate),
                               "rep": 0}, env, out, emu.pid) | {"loadavg": load})  # fmt: skip
        note = hub_spread(runs, args.hub_rate) + "\n\n" + note
        if args.profile:
            for case, rate in plan:
                prof = out / "profiles" / f"hub-{case}-{int(rate)}.html"
                runs.append(run_child({**base, "case": case, "rate": rate, "size": int(rate), "profile": str(prof)},
                                      env, out, emu.pid))  # fmt: skip
    return runs, note


def _spread(values: list[float]) -> str:
    return "/".join(f"{x:.2f}" for x in (min(values), statistics.median(values), max(values))) if values else "-"


def hub_spread(runs: list[dict[str, Any]], full_rate: float) -> str:
    """Min / median / max over the repeats of what the targets compare: events/s ÷ the same repeat's raw drain,
    loop lag p99, RSS start → end; with the 1-min load average when each run started (noisy when it is high)."""
    floor = {r["rep"]: r["result"]["rate"] for r in runs if r["case"] == "floor" and r.get("result")}
    rows = ["| case | offered/s | runs | events/s ÷ raw drain (min/med/max) | lag p50 ms | lag p99 ms (min/med/max) | "
            "RSS start → end MB | load avg |", "|---|---:|---:|---|---:|---|---|---|"]  # fmt: skip
    full = int(full_rate)
    for case, at_full in (("ours", True), ("ours", False), ("ours_long", True), ("client", True)):
        done = [r for r in runs if r["case"] == case and r.get("result") and (r["size"] == full) == at_full]
        if not done:
            continue
        extras = [r["result"]["extra"] for r in done]
        ratios = [r["result"]["rate"] / floor[r["rep"]] for r in done if floor.get(r["rep"])]
        rss = ", ".join(f"{e['rss_start_mb']:.0f} → {e['rss_end_mb']:.0f}" for e in extras)
        loads = ", ".join(f"{r.get('loadavg', float('nan')):.1f}" for r in done)
        rows.append(f"| {case} | {done[0]['size']:,} | {len(done)} | {_spread(ratios)} | "
                    f"{statistics.median(e['lag_p50_ms'] for e in extras):.1f} | "
                    f"{_spread([e['lag_p99_ms'] for e in extras])} | {rss} | {loads} |")  # fmt: skip
    return "\n".join(rows)


def run_watchers(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Ten hub watchers sharing one stream plus a continuous capture, at ``--watchers-rate`` (one long run)."""
    from airflow_provider_cplugin.emulator.process import EmulatorProcess

    rate, seconds = args.watchers_rate, args.watchers_seconds
    print(f"watchers: 10 watchers + capture, {rate:,.0f} ticks/s offered for {seconds:.0f} s "
          f"(load avg {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    with EmulatorProcess(seed=42, users=1000) as emu:
        env = child_env(emu.connection_json(), out)
        (out / "data").mkdir(parents=True, exist_ok=True)
        params = {"group": "watchers", "case": "watchers", "size": int(args.watchers_rate), "rep": 0, "url": emu.url,
                  "trade_platform": emu.mt4_trade_platform, "rate": args.watchers_rate,
                  "seconds": args.watchers_seconds, "out_dir": str(out / "data")}  # fmt: skip
        load = os.getloadavg()[0]
        return [run_child(params, env, out, emu.pid, module="benchmarks.watchers") | {"loadavg": load}]


def run_history(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One hourly history run per case: MT4 at two user counts, MT5 at two history lengths (20k users)."""
    from airflow_provider_cplugin.emulator.process import EmulatorProcess
    from benchmarks import history

    runs: list[dict[str, Any]] = []
    mt4_sizes = (2000, 12000) if args.quick else (100_000, 1_000_000)
    mt5_users, mt5_days = (400, (7, 90)) if args.quick else (20_000, (7, 90))
    plans: list[tuple[dict[str, Any], tuple[str, ...], int, str]] = [
        ({"users": n, "mt5_users": 1}, history.CASES_MT4, n, f"MT4, {n:,} users") for n in mt4_sizes
    ]
    plans += [
        ({"users": 1, "mt5_users": mt5_users, "trades_per_user": days, "history_days": days}, history.CASES_MT5,
         mt5_users * days, f"MT5, {mt5_users:,} users, {days} days of deals")
        for days in mt5_days
    ]  # fmt: skip
    for options, cases, size, label in plans:
        print(f"history: {label}", flush=True)
        with EmulatorProcess(seed=42, **options) as emu:
            env = child_env(emu.connection_json(), out)
            data = out / "data" / f"history-{size}"
            data.mkdir(parents=True, exist_ok=True)
            base = {"group": "history", "size": size, "url": emu.url, "anchor": emu.anchor, "label": label,
                    "mt5_trade_platform": emu.mt5_trade_platform, "out_dir": str(data)}  # fmt: skip
            for rep in range(args.repeat):
                for case in cases:
                    runs.append(run_child({**base, "case": case, "rep": rep}, env, out, emu.pid))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "repeat": args.repeat,
        "quick": args.quick,
        "sizes": args.sizes,
    }
    t0 = time.monotonic()
    runs: list[dict[str, Any]] = []
    if "snapshot" in args.groups:
        runs += run_snapshot(args, out)
    if "hub" in args.groups:
        hub_runs, meta["hub_note"] = run_hub(args, out)
        runs += hub_runs
    if "token" in args.groups:
        runs += run_token(args, out)
    if "history" in args.groups:
        runs += run_history(args, out)
    watcher_runs: list[dict[str, Any]] = []
    if "watchers" in args.groups:
        watcher_runs = run_watchers(args, out)
        runs += watcher_runs
    meta["seconds"] = round(time.monotonic() - t0, 1)
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    summaries = report.summarise(runs)
    text = report.markdown(summaries, meta)
    if watcher_runs:
        from benchmarks import watchers

        text += "\n\n" + watchers.table(watcher_runs) + "\n"
    (out / "results.md").write_text(text)
    payload = {
        "meta": meta,
        "runs": runs,
        "summary": [s.__dict__ for s in summaries],
        "snapshot_ratios": report.snapshot_ratios(summaries),
        "targets": report.targets(summaries, args.quick),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    report.chart(summaries, out / "benchmarks.png")
    print()
    print(text)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'benchmarks.png'} ({meta['seconds']} s)")
    failed = [r for r in runs if not r.get("result")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
