"""Mutation testing of the provider's logic with a catalogue of hand-written mutations (``make mutate``).

Each entry of ``scripts/mutations.toml`` models one realistic bug: an exact snippet of a provider module (it must
occur exactly once), its replacement, and the focused pytest selection that should catch it. The harness copies
the tracked tree to a temporary directory once, then for each mutant: patches the copy, runs the selection there
(``-x``, per-test and per-mutant timeouts), restores the file. Mutants run one at a time (the machine is shared).

Outcomes: ``killed`` (a test failed), ``error`` (the selection itself is broken: a node id not found, nothing
collected; counted apart, fix the entry), ``timeout`` (only a timeout caught it: a test that can only fail by timeout
is a gap, so these are reported apart and do not count as killed), ``survived``. Before the mutants, each
distinct selection is run once unmutated: a failing baseline would make every mutant look killed, so it stops
the run. A stale entry (snippet not found, or found more than once) is an error that names the entry.

    python scripts/mutate.py                      # the whole catalogue
    python scripts/mutate.py --area hooks         # one package
    python scripts/mutate.py --only S1,S2         # some entries
    python scripts/mutate.py --check              # validate the catalogue only (no tests run)

Writes ``<report-dir>/report.json`` and ``report.md`` (default ``.mutate/``) and prints the score.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "scripts" / "mutations.toml"
# A package of the provider, or "core" for its top-level modules (platforms.py, assets.py, lineage.py, ...).
AREAS = ("hooks", "sensors", "operators", "core", "triggers", "parquet", "realtime")
PACKAGE = "airflow_provider_cplugin"
PER_TEST_TIMEOUT_S = 90
MUTANT_TIMEOUT_S = 420
TIMEOUT_MARKERS = ("+++ Timeout +++", "Failed: Timeout >")


class CatalogueError(Exception):
    """A catalogue entry that cannot be applied: named, so it can be fixed."""


@dataclass(frozen=True)
class Mutation:
    id: str
    area: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    description: str

    def apply(self, text: str) -> str:
        count = text.count(self.original)
        if count != 1:
            where = "not found" if count == 0 else f"found {count} times"
            raise CatalogueError(f"mutation {self.id}: snippet {where} in {self.file}: {self.original!r}")
        return text.replace(self.original, self.replacement)


def area_of(file: str) -> str:
    """The package a provider file belongs to; top-level modules are "core", anything else "?"."""
    parts = file.split("/")
    if parts[0] != PACKAGE or len(parts) < 2:
        return "?"
    return "core" if len(parts) == 2 else parts[1]


def load(path: Path) -> list[Mutation]:
    data = tomllib.loads(path.read_text())
    mutations, seen = [], set()
    for raw in data.get("mutation", []):
        missing = {"id", "file", "original", "replacement", "tests", "description"} - set(raw)
        if missing:
            raise CatalogueError(f"mutation {raw.get('id', '?')}: missing {sorted(missing)}")
        if raw["id"] in seen:
            raise CatalogueError(f"mutation {raw['id']}: duplicate id")
        seen.add(raw["id"])
        area = area_of(raw["file"])
        if area not in AREAS:
            raise CatalogueError(f"mutation {raw['id']}: {raw['file']} is not in {PACKAGE}/ {AREAS}")
        if raw["original"] == raw["replacement"]:
            raise CatalogueError(f"mutation {raw['id']}: replacement equals the original")
        mutations.append(
            Mutation(
                raw["id"],
                area,
                raw["file"],
                raw["original"],
                raw["replacement"],
                tuple(raw["tests"]),
                raw["description"],
            )
        )
    return mutations


def validate(mutations: list[Mutation], root: Path) -> None:
    """Every stale entry at once (a rewrite usually breaks several), one line each."""
    problems: list[str] = []
    for m in mutations:
        source = root / m.file
        if not source.is_file():
            problems.append(f"mutation {m.id}: no file {m.file}")
            continue
        try:
            m.apply(source.read_text())
        except CatalogueError as err:
            problems.append(str(err))
        problems.extend(
            f"mutation {m.id}: no test path {selection}"
            for selection in m.tests
            if not (root / selection.split("::")[0]).exists()
        )
    if problems:
        raise CatalogueError(f"{len(problems)} stale entry(ies):\n  " + "\n  ".join(problems))


def copy_tree(dest: Path) -> None:
    """The tracked (and new, not ignored) files of the work tree: no .venv, caches or landed data."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_selection(tree: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float, str]:
    """Run one selection in the copy; returns (outcome, seconds, output tail). Outcome: pass / fail / timeout."""
    env = {**os.environ, "PYTHONPATH": str(tree), "AIRFLOW_HOME": str(tree / ".airflow_home")}
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--timeout={PER_TEST_TIMEOUT_S}",
        *tests,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the emulator and other children of this run only
        out, _ = proc.communicate()
        return "timeout", time.monotonic() - started, out.decode(errors="replace")[-3000:]
    text = out.decode(errors="replace")
    seconds = time.monotonic() - started
    if proc.returncode == 0:
        return "pass", seconds, text[-1500:]
    if proc.returncode in (4, 5):  # usage error / nothing collected: the selection is wrong, not the code
        return "error", seconds, text[-3000:]
    if any(marker in text for marker in TIMEOUT_MARKERS):
        return "timeout", seconds, text[-3000:]
    return "fail", seconds, text[-3000:]


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:300]
    return ""


