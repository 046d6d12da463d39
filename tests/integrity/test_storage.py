"""Landing integrity on real storage: a real S3-protocol server (moto_server) through the Amazon provider, and
local disk; reruns, kill -9 mid-write, concurrent writers, multi-part atomicity, bad output paths.

Truth: the emulator's generators (``emulator/data.py``) for the rows, a separate boto3 client (or the OS) for
what objects exist.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginConfigError
from airflow_provider_cplugin.operators.open_orders import OpenOrdersSnapshotOperator
from airflow_provider_cplugin.operators.users_snapshot import UsersSnapshotOperator
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter
from airflow_provider_cplugin.parquet.landing import PREVIOUS_SUFFIX, TMP_SUFFIX
from airflow_provider_cplugin.parquet.location import landing_root
from airflow_provider_cplugin.parquet.schemas import MT4_USER, MT5_ORDER, MT5_POSITION

from .s3_fixtures import S3_CONN_ID, MotoS3, child_env, s3_keys, s3_table

ANCHOR = 1_767_225_600  # 2026-01-01T00:00:00Z
CONFIG = EmulatorConfig(seed=11, mt4_users=2000, mt5_users=300, anchor=ANCHOR)
LOGICAL_DATE = datetime(2025, 12, 31, tzinfo=UTC)
CHILD = Path(__file__).with_name("storage_child.py")
STORAGE = "Storage"


@pytest.fixture(scope="module")
def storage_emulator() -> Iterator[EmulatorProcess]:
    with (
        EmulatorProcess(seed=CONFIG.seed, users=CONFIG.mt4_users, mt5_users=CONFIG.mt5_users, anchor=ANCHOR) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        # In the environment, so child processes running an operator find them too.
        patch.setenv("AIRFLOW_CONN_CPLUGIN_DEFAULT", emu.connection_json())
        patch.setenv("AIRFLOW_CONN_CPLUGIN_MT5", emu.connection_json(emu.mt5_trade_platform))
        yield emu


@pytest.fixture(scope="module")
def generated_users() -> pa.Table:
    """What the emulator serves for the users snapshot, converted exactly as the landing converts."""
    rows = list(Dataset(CONFIG).mt4_users(0, CONFIG.mt4_users))
    return pa.Table.from_batches([RecordBatchConverter(MT4_USER).convert(rows)])


def run(op: Any, attempt: int = 1) -> dict[str, Any]:
    context = {
        "ti": SimpleNamespace(dag_id="tests", task_id=op.task_id, map_index=-1, try_number=attempt),
        "logical_date": LOGICAL_DATE,
        "data_interval_start": LOGICAL_DATE,
        "data_interval_end": LOGICAL_DATE,
        "run_id": "test",
    }
    result: dict[str, Any] = op.execute(context)
    return result


@dataclass
class Store:
    """One landing location and an independent view of what is in it."""

    output_path: str
    conn_id: str | None
    moto: MotoS3 | None = None
    bucket: str = ""
    local: Path | None = None

    def names(self) -> list[str]:
        """Every object/file below the root, relative to it."""
        if self.moto is not None:
            return [k.removeprefix("cplugin/") for k in s3_keys(self.moto, self.bucket)]
        assert self.local is not None
        return sorted(str(p.relative_to(self.local)) for p in self.local.rglob("*") if p.is_file())

    def table(self, name: str) -> pa.Table:
        if self.moto is not None:
            return s3_table(self.moto, self.bucket, f"cplugin/{name}")
        assert self.local is not None
        return pq.read_table(self.local / name)

    def raw(self, name: str) -> bytes:
        if self.moto is not None:
            return bytes(self.moto.client().get_object(Bucket=self.bucket, Key=f"cplugin/{name}")["Body"].read())
        assert self.local is not None
        return (self.local / name).read_bytes()

    def relative(self, path: str) -> str:
        return path.split("/cplugin/", 1)[1]


def s3_store(moto: MotoS3, bucket: str, conn_id: str | None) -> Store:
    return Store(f"s3://{bucket}/cplugin", conn_id, moto=moto, bucket=bucket)


def local_store(tmp_path: Path) -> Store:
    return Store(f"file://{tmp_path}/cplugin", None, local=tmp_path / "cplugin")


@pytest.fixture(params=["s3-output_conn_id", "s3-plain-url", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return local_store(tmp_path)
    moto: MotoS3 = request.getfixturevalue("moto_s3")
    bucket: str = request.getfixturevalue("s3_bucket")
    return s3_store(moto, bucket, S3_CONN_ID if request.param == "s3-output_conn_id" else None)


def users_op(store: Store, **kwargs: Any) -> UsersSnapshotOperator:
    return UsersSnapshotOperator(
        task_id="users", output_path=store.output_path, output_conn_id=store.conn_id, page_size=500, **kwargs
    )


def leftovers(store: Store) -> list[str]:
    return [n for n in store.names() if n.endswith((TMP_SUFFIX, PREVIOUS_SUFFIX))]


@pytest.mark.matrix(
    area=STORAGE,
    fault="rerun into an existing partition (S3 with output_conn_id, plain s3:// URL, local)",
    expected="file replaced in place with exactly the served rows, no temporary left",
)
def test_first_run_and_rerun_land_exactly_once(
    store: Store, storage_emulator: EmulatorProcess, generated_users: pa.Table
) -> None:
    first = run(users_op(store))
    name = store.relative(first["path"])
    assert store.names() == [name]
    assert store.table(name).equals(generated_users)
    for attempt in (1, 2):  # a rerun of the same try (cleared) and a retry
        again = run(users_op(store), attempt=attempt)
        assert again["path"] == first["path"] and again["duplicates_dropped"] == 0
        assert store.names() == [name]
        assert store.table(name).equals(generated_users)


def start_child(store: Store, attempt: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), store.output_path, store.conn_id or "", str(attempt), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def wait_for(child: subprocess.Popen[str], marker: str) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == marker:
            return
    _, err = child.communicate()
    raise AssertionError(f"child exited {child.returncode} before {marker}: {err[-3000:]}")


def finish(child: subprocess.Popen[str], go: bool = False) -> tuple[int, str, str]:
    out, err = child.communicate("go\n" if go else None)
    return child.returncode, out, err


def result_of(out: str) -> dict[str, Any]:
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    parsed: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return parsed


@pytest.fixture(params=["s3-output_conn_id", "local"])
def child_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return local_store(tmp_path)
    return s3_store(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"), S3_CONN_ID)


@pytest.fixture
def s3_child_store(moto_s3: MotoS3, s3_bucket: str) -> Store:
    """Child processes cost ~10 s each (Airflow import): the concurrency cases run on S3 only (local disk: the
    same rule is tested in-process in tests/parquet)."""
    return s3_store(moto_s3, s3_bucket, S3_CONN_ID)


@pytest.mark.matrix(
    area=STORAGE,
    fault="worker killed (SIGKILL) mid-write, then retried",
    expected="no partial file visible; the retry lands exactly once and removes the dead try's temporary",
)
def test_kill_mid_write_then_rerun(
    child_store: Store, storage_emulator: EmulatorProcess, generated_users: pa.Table
) -> None:
    child = start_child(child_store, attempt=1, mode="kill-after-page-2")
    code, _, err = finish(child)
    assert code == -signal.SIGKILL, err[-2000:]
    assert not [n for n in child_store.names() if n.endswith(".parquet")]  # nothing a reader would pick up
    if child_store.local is not None:  # local disk keeps the dead try's temporary (S3 never saw a complete one)
        assert leftovers(child_store)
    result = run(users_op(child_store), attempt=2)
    name = child_store.relative(result["path"])
    assert child_store.names() == [name]
    assert child_store.table(name).equals(generated_users)


@pytest.mark.matrix(
    area=STORAGE,
    fault="second writer of the same target starts while the first has its file staged",
    expected="the first's live temporary is kept; both commit; final file complete",
)
def test_concurrent_writer_does_not_remove_a_live_temporary(
    s3_child_store: Store, storage_emulator: EmulatorProcess, generated_users: pa.Table
) -> None:
    first = start_child(s3_child_store, attempt=1, mode="pause-before-commit")
    wait_for(first, "STAGED")
    second = start_child(s3_child_store, attempt=1, mode="pause-before-pages")
    wait_for(second, "OPENED")  # its stale-temporary cleanup has run while the first's temporary exists
    code, out, err = finish(first, go=True)
    assert code == 0, err[-3000:]
    name = s3_child_store.relative(result_of(out)["path"])
    assert s3_child_store.table(name).equals(generated_users)
    code, out, err = finish(second, go=True)
    assert code == 0, err[-3000:]
    assert s3_child_store.names() == [name]
    assert s3_child_store.table(name).equals(generated_users)


@pytest.mark.matrix(
    area=STORAGE,
    fault="two writers of the same target running at once",
    expected="both commit (never a raw FileNotFoundError); final file complete",
)
def test_concurrent_writers_both_commit(
    s3_child_store: Store, storage_emulator: EmulatorProcess, generated_users: pa.Table
) -> None:
    children = [start_child(s3_child_store, attempt=1, mode="run") for _ in range(2)]
    outcomes = [finish(child) for child in children]
    for code, _, err in outcomes:
        assert code == 0 and "FileNotFoundError" not in err, err[-3000:]
    names = {s3_child_store.relative(result_of(out)["path"]) for _, out, _ in outcomes}
    assert s3_child_store.names() == sorted(names) and len(names) == 1
    assert s3_child_store.table(names.pop()).equals(generated_users)


# -- multi-part atomicity ----------------------------------------------------------------------------------------


def open_orders(store: Store, **kwargs: Any) -> OpenOrdersSnapshotOperator:
    return OpenOrdersSnapshotOperator(
        task_id="open5", cplugin_conn_id="cplugin_mt5", output_path=store.output_path, output_conn_id=store.conn_id,
        page_size=200, **kwargs,
    )  # fmt: skip


@pytest.fixture
def positions_fail(storage_emulator: EmulatorProcess) -> Iterator[None]:
    storage_emulator.set_faults([{"path": "PositionByGroup", "status": 500, "times": None}])
    yield
    storage_emulator.set_faults([])


@pytest.fixture(params=["s3-output_conn_id", "local"])
def parts_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return local_store(tmp_path)
    return s3_store(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"), S3_CONN_ID)


@pytest.mark.matrix(
    area=STORAGE,
    fault="MT5 positions fail after orders were read (multi-part snapshot), first run",
    expected="task fails; no file of the run visible, no temporary left",
)
def test_failed_part_leaves_no_file_of_the_run(parts_store: Store, positions_fail: None) -> None:
    with pytest.raises(CPluginApiError):
        run(open_orders(parts_store))
    assert parts_store.names() == []


@pytest.mark.matrix(
    area=STORAGE,
    fault="MT5 positions fail on a rerun (multi-part snapshot)",
    expected="task fails; both previous files unchanged byte for byte, no temporary left",
)
def test_failed_part_keeps_previous_files(parts_store: Store, storage_emulator: EmulatorProcess) -> None:
    # Different row groups than the rerun would write: a committed rerun would change the bytes.
    before = run(open_orders(parts_store, row_group_rows=50))
    previous = {store_name: parts_store.raw(store_name) for store_name in parts_store.names()}
    assert len(previous) == 2
    storage_emulator.set_faults([{"path": "PositionByGroup", "status": 500, "times": None}])
    try:
        with pytest.raises(CPluginApiError):
            run(open_orders(parts_store), attempt=2)
    finally:
        storage_emulator.set_faults([])
    assert {n: parts_store.raw(n) for n in parts_store.names()} == previous
    assert before["rows"] == Dataset(CONFIG).mt5_order_count + Dataset(CONFIG).mt5_position_count


@pytest.mark.matrix(
    area=STORAGE,
    fault="storage refuses the second part's rename during the commit",
    expected="the first part's previous file is restored; no temporary or copy left",
)
def test_commit_failure_restores_committed_parts(
    parts_store: Store, storage_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(open_orders(parts_store, row_group_rows=50))
    previous = {n: parts_store.raw(n) for n in parts_store.names()}
    fs = landing_root(parts_store.output_path, parts_store.conn_id).fs  # the one instance the landing uses
    real_mv = fs.mv

    def refuse_positions(source: str, target: str, *args: Any, **kwargs: Any) -> Any:
        if "entity=mt5_positions" in target and source.endswith(TMP_SUFFIX):
            raise PermissionError("store refused the rename")
        return real_mv(source, target, *args, **kwargs)

    monkeypatch.setattr(fs, "mv", refuse_positions)
    with pytest.raises(PermissionError, match="refused"):
        run(open_orders(parts_store), attempt=2)
    monkeypatch.undo()
    assert {n: parts_store.raw(n) for n in parts_store.names()} == previous


def test_positions_and_orders_both_land(parts_store: Store) -> None:
    data = Dataset(CONFIG)
    result = run(open_orders(parts_store))
    by_entity = {f["entity"]: f for f in result["files"]}
    assert by_entity[MT5_ORDER.name]["rows"] == data.mt5_order_count
    assert by_entity[MT5_POSITION.name]["rows"] == data.mt5_position_count
    assert sorted(parts_store.names()) == sorted(parts_store.relative(f["path"]) for f in result["files"])


# -- bad output paths ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_path", ["data/cplugin", "file://data/cplugin", "/srv/lake/../etc", "s3://b/x/../y"])
@pytest.mark.matrix(
    area=STORAGE,
    fault="output_path relative or climbing out with '..'",
    expected="CPluginConfigError naming output_path; no API call, nothing written",
)
def test_bad_output_path_is_a_config_error(output_path: str, storage_emulator: EmulatorProcess) -> None:
    with pytest.raises(CPluginConfigError) as at_parse:
        UsersSnapshotOperator(task_id="users", output_path=output_path)
    assert at_parse.value.field == "output_path"
    templated = UsersSnapshotOperator(task_id="users", output_path="{{ var.value.lake }}")
    templated.output_path = output_path  # as rendered at run time
    calls = storage_emulator.stats()["requests_total"]
    with pytest.raises(CPluginConfigError) as at_run:
        run(templated)
    assert at_run.value.field == "output_path"
    assert storage_emulator.stats()["requests_total"] == calls


def test_output_conn_id_is_templated() -> None:
    assert "output_conn_id" in UsersSnapshotOperator.template_fields
    assert "output_conn_id" in OpenOrdersSnapshotOperator.template_fields
