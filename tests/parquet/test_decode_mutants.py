"""A page body is ONE envelope: whatever follows it (a second envelope, even one carrying an error) makes the body
malformed, never extra rows of the page (``parquet/decode.py`` routes it to the general path, which refuses it).
Truth: the rows the first envelope holds, from the emulator's generator. A record that is not an object is refused
with the entity and the record's place, on the body and the records path alike."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import Dataset
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.envelope import decode_reply
from airflow_provider_cplugin.hooks.reply import Reply
from airflow_provider_cplugin.parquet.convert import RecordBatchConverter, SchemaDriftError
from airflow_provider_cplugin.parquet.decode import PageDecoder
from airflow_provider_cplugin.parquet.schemas import MT4_USER

DATASET = Dataset(EmulatorConfig(seed=7, mt4_users=10, mt5_users=10))
PATH = "/api/v2/mt4/users"
META = {"activityId": "a" * 32, "paging": {"nextCursor": None, "hasMore": False}}


def envelope(first: int, count: int, error: dict[str, str] | None = None) -> bytes:
    data = [DATASET.mt4_user(i) for i in range(first, first + count)]
    return json.dumps({"data": data, "error": error, "meta": META}).encode()


@pytest.mark.parametrize("error", [None, {"code": "Internal", "message": "second half"}])
def test_a_second_json_value_after_the_envelope_is_malformed_never_more_rows(error: dict[str, str] | None) -> None:
    decoder = PageDecoder(MT4_USER)
    one = decode_reply(Reply(200, envelope(0, 3)), "GET", "/x", decoder).data
    assert one.column("login").to_pylist() == [DATASET.mt4_user(i)["login"] for i in range(3)]
    with pytest.raises(Exception, match="malformed JSON"):
        decode_reply(Reply(200, envelope(0, 3) + b" " + envelope(3, 2, error)), "GET", "/x", decoder)


@pytest.mark.parametrize(("record", "what"), [(None, "null"), (7, "a int"), ([1], "a list")])
def test_a_record_that_is_not_an_object_is_refused_naming_the_entity_and_its_place(record: Any, what: str) -> None:
    """Both paths: the page body (the C++ reader hands a null record to the general path) and the records."""
    data = [DATASET.mt4_user(0), record, DATASET.mt4_user(1)]
    message = rf"^mt4_users: record 2 of 3 is {what}, not an object$"
    body = json.dumps({"data": data, "error": None, "meta": META}).encode()
    with pytest.raises(SchemaDriftError, match=message):
        decode_reply(Reply(200, body), "GET", "/x", PageDecoder(MT4_USER))
    with pytest.raises(SchemaDriftError, match=message):
        RecordBatchConverter(MT4_USER).convert(data)


@pytest.mark.parametrize("data", [[DATASET.mt4_user(0)], None])
def test_an_envelope_error_at_200_is_raised_even_beside_data_and_meta(data: Any) -> None:
    """Never a page (rows or an empty last page): the error's code and message, as the general path raises them."""
    error = {"code": "Internal", "message": "half a page"}
    body = json.dumps({"data": data, "error": error, "meta": META}).encode()
    decoder = PageDecoder(MT4_USER)
    with pytest.raises(CPluginApiError, match="Internal: half a page"):
        decode_reply(Reply(200, body), "GET", PATH, decoder)
    assert decoder.bodies == 0


def test_a_body_with_neither_data_nor_meta_is_not_an_envelope() -> None:
    with pytest.raises(CPluginApiError, match="not a WebAPI envelope"):
        decode_reply(Reply(200, b'{"error": null}'), "GET", PATH, PageDecoder(MT4_USER))
