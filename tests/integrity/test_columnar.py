"""Integrity matrix, columnar decoding: a page body decoded straight to Arrow (``PageDecoder.body``, the path every
REST landing takes) lands exactly what the records path lands, or fails with the same error naming entity.field, for
every conversion fault of ``test_conversion.py``; the envelope facts the pager checks come from the same body.

Truth: the records path on the same records (itself proven against the emulator's generators in
``test_conversion.py``) and the emulator's generators for a whole landing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.hooks.envelope import decode_reply
from airflow_provider_cplugin.hooks.reply import Reply
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter, SchemaDriftError
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.schemas import MT4_USER, MT5_DEAL, EntitySchema

AREA = "Columnar decoding"
PATH = "/api/v2/MT4/tp/UsersRequest"
DATASET = Dataset(EmulatorConfig(seed=7, mt4_users=50, mt5_users=50))


def body(records: list[Any], *, indent: int | None = None, **envelope: Any) -> bytes:
    meta = {"activityId": "a" * 32, "paging": {"nextCursor": "c1", "hasMore": True}}
    return json.dumps({"data": records, "error": None, "meta": meta, **envelope}, indent=indent).encode()


def decoded(entity: EntitySchema, raw: bytes) -> tuple[pa.RecordBatch, PageDecoder]:
    decoder = PageDecoder(entity)
    response = decode_reply(Reply(200, raw), "GET", PATH, decoder)
    assert response.next_cursor == "c1" and response.has_more and response.activity_id == "a" * 32
    return response.data, decoder


def user(**fields: Any) -> dict[str, Any]:
    return {**DATASET.mt4_user(0), **fields}


CLEAN = [DATASET.mt4_user(i) for i in range(20)]
ODD_USERS = {
    "emulator page": CLEAN,
    ".NET minimum date": [user(lastDate="0001-01-01T00:00:00"), user(login=2, lastDate="0001-01-01T00:00:00Z")],
    "offset-less and 7-digit datetimes": [user(lastDate="2026-01-02T03:04:05.1234567"), user(login=2)],
    "far years": [user(lastDate="9999-12-31T23:59:59.9999999"), user(login=2, lastDate="1601-01-01T00:00:00Z")],
    "text for an integer": [user(leverage="100"), user(login=2)],
    "number for a text": [user(name=42), user(login=2)],
    "integral float for an integer": [user(leverage=100.0), user(login=2)],
    "undeclared field": [user(newField={"a": 1}), user(login=2, other=None)],
    "missing optional fields": [{"login": 5}, {"login": 6, "group": "real"}],
    "int64 limits": [user(login=2**63 - 1), user(login=-(2**63))],
}


@pytest.mark.matrix(area=AREA, fault="page body decoded in C++ (clean, odd datetimes, drift)",
                    expected="same batch as the records path")  # fmt: skip
@pytest.mark.parametrize("case", list(ODD_USERS))
@pytest.mark.parametrize("indent", [None, 2])
def test_a_body_lands_what_the_records_path_lands(case: str, indent: int | None) -> None:
    records = ODD_USERS[case]
    batch, _ = decoded(MT4_USER, body(records, indent=indent))
    assert batch.equals(RecordBatchConverter(MT4_USER).convert(records))


def test_a_clean_page_is_decoded_in_cpp_and_drift_takes_the_records_path() -> None:
    _, clean = decoded(MT4_USER, body(CLEAN))
    _, drifted = decoded(MT4_USER, body(ODD_USERS["undeclared field"]))
    assert (clean.bodies, drifted.bodies) == (1, 0)


@pytest.mark.matrix(area=AREA, fault="MT5 *Msc epochs and datetimes in a body", expected="same batch as records")
def test_mt5_deals_body() -> None:
    deals = [DATASET.mt5_deal(k) for k in range(30)]
    batch, decoder = decoded(MT5_DEAL, body(deals))
    assert decoder.bodies == 1 and batch.equals(RecordBatchConverter(MT5_DEAL).convert(deals))


BAD = {
    "non-finite float": ([user(), user(login=2, balance="1e400")], r"^mt4_users\.balance: value .* not a finite"),
    "integer beyond int64": ([user(), user(login=2, leverage=2**70)], r"^mt4_users\.leverage: value .* int64"),
    "fractional integer": ([user(), user(login=2, leverage=1.5)], r"^mt4_users\.leverage: value .* int64"),
    "null key": ([user(), user(login=None)], r"^mt4_users\.login: 1 record\(s\) have no key"),
    "bad datetime": ([user(), user(login=2, lastDate="yesterday")], r"^mt4_users\.lastDate: value 'yesterday'"),
}


@pytest.mark.matrix(area=AREA, fault="lossy value in a body (non-finite, beyond int64, null key, bad datetime)",
                    expected="SchemaDriftError naming entity.field, as the records path")  # fmt: skip
@pytest.mark.parametrize("case", list(BAD))
def test_a_lossy_body_is_refused_like_the_records_path(case: str) -> None:
    records, message = BAD[case]
    with pytest.raises(SchemaDriftError, match=message):
        decoded(MT4_USER, body(records))


def test_an_undeclared_field_warns_once_and_keeps_its_json(caplog: pytest.LogCaptureFixture) -> None:
    decoder = PageDecoder(MT4_USER)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            batch = decode_reply(Reply(200, body([user(zz=1)])), "GET", PATH, decoder).data
    assert batch.column("_extra").to_pylist() == ['{"zz": 1}']
    assert sum("'zz' is not in the schema" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.matrix(area=AREA, fault="envelope oddities in a body (error at 200, trailing JSON, null data)",
                    expected="the general path's error or an empty page, never a quiet page")  # fmt: skip
def test_envelope_oddities_take_the_general_path() -> None:
    decoder = PageDecoder(MT4_USER)
    error = json.dumps({"data": None, "error": {"code": "Forbidden", "message": "no"}, "meta": None}).encode()
    with pytest.raises(Exception, match="Forbidden"):
        decode_reply(Reply(200, error), "GET", PATH, decoder)
    with pytest.raises(Exception, match="malformed JSON"):
        decode_reply(Reply(200, body([user()]) + b' {"data": []}'), "GET", PATH, decoder)
    overflow = body([user(), user(login=2, balance=1.0)]).replace(b'"balance": 1.0', b'"balance": 1e400')
    with pytest.raises(Exception, match="malformed JSON"):  # orjson refuses a number beyond float64
        decode_reply(Reply(200, overflow), "GET", PATH, decoder)
    with pytest.raises(Exception, match="not a WebAPI envelope"):
        decode_reply(Reply(200, b'{"data": [], "meta": {}}'), "GET", PATH, decoder)
    null = decode_reply(Reply(200, b'{"data": null, "error": null, "meta": {"paging": null}}'), "GET", PATH, decoder)
    assert null.data is None and not null.has_more
    assert decoder.bodies == 0