def write_report(report_dir: Path, results: list[dict[str, Any]], started: float) -> dict[str, Any]:
    counts = {k: sum(1 for r in results if r["outcome"] == k) for k in ("killed", "timeout", "survived", "error")}
    total = len(results)
    score = round(100.0 * counts["killed"] / total, 1) if total else 0.0
    by_area: dict[str, dict[str, int]] = {}
    for r in results:
        area = by_area.setdefault(r["area"], {"total": 0, "killed": 0, "timeout": 0, "survived": 0, "error": 0})
        area["total"] += 1
        area[r["outcome"]] += 1
    summary = {
        "total": total,
        **counts,
        "score_percent": score,
        "by_area": by_area,
        "minutes": round((time.time() - started) / 60, 1),
        "results": results,
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Mutation testing report",
        "",
        f"{counts['killed']} of {total} mutations killed ({score} %); {counts['timeout']} only by timeout; "
        f"{counts['survived']} survived; {counts['error']} broken selections. {summary['minutes']} min.",
        "",
        "| area | total | killed | timeout | survived | error |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {a} | {v['total']} | {v['killed']} | {v['timeout']} | {v['survived']} | {v['error']} |"
            for a, v in sorted(by_area.items())
        ),
        "",
        "| id | outcome | s | bug modelled | caught by |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['id']} | {r['outcome']} | {r['seconds']:.0f} | {r['description']} | {r['caught_by']} |"
            for r in results
        ),
        "",
    ]
    (report_dir / "report.md").write_text("\n".join(lines))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE)
    parser.add_argument("--only", help="comma-separated mutation ids")
    parser.add_argument("--area", choices=AREAS, action="append", help="only these packages (repeatable)")
    parser.add_argument("--check", action="store_true", help="validate the catalogue, run nothing")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of each selection")
    parser.add_argument("--timeout", type=float, default=MUTANT_TIMEOUT_S, help="seconds per mutant run")
    parser.add_argument("--report-dir", type=Path, default=ROOT / ".mutate")
    args = parser.parse_args(argv)

    try:
        mutations = load(args.catalogue)
        validate(mutations, ROOT)
    except CatalogueError as err:
        print(f"catalogue error: {err}", file=sys.stderr)
        return 2
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutations}
        if unknown:
            print(f"unknown mutation ids: {sorted(unknown)}", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m.id in wanted]
    if args.area:
        mutations = [m for m in mutations if m.area in args.area]
    print(f"{len(mutations)} mutation(s) in {args.catalogue}: catalogue valid")
    if args.check or not mutations:
        return 0

    started = time.time()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cplugin-mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        if not args.no_baseline:
            for selection in sorted({m.tests for m in mutations}):
                outcome, seconds, out = run_selection(tree, selection, args.timeout)
                print(f"baseline {outcome:7} {seconds:5.0f}s {' '.join(selection)}", flush=True)
                if outcome != "pass":
                    print(out, file=sys.stderr)
                    print("a selection fails unmutated: fix it first", file=sys.stderr)
                    return 2
        for i, m in enumerate(mutations, 1):
            target = tree / m.file
            original = target.read_text()
            target.write_text(m.apply(original))
            try:
                outcome, seconds, out = run_selection(tree, m.tests, args.timeout)
            finally:
                target.write_text(original)
            verdict = {"fail": "killed", "timeout": "timeout", "pass": "survived", "error": "error"}[outcome]
            caught_by = first_failure(out) if verdict == "killed" else ""
            results.append(
                {
                    "id": m.id,
                    "area": m.area,
                    "file": m.file,
                    "outcome": verdict,
                    "seconds": round(seconds, 1),
                    "description": m.description,
                    "tests": list(m.tests),
                    "caught_by": caught_by,
                    "output_tail": "" if verdict == "killed" else out[-1500:],
                }
            )
            print(f"[{i}/{len(mutations)}] {m.id:28} {verdict:8} {seconds:5.0f}s  {caught_by[:110]}", flush=True)
            write_report(args.report_dir, results, started)
    summary = write_report(args.report_dir, results, started)
    print(
        f"score: {summary['killed']}/{summary['total']} killed ({summary['score_percent']} %), "
        f"{summary['timeout']} by timeout only, {summary['survived']} survived, {summary['error']} broken; "
        f"report: {args.report_dir / 'report.md'}"
    )
    for r in results:
        if r["outcome"] != "killed":
            print(f"  {r['outcome']}: {r['id']}: {r['description']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
