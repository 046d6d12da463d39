"""Integrity matrix, REST paging: the real snapshot operators against an emulator whose paged answers are broken one
precise way (``paging`` fault rules rewrite the REAL answer). Each run either lands exactly the generator's rows
(emulator/data.py: keys and contents, no duplicates) or fails with an error naming the method and page, leaving no
file and no temporary file under the landing directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset, Row
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, DuplicateKeyError
from airflow_provider_cplugin.hooks.paging import MAX_EMPTY_PAGES
from airflow_provider_cplugin.operators.base_snapshot import BaseSnapshotOperator
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.schemas import MT4_USER, MT5_ORDER, MT5_POSITION, EntitySchema

AREA = "REST paging"
CONFIG = EmulatorConfig(seed=11, mt4_users=3000, mt5_users=1000, anchor=1_767_225_600)


@dataclass(frozen=True)
class Target:
    """A paged read through a real operator: its first paged route (the one faults hit) and what it must land."""

    name: str
    operator: Callable[[str], BaseSnapshotOperator]
    route: str  # fault path regex
    method: str  # the API method an error must name
    page_size: int
    entities: tuple[EntitySchema, ...]  # in landing order; the first is read from ``route``

    def expected(self, ds: Dataset, entity: EntitySchema) -> list[Row]:
        if entity is MT4_USER:
            return [ds.mt4_user(i) for i in range(ds.mt4_user_count)]
        if entity is MT5_ORDER:
            return [ds.mt5_order(k) for k in range(ds.mt5_order_count)]
        return [ds.mt5_position(k) for k in range(ds.mt5_position_count)]


MT4_USERS = Target(
    "MT4 users",
    lambda landing: UsersSnapshotOperator(task_id="users", output_path=landing, page_size=500),
    route="/UsersRequest$",
    method="UsersRequest",
    page_size=500,  # 3000 users: 6 pages
    entities=(MT4_USER,),
)
MT5_ORDERS = Target(
    "MT5 orders",
    lambda landing: OpenOrdersSnapshotOperator(
        task_id="open5", cplugin_conn_id="cplugin_mt5", output_path=landing, page_size=25
    ),
    route="/OrderByGroup/",
    method="OrderByGroup",
    page_size=25,  # 100 orders: 4 pages (then 500 positions: 20 pages)
    entities=(MT5_ORDER, MT5_POSITION),
)
TARGETS = [pytest.param(MT4_USERS, id="mt4-users"), pytest.param(MT5_ORDERS, id="mt5-orders")]


@pytest.fixture(scope="module")
def paging_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        seed=CONFIG.seed, users=CONFIG.mt4_users, mt5_users=CONFIG.mt5_users, anchor=CONFIG.anchor
    ) as emu:
        yield emu


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(CONFIG)


@pytest.fixture
def emu(paging_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", paging_emulator.connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_CPLUGIN_MT5", paging_emulator.connection_json(paging_emulator.mt5_trade_platform))
    paging_emulator.set_faults([])
    yield paging_emulator
    paging_emulator.set_faults([])


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def run(op: BaseSnapshotOperator) -> dict[str, Any]:
    logical_date = datetime(2025, 12, 31, tzinfo=UTC)
    context = {
        "ti": SimpleNamespace(dag_id="integrity", task_id=op.task_id, map_index=-1),
        "logical_date": logical_date,
        "data_interval_start": logical_date,
        "data_interval_end": logical_date + timedelta(days=1),
        "run_id": "integrity__paging",
    }
    result: dict[str, Any] = op.execute(context)
    return result


def fire(emu: EmulatorProcess, target: Target, **rule: Any) -> int:
    """Install one fault on ``target``'s route; returns the faults-applied counter to compare against."""
    emu.set_faults([{"path": target.route, **rule}])
    return int(emu.stats()["faults_applied"])


def files_under(landing: Path) -> list[Path]:
    return sorted(p for p in landing.rglob("*") if p.is_file()) if landing.exists() else []


def assert_lands_exactly_the_generator(result: dict[str, Any], target: Target, ds: Dataset, landing: Path) -> None:
    by_entity = {f["entity"]: f for f in result["files"]}
    assert list(by_entity) == [e.name for e in target.entities]
    for entity in target.entities:
        landed = pq.read_table(by_entity[entity.name]["path"].removeprefix("file://"))
        keys = landed.select(list(entity.key)).to_pylist()
        assert len(keys) == len({tuple(k.values()) for k in keys}), f"{entity.name}: duplicate keys landed"
        expected = RecordBatchConverter(entity).convert(target.expected(ds, entity))
        assert landed.num_rows == expected.num_rows
        assert landed.equals(pa.Table.from_batches([expected]), check_metadata=False), f"{entity.name} differs"
    assert len(files_under(landing)) == len(target.entities)  # no temporary left beside them


def assert_nothing_landed(landing: Path) -> None:
    assert files_under(landing) == []  # neither a Parquet file nor a hidden temporary


