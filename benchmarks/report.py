"""Medians, ratios, targets, the Markdown report and the PNG chart (parent process only)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Targets from the issue (reported against, never adjusted to fit).
SNAPSHOT_FLOOR_RATIO_MAX = 1.1  # wall, ours ÷ raw floor (issue 13)
DECODE_FLOOR_CPU_RATIO_MAX = 1.5  # client CPU, ours ÷ decode floor (issue 13)
OUR_RSS_MAX_MB = 250.0
RSS_FLAT_GROWTH_MAX = 0.10  # "flat": peak at the largest size within 10 % of the smallest size's peak
HUB_EVENTS_MIN = 50_000.0
HUB_RATIO_MIN = 0.9
LOOP_LAG_P99_MAX_MS = 50.0
LOOP_LAG_P99_AT_TARGET_MAX_MS = 10.0  # at HUB_EVENTS_MIN offered

HISTORY_CASES = ("mt4_reports", "mt4_sync", "mt5_full", "mt5_incremental")
HISTORY_LABELS = {
    "mt4_reports": "old: UsersRequest + ReportsRequest",
    "mt4_sync": "new: one TradesSync session",
    "mt5_full": "old: full DealByGroup scan",
    "mt5_incremental": "new: DealByGroup from the checkpoint",
}
SNAPSHOT_CASES = ("floor", "floor_json", "decode_floor", "ours", "ours_sequential", "naive", "sdk", "dlt")
SNAPSHOT_LABELS = {
    "floor": "a floor: raw paged HTTP, bodies discarded",
    "floor_json": "a' floor + json.loads (reference)",
    "decode_floor": "d decode floor: a + pyarrow.json → Arrow + Parquet write",
    "ours": "b ours: hook.paginate(PageDecoder) → land_pages → Parquet",
    "ours_sequential": "b0 reference: b without the fetch-ahead",
    "naive": "c naive: requests + json + one DataFrame + to_parquet",
    "sdk": "s vendor SDK mywebapi-sdk 0.3.3: paged() + DataFrame + to_parquet",
    "dlt": "t dlt 1.31 rest_api → filesystem Parquet",
}
HUB_LABELS = {
    "floor": "a floor: raw WebSocket drain",
    "client": "reference: realtime client → Parquet, no trigger",
    "ours": "b ours: HubSampleTrigger → Parquet",
    "ours_long": "b ours, long run (RSS flatness)",
}


@dataclass
class Summary:
    group: str
    case: str
    size: int
    runs: int
    failed: int
    wall_s: float
    rate: float
    items: float
    peak_rss_mb: float
    base_rss_mb: float
    cpu_s: float
    emu_cpu_s: float
    extra: dict[str, Any]
    spread: dict[str, tuple[float, float]]
    """(min, max) over the runs of wall_s, cpu_s and peak_rss_mb."""


def _median(values: Iterable[float | None]) -> float:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else float("nan")


def _min_max(values: Iterable[float]) -> tuple[float, float]:
    data = list(values)
    return (min(data), max(data)) if data else (float("nan"), float("nan"))


def _median_extra(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Numeric extras → median; anything else → the value of the first run."""
    keys: dict[str, None] = {}
    for extra in extras:
        keys.update(dict.fromkeys(extra))
    out: dict[str, Any] = {}
    for key in keys:
        values = [e[key] for e in extras if key in e]
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = _median(values)
        else:
            out[key] = values[0] if values else None
    return out


def summarise(runs: list[dict[str, Any]]) -> list[Summary]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["group"], run["case"], run["size"]), []).append(run)
    out = []
    for (group, case, size), items in groups.items():
        ok = [r for r in items if r.get("result") and not r["result"].get("extra", {}).get("profiled")]
        res = [r["result"] for r in ok]
        out.append(
            Summary(
                group=group,
                case=case,
                size=size,
                runs=len(ok),
                failed=sum(1 for r in items if not r.get("result")),
                wall_s=_median(r["wall_s"] for r in res),
                rate=_median(r["rate"] for r in res),
                items=_median(r["items"] for r in res),
                peak_rss_mb=_median(r["peak_rss_mb"] for r in res),
                base_rss_mb=_median(r["base_rss_mb"] for r in res),
                cpu_s=_median(r["cpu_s"] for r in res),
                emu_cpu_s=_median(r.get("emu_cpu_s") for r in ok),
                extra=_median_extra([r.get("extra", {}) for r in res]),
                spread={k: _min_max(r[k] for r in res) for k in ("wall_s", "cpu_s", "peak_rss_mb")},
            )
        )
    return out


