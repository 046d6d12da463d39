"""Helpers shared by the integrity tests.

* an emulator process serving exactly ``Dataset(config)`` for a pinned :class:`EmulatorConfig`, and Airflow
  connections to it (with extra settings such as a short ``timeout``);
* running an operator with the context fields it reads;
* every file under a landing directory, hidden temporaries included, so "nothing landed" means nothing at all;
* landed Parquet compared with the emulator's generators (keys in order, no duplicates, content columns).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import wire_instant
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.parquet.landing import TMP_SUFFIX
from airflow_provider_cplugin.parquet.schemas import EntitySchema, snake_case

ANCHOR = 1_767_225_600  # 2026-01-01T00:00:00Z: pinned so the data never depends on when the tests run
PINNED = EmulatorConfig(seed=7, mt4_users=3000, mt5_users=400, anchor=ANCHOR)
LOGICAL_DATE = datetime(2025, 12, 31, tzinfo=UTC)

Row = dict[str, Any]


def emulator_for(config: EmulatorConfig) -> EmulatorProcess:
    """An emulator process (not started) whose data set is ``Dataset(config)``."""
    return EmulatorProcess(
        seed=config.seed,
        users=config.mt4_users,
        mt5_users=config.mt5_users,
        trades_per_user=config.trades_per_user,
        open_trades_per_user=config.open_trades_per_user,
        online_percent=config.online_percent,
        token_lifetime=config.token_lifetime,
        client_id=config.client_id,
        client_secret=config.client_secret,
        tz_offset=config.server_tz_offset_hours,
        history_days=config.history_days,
        open_days=config.open_days,
        anchor=config.anchor,
    )


def connection_json(emu: EmulatorProcess, trade_platform: str | None = None, **extras: Any) -> str:
    """The emulator's Airflow JSON connection with ``extras`` (``timeout``, ``max_attempts``...) merged in."""
    conn = json.loads(emu.connection_json(trade_platform))
    conn["extra"].update(extras)
    return json.dumps(conn)


def run_operator(
    op: Any, logical_date: datetime = LOGICAL_DATE, interval: tuple[datetime, datetime] | None = None
) -> Any:
    """``op.execute`` with the context fields the operators read (a one-day data interval by default)."""
    start, end = interval or (logical_date, logical_date + timedelta(days=1))
    context = {
        "ti": SimpleNamespace(dag_id="integrity", task_id=op.task_id, map_index=-1),
        "logical_date": logical_date,
        "data_interval_start": start,
        "data_interval_end": end,
        "run_id": f"integrity__{logical_date.isoformat()}",
    }
    return op.execute(context)


def requests_to(emu: EmulatorProcess, method: str) -> int:
    """Requests the emulator received for the API method ``method`` (any platform, any path parameters)."""
    pattern = re.compile(rf"/{re.escape(method)}(/|$)")
    return sum(n for route, n in emu.stats()["requests"].items() if pattern.search(route))


def on_request(path: str, n: int, times: int | None = 1, **effect: Any) -> list[dict[str, Any]]:
    """Fault rules that let the first ``n - 1`` requests matching ``path`` through and hit the ``n``-th (and the
    ``times - 1`` after it; ``None`` = every one after it) with ``effect``.

    Rules match on the path only (not the query), so "page n" is "the n-th request of that method"; the first
    matching rule fires, so an effect-less rule used up after ``n - 1`` hits counts the requests to let through.
    """
    through = [{"path": path, "times": n - 1}] if n > 1 else []
    return [*through, {"path": path, "times": times, **effect}]


class Landing:
    """A landing directory and everything under it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def files(self) -> list[Path]:
        """Every file under the root, hidden ones (``.<name>.<uuid>.inprogress``) included."""
        return sorted(Path(d) / f for d, _, names in os.walk(self.root) for f in names)

    def assert_nothing_landed(self) -> None:
        files = self.files()
        assert files == [], f"a failed run left files behind: {[str(f.relative_to(self.root)) for f in files]}"

    def assert_no_temporaries(self) -> None:
        hidden = [f for f in self.files() if f.name.startswith(".") or f.name.endswith(TMP_SUFFIX)]
        assert hidden == [], f"temporary files visible after the run: {hidden}"

    def entity_file(self, entity: EntitySchema) -> Path:
        files = [f for f in self.files() if f"entity={entity.name}" in f.parts]
        assert len(files) == 1, f"expected one {entity.name} file, found {files}"
        return files[0]


@dataclass(frozen=True)
class Expected:
    """What the generators serve for one entity of a call: wire records in the order served, and the wire fields
    compared besides the key."""

    entity: EntitySchema
    rows: list[Row]
    columns: tuple[str, ...]

    def keys(self) -> list[tuple[Any, ...]]:
        return [tuple(r[k] for k in self.entity.key) for r in self.rows]


def _as_landed(value: Any, dtype: pa.DataType) -> Any:
    """A wire value as it reads back from Parquet (timestamps travel as ISO strings and land as UTC datetimes)."""
    if value is not None and pa.types.is_timestamp(dtype):
        return wire_instant(value)
    return value


def landed_keys(table: pa.Table, entity: EntitySchema) -> list[tuple[Any, ...]]:
    columns = [table.column(snake_case(k)).to_pylist() for k in entity.key]
    return list(zip(*columns, strict=True))


def assert_landed_exactly(landing: Landing, expected: list[Expected]) -> dict[str, pa.Table]:
    """The landing holds one final file per expected entity and nothing else (no temporary), each with exactly the
    served rows: same keys in the same order, no key twice, same content columns. Returns the tables."""
    landing.assert_no_temporaries()
    tables: dict[str, pa.Table] = {}
    paths = []
    for exp in expected:
        path = landing.entity_file(exp.entity)
        paths.append(path)
        table = pq.read_table(path)
        keys = landed_keys(table, exp.entity)
        assert len(set(keys)) == len(keys), f"{exp.entity.name}: {len(keys) - len(set(keys))} duplicate key(s)"
        assert table.num_rows == len(exp.rows), f"{exp.entity.name}: {table.num_rows} rows, served {len(exp.rows)}"
        assert keys == exp.keys(), f"{exp.entity.name}: landed keys differ from the served ones"
        for wire in exp.columns:
            column = table.column(snake_case(wire))
            want = [_as_landed(r.get(wire), column.type) for r in exp.rows]
            assert column.to_pylist() == want, f"{exp.entity.name}.{wire}: landed values differ from the served ones"
        tables[exp.entity.name] = table
    assert landing.files() == sorted(paths), "files other than the expected ones landed"
    return tables