# Rules and the error each must produce; ``page`` is the page the rule hits (``after`` = page - 1).
REFUSALS = [
    pytest.param(
        {"paging": {"drop_cursor": True}},
        r"page 1: meta\.paging\.hasMore is true but nextCursor is missing",
        marks=pytest.mark.matrix(
            area=AREA, fault="hasMore: true without nextCursor",
            expected="error naming method and page; nothing landed",
        ),
        id="hasMore-without-cursor",
    ),
    pytest.param(
        {"after": 1, "paging": {"null_data": True}},
        r"page 2: data is null but meta\.paging announces more",
        marks=pytest.mark.matrix(
            area=AREA, fault="data: null on a page with a cursor",
            expected="error naming method and page; nothing landed",
        ),
        id="null-data-with-cursor",
    ),
    pytest.param(
        {"after": 1, "paging": {"extra_rows": 7}},
        r"page 2: (507 rows for limit=500|32 rows for limit=25): the server ignored the page size",
        marks=pytest.mark.matrix(
            area=AREA, fault="page longer than the requested limit",
            expected="error naming method, page, rows and limit; nothing landed",
        ),
        id="page-longer-than-limit",
    ),
    pytest.param(
        {"after": 2, "times": None, "paging": {"repeat_cursor": True}},
        r"page 3: returned cursor '[^']+' again",
        marks=pytest.mark.matrix(
            area=AREA, fault="cursor loop (a page hands back the cursor it was asked with)",
            expected="error at the first repeat, naming method and page; nothing landed",
        ),
        id="cursor-loop",
    ),
    pytest.param(
        {"after": 1, "times": None, "paging": {"empty": True}},
        rf"page {MAX_EMPTY_PAGES + 2}: {MAX_EMPTY_PAGES + 1} empty pages in a row",
        marks=pytest.mark.matrix(
            area=AREA, fault="endless empty pages, each with a fresh cursor",
            expected=f"error after {MAX_EMPTY_PAGES} empty pages in a row; nothing landed",
        ),
        id="endless-empty-pages",
    ),
]  # fmt: skip


@pytest.mark.timeout(120)  # a backstop only: every refusal is asserted by its message and request count
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("rule", "error"), REFUSALS)
def test_paging_fault_is_refused_and_nothing_lands(
    emu: EmulatorProcess, landing: Path, target: Target, rule: dict[str, Any], error: str
) -> None:
    applied = fire(emu, target, **rule)
    with pytest.raises(CPluginApiError, match=rf"{target.method} {error}") as excinfo:
        run(target.operator(f"file://{landing}"))
    assert excinfo.value.method == "GET" and target.method in (excinfo.value.path or "")
    assert excinfo.value.activity_id  # support can find the broken answer
    assert emu.stats()["faults_applied"] > applied  # the refusal is the fault's doing
    assert_nothing_landed(landing)


@pytest.mark.matrix(
    area=AREA, fault="a few empty pages that still hand out a cursor", expected="tolerated: exactly the generator rows"
)
@pytest.mark.parametrize("target", TARGETS)
def test_a_few_empty_pages_with_cursors_land_exactly(
    emu: EmulatorProcess, dataset: Dataset, landing: Path, target: Target
) -> None:
    applied = fire(emu, target, after=1, times=3, paging={"empty": True})
    result = run(target.operator(f"file://{landing}"))
    assert emu.stats()["faults_applied"] - applied == 3
    assert result["files"][0]["pages"] == dataset_pages(dataset, target) + 3
    assert_lands_exactly_the_generator(result, target, dataset, landing)


def dataset_pages(ds: Dataset, target: Target) -> int:
    rows = len(target.expected(ds, target.entities[0]))
    return -(-rows // target.page_size)


@pytest.mark.matrix(
    area=AREA,
    fault="page 2 repeats the last rows of page 1, identical",
    expected="exact duplicates dropped (counted warning): exactly the generator rows",
)
@pytest.mark.parametrize("target", TARGETS)
def test_overlapping_pages_with_identical_rows_land_exactly(
    emu: EmulatorProcess, dataset: Dataset, landing: Path, target: Target
) -> None:
    overlap = target.page_size // 5
    applied = fire(emu, target, paging={"overlap": overlap})
    result = run(target.operator(f"file://{landing}"))
    assert emu.stats()["faults_applied"] - applied == 1
    assert result["files"][0]["records_read"] == len(target.expected(dataset, target.entities[0])) + overlap
    assert_lands_exactly_the_generator(result, target, dataset, landing)


@pytest.mark.matrix(
    area=AREA,
    fault="page 2 repeats the last rows of page 1, with a field changed",
    expected="DuplicateKeyError; nothing landed",
)
@pytest.mark.parametrize("target", TARGETS)
def test_overlapping_pages_with_conflicting_rows_fail(emu: EmulatorProcess, landing: Path, target: Target) -> None:
    field = "name" if target is MT4_USERS else "comment"
    fire(emu, target, paging={"overlap": target.page_size // 5, "alter": {field: "changed in flight"}})
    with pytest.raises(DuplicateKeyError) as excinfo:
        run(target.operator(f"file://{landing}"))
    assert excinfo.value.entity == target.entities[0].name
    assert excinfo.value.conflicting == target.page_size // 5
    assert_nothing_landed(landing)