def _find(summaries: list[Summary], group: str, case: str, size: int | None = None) -> Summary | None:
    for s in summaries:
        if s.group == group and s.case == case and (size is None or s.size == size) and s.runs:
            return s
    return None


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # NaN
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def snapshot_ratios(summaries: list[Summary]) -> list[dict[str, Any]]:
    sizes = sorted({s.size for s in summaries if s.group == "snapshot"})
    rows = []
    for size in sizes:
        a, d, b, b2, c, sdk, dlt = (
            _find(summaries, "snapshot", k, size)
            for k in ("floor", "decode_floor", "ours", "ours_sequential", "naive", "sdk", "dlt")
        )
        rows.append(
            {
                "size": size,
                "b_over_a": b.wall_s / a.wall_s if a and b else None,
                "b_cpu_over_d_cpu": b.cpu_s / d.cpu_s if b and d else None,
                "b0_over_a": b2.wall_s / a.wall_s if a and b2 else None,
                "c_over_b": c.wall_s / b.wall_s if b and c else None,
                "sdk_over_b": sdk.wall_s / b.wall_s if b and sdk else None,
                "dlt_over_b": dlt.wall_s / b.wall_s if b and dlt else None,
            }
        )
    return rows


def targets(summaries: list[Summary], quick: bool) -> list[dict[str, Any]]:
    """One row per target: measured value and met / missed / not measured."""
    rows: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: bool | None, note: str = "") -> None:
        rows.append({"target": name, "measured": measured, "met": met, "note": note})

    sizes = sorted({s.size for s in summaries if s.group == "snapshot"})
    if sizes:
        top = sizes[-1]
        ratio = next(r for r in snapshot_ratios(summaries) if r["size"] == top)
        ba, bd = ratio["b_over_a"], ratio["b_cpu_over_d_cpu"]
        add(f"snapshot client CPU b/d ≤ {DECODE_FLOOR_CPU_RATIO_MAX} x the decode floor at {top:,} rows", _fmt(bd),
            None if bd is None else bd <= DECODE_FLOOR_CPU_RATIO_MAX)  # fmt: skip
        add(f"snapshot wall b/a ≤ {SNAPSHOT_FLOOR_RATIO_MAX} x the raw floor at {top:,} rows", _fmt(ba),
            None if ba is None else ba <= SNAPSHOT_FLOOR_RATIO_MAX)  # fmt: skip
        ours = [s for s in (_find(summaries, "snapshot", "ours", n) for n in sizes) if s]
        if ours:
            worst = max(s.peak_rss_mb for s in ours)
            measured = " / ".join(f"{s.peak_rss_mb:.0f} MB @ {s.size:,}" for s in ours)
            add(f"our peak RSS ≤ {OUR_RSS_MAX_MB:.0f} MB", measured, worst <= OUR_RSS_MAX_MB)
        if len(ours) >= 2:
            growth = ours[-1].peak_rss_mb / ours[0].peak_rss_mb - 1
            add(f"our peak RSS flat {ours[0].size:,} → {ours[-1].size:,} (≤ {RSS_FLAT_GROWTH_MAX:.0%} growth)",
                f"{growth:+.1%}", growth <= RSS_FLAT_GROWTH_MAX)  # fmt: skip
    hub_sizes = sorted({s.size for s in summaries if s.group == "hub"})
    if hub_sizes:
        full = hub_sizes[-1]
        hub_ours = _find(summaries, "hub", "ours", full)
        hub_a = _find(summaries, "hub", "floor", full)
        note = ""
        add(f"hub ≥ {HUB_EVENTS_MIN:,.0f} events/s (ours, full speed)", _fmt(hub_ours.rate if hub_ours else None),
            None if hub_ours is None else hub_ours.rate >= HUB_EVENTS_MIN, note)  # fmt: skip
        hub_ratio = hub_ours.rate / hub_a.rate if hub_ours and hub_a and hub_a.rate else None
        add(f"hub b/a ≥ {HUB_RATIO_MIN}", _fmt(hub_ratio), None if hub_ratio is None else hub_ratio >= HUB_RATIO_MIN,
            note)  # fmt: skip
        for size in reversed(hub_sizes):
            run = _find(summaries, "hub", "ours", size)
            p99 = run.extra.get("lag_p99_ms") if run else None
            where = "full speed" if size == full else f"{size:,} events/s offered"
            bound = LOOP_LAG_P99_MAX_MS if size == full else LOOP_LAG_P99_AT_TARGET_MAX_MS
            add(f"event-loop lag p99 < {bound:.0f} ms during (b), {where}", _fmt(p99),
                None if p99 is None else p99 < bound, note)  # fmt: skip
        long = _find(summaries, "hub", "ours_long", full)
        if long:
            start, settled = long.extra.get("rss_start_mb"), long.extra.get("rss_max_after_1min_mb")
            end = long.extra.get("rss_end_mb")
            growth = end / settled - 1 if end and settled else None
            add(f"triggerer RSS flat over {long.wall_s:.0f} s (end within {RSS_FLAT_GROWTH_MAX:.0%} of the highest "
                f"after 1 min)", f"{_fmt(start, 0)} → {_fmt(settled, 0)} → {_fmt(end, 0)} MB",
                None if growth is None else end <= settled * (1 + RSS_FLAT_GROWTH_MAX), note)  # fmt: skip
    for tok in sorted((s for s in summaries if s.group == "token" and s.runs), key=lambda s: s.case):
        calls, expected = tok.extra.get("token_calls"), tok.extra.get("expected_calls")
        met = None if calls is None or expected is None else abs(calls - expected) <= 1
        skew0 = tok.extra.get("skew_s") == 0
        what = "lifetimes elapsed (skew 0)" if skew0 else "refresh windows elapsed (default skew)"
        add(f"token calls = {what}, ±1",
            f"{_fmt(calls, 0)} calls vs {_fmt(expected, 0)} windows ({_fmt(tok.extra.get('lifetimes_elapsed'))} "
            f"lifetimes)", met)  # fmt: skip
    for new in ("mt4_sync", "mt5_incremental"):
        found = [s for s in summaries if s.group == "history" and s.case == new and s.runs]
        found.sort(key=lambda s: s.size)
        if len(found) >= 2:
            calls = [s.extra.get("calls") for s in found]
            what = "users" if new.startswith("mt4") else "history length"
            measured = " / ".join(f"{_fmt(s.extra.get('calls'), 0)} @ {s.size:,}" for s in found)
            add(f"{new} calls flat in {what}", measured, None if None in calls else max(calls) - min(calls) <= 1)
    if quick:
        for row in rows:
            row["note"] = ("quick mode: sizes too small for the targets; " + row["note"]).rstrip("; ")
    return rows


def _spread(s: Summary, key: str, digits: int = 2) -> str:
    low, high = s.spread.get(key, (float("nan"), float("nan")))
    median = getattr(s, key)
    if s.runs < 2:
        return _fmt(median, digits)
    return f"{_fmt(median, digits)} ({_fmt(low, digits)}-{_fmt(high, digits)})"


def _mark(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**MISSED**")


def markdown(summaries: list[Summary], meta: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"{meta['started']} · {meta['cpus']} CPUs · Python {meta['python']} · load avg at start {meta['loadavg']}, "
        f"at the end {meta.get('loadavg_end', '-')} · "
        f"medians of {meta['repeat']} run(s) per case, each run in its own child process; emulator in its own "
        f"process on loopback{' · QUICK MODE (tiny sizes)' if meta['quick'] else ''}.",
        "",
    ]
    snap = [s for s in summaries if s.group == "snapshot"]
    if snap:
        lines += [
            "## Users snapshot (MT4 `UsersRequest`, limit 5000)",
            "",
            "Medians, with min-max over the runs.",
            "",
            "| users | case | wall s | rows/s | client CPU s | peak RSS MB | RSS before MB | emulator CPU s | runs |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in sorted(snap, key=lambda s: (s.size, SNAPSHOT_CASES.index(s.case))):
            lines.append(
                f"| {s.size:,} | {SNAPSHOT_LABELS.get(s.case, s.case)} | {_spread(s, 'wall_s')} | {_fmt(s.rate)} | "
                f"{_spread(s, 'cpu_s')} | {_spread(s, 'peak_rss_mb', 0)} | {_fmt(s.base_rss_mb, 0)} | "
                f"{_fmt(s.emu_cpu_s)} | {s.runs}{f' ({s.failed} failed)' if s.failed else ''} |"
            )
        lines += [
            "",
            "| users | b/a (ours ÷ raw floor, wall) | b/d (ours ÷ decode floor, client CPU) | b0/a (no fetch-ahead) | "
            "c/b (naive ÷ ours, wall) | SDK ÷ ours (wall) | dlt ÷ ours (wall) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in snapshot_ratios(summaries):
            lines.append(
                f"| {r['size']:,} | {_fmt(r['b_over_a'])} | {_fmt(r['b_cpu_over_d_cpu'])} | {_fmt(r['b0_over_a'])} | "
                f"{_fmt(r['c_over_b'])} | {_fmt(r['sdk_over_b'])} | {_fmt(r['dlt_over_b'])} |"
            )
        lines.append("")
    hub = [s for s in summaries if s.group == "hub"]
    if hub or meta.get("hub_note"):
        lines += ["## Hub sampling", ""]
        if meta.get("hub_note"):
            lines += [meta["hub_note"], ""]
        if hub:
            lines += [
                "| case | stream | offered events/s | events | window s | events/s | ratio to floor | "
                "loop lag p50 ms | p99 ms | GC s (longest ms) | peak RSS MB | client CPU s | emulator CPU s | runs |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            order = list(HUB_LABELS)
            for s in sorted(hub, key=lambda s: (-s.size, order.index(s.case) if s.case in order else 99)):
                floor = _find(summaries, "hub", "floor", s.size)
                ratio = s.rate / floor.rate if floor and floor.rate and s.case != "floor" else None
                lines.append(
                    f"| {HUB_LABELS.get(s.case, s.case)} | {s.extra.get('stream', '')} | {s.size:,} | "
                    f"{_fmt(s.items, 0)} | "
                    f"{_fmt(s.wall_s)} | {_fmt(s.rate)} | {_fmt(ratio)} | {_fmt(s.extra.get('lag_p50_ms'))} | "
                    f"{_fmt(s.extra.get('lag_p99_ms'))} | {_fmt(s.extra.get('gc_total_s'))} "
                    f"({_fmt(s.extra.get('gc_max_ms'), 0)}) | {_fmt(s.peak_rss_mb, 0)} | {_fmt(s.cpu_s)} | "
                    f"{_fmt(s.emu_cpu_s)} | {s.runs}{f' ({s.failed} failed)' if s.failed else ''} |"
                )
            lines.append("")
    tok = [s for s in summaries if s.group == "token"]
    if tok:
        lines += [
            "## Token refresh",
            "",
            "| variant | threads x requests | wall s | requests/s | token calls | lifetimes elapsed | "
            "refresh windows (lifetime - skew) | expected calls | 401s | errors | runs |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in sorted(tok, key=lambda s: s.case):
            e = s.extra
            lines.append(
                f"| {s.case} (lifetime {_fmt(e.get('lifetime_s'), 0)} s, skew {_fmt(e.get('skew_s'))} s) | "
                f"{e.get('threads')} x {e.get('requests')} | {_fmt(s.wall_s)} | {_fmt(s.rate)} | "
                f"{_fmt(e.get('token_calls'), 0)} | {_fmt(e.get('lifetimes_elapsed'))} | "
                f"{_fmt(e.get('windows_elapsed'))} | {_fmt(e.get('expected_calls'), 0)} | "
                f"{_fmt(e.get('unauthorized'), 0)} | {_fmt(e.get('errors'), 0)} | {s.runs} |"
            )
        lines.append("")
    hist = [s for s in summaries if s.group == "history"]
    if hist:
        lines += [
            "## Hourly trade history (one run of the last full hour; calls = `/api/v2/` requests)",
            "",
            "| data | path | API calls | calls by method | wall s | rows landed | records read | runs |",
            "|---|---|---:|---|---:|---:|---:|---:|",
        ]
        for s in sorted(hist, key=lambda s: (s.case[:3], s.size, HISTORY_CASES.index(s.case))):
            e = s.extra
            routes = ", ".join(f"{k} {v}" for k, v in (e.get("calls_by_route") or {}).items())
            lines.append(
                f"| {e.get('label', s.size)} | {HISTORY_LABELS.get(s.case, s.case)} | {_fmt(e.get('calls'), 0)} | "
                f"{routes} | {_fmt(s.wall_s)} | {_fmt(s.items, 0)} | {_fmt(e.get('records_read'), 0)} | {s.runs}"
                f"{f' ({s.failed} failed)' if s.failed else ''} |"
            )
        lines.append("")
    rows = targets(summaries, meta["quick"])
    if rows:
        lines += ["## Targets", "", "| target | measured | result | note |", "|---|---|---|---|"]
        lines += [f"| {r['target']} | {r['measured']} | {_mark(r['met'])} | {r['note']} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def chart(summaries: list[Summary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    snap = [s for s in summaries if s.group == "snapshot"]
    sizes = sorted({s.size for s in snap})
    width = 0.8 / len(SNAPSHOT_CASES)
    if not sizes:
        for ax in axes[0]:
            ax.text(0.5, 0.5, "snapshot cases not run", ha="center", va="center", transform=ax.transAxes)
    for n, case in enumerate(SNAPSHOT_CASES if sizes else ()):
        found = [_find(summaries, "snapshot", case, size) for size in sizes]
        xs = [i + n * width for i in range(len(sizes))]
        axes[0][0].bar(xs, [f.rate if f else 0 for f in found], width, label=case)
        axes[0][1].bar(xs, [f.peak_rss_mb if f else 0 for f in found], width, label=case)
    for ax, title, unit in ((axes[0][0], "Users snapshot throughput", "rows/s"),
                            (axes[0][1], "Users snapshot peak RSS (per child)", "MiB")):  # fmt: skip
        ax.set_title(title)
        if sizes:
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [f"{s:,} users" for s in sizes])
            ax.set_ylabel(unit)
            ax.legend(fontsize=8)
    axes[0][1].axhline(OUR_RSS_MAX_MB, color="red", linestyle="--", linewidth=1)
    if sizes:
        axes[0][1].set_yscale("log")  # the naive baseline is GBs; ours must stay readable against the 400 MB line
    hub = [s for s in summaries if s.group == "hub" and s.runs]
    ax = axes[1][0]
    if hub:
        full = max(s.size for s in hub)
        labels = [s.case if s.size == full else f"{s.case}\n{s.size:,}/s offered" for s in hub]
        ax.bar(labels, [s.rate for s in hub], color="tab:purple")
        ax.axhline(HUB_EVENTS_MIN, color="red", linestyle="--", linewidth=1)
        for n, s in enumerate(hub):
            if "lag_p99_ms" in s.extra:
                label = f"lag p99 {s.extra['lag_p99_ms']:.1f} ms"
                ax.annotate(label, (n, s.rate), ha="center", va="bottom", fontsize=8)
    else:
        ax.text(0.5, 0.5, "hub cases not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Hub sampling")
    ax.set_ylabel("events/s")
    tok = [s for s in summaries if s.group == "token" and s.runs]
    ax = axes[1][1]
    if tok:
        xs = list(range(len(tok)))
        ax.bar([x - 0.2 for x in xs], [s.extra.get("token_calls", 0) for s in tok], 0.4, label="token calls")
        ax.bar([x + 0.2 for x in xs], [s.extra.get("windows_elapsed", 0) for s in tok], 0.4,
               label="refresh windows elapsed")  # fmt: skip
        ax.plot(xs, [s.extra.get("lifetimes_elapsed", 0) for s in tok], "k_", markersize=30,
                label="lifetimes elapsed")  # fmt: skip
        ax.set_xticks(xs, [s.case for s in tok])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "token case not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Token endpoint calls")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
