from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from airflow_provider_cplugin.parquet.convert import (
    RecordBatchConverter,
    SchemaDriftError,
    parse_epoch_millis,
    parse_utc_timestamps,
)
from airflow_provider_cplugin.parquet.schemas import ENTITIES, EXTRA_COLUMN, MSC, MT4_USER, MT5_DEAL, snake_case


def test_every_entity_has_snake_case_columns_and_keeps_wire_names() -> None:
    for entity in ENTITIES.values():
        schema = entity.arrow_schema
        for name, field in zip(entity.wire_names, schema, strict=False):
            assert field.name == snake_case(name)
            assert field.metadata[b"wire_name"] == name.encode()
        assert len(set(schema.names)) == len(schema.names), entity.name
        for key in entity.key:
            assert not schema.field(snake_case(key)).nullable


def test_types_follow_the_schema() -> None:
    batch = RecordBatchConverter(MT4_USER).convert(
        [{"login": 1001, "group": "real", "balance": 10, "registrationDate": "2026-01-02T03:04:05Z", "leverage": 100}]
    )
    assert batch.schema == MT4_USER.arrow_schema
    row = batch.to_pylist()[0]
    assert row["login"] == 1001
    assert row["balance"] == 10.0 and isinstance(row["balance"], float)
    assert row["registration_date"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row[EXTRA_COLUMN] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.1234567Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_timestamps_are_parsed_leniently_as_utc(text: str, expected: datetime) -> None:
    assert parse_utc_timestamps(pa.array([text, None])).to_pylist() == [expected, None]


def test_extra_fields_are_kept_as_json_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    converter = RecordBatchConverter(MT4_USER)
    with caplog.at_level(logging.WARNING):
        first = converter.convert([{"login": 1, "newField": {"a": 1}}, {"login": 2}])
        converter.convert([{"login": 3, "newField": 5}])
    assert [json.loads(v) if v else None for v in first.column(EXTRA_COLUMN).to_pylist()] == [
        {"newField": {"a": 1}},
        None,
    ]
    assert sum("newField" in r.getMessage() for r in caplog.records) == 1


def test_missing_optional_fields_become_null() -> None:
    row = RecordBatchConverter(MT5_DEAL).convert([{"deal": 7}]).to_pylist()[0]
    assert row["deal"] == 7
    assert row["login"] is None and row["time"] is None and row["symbol"] is None


def test_losslessly_coercible_wrong_types_are_coerced() -> None:
    batch = RecordBatchConverter(MT4_USER).convert([{"login": "1001", "balance": "12.5", "name": 42}])
    row = batch.to_pylist()[0]
    assert (row["login"], row["balance"], row["name"]) == (1001, 12.5, "42")


def test_a_value_that_does_not_fit_names_entity_and_field() -> None:
    with pytest.raises(SchemaDriftError, match=r"mt4_users\.leverage: value 'lots' \(str\)"):
        RecordBatchConverter(MT4_USER).convert([{"login": 1, "leverage": "lots"}])


def test_a_fractional_float_in_an_integer_field_is_refused_not_truncated() -> None:
    with pytest.raises(SchemaDriftError, match=r"mt4_users.*leverage.*1\.5"):
        RecordBatchConverter(MT4_USER).convert([{"login": 1, "leverage": 100}, {"login": 2, "leverage": 1.5}])


def test_an_integral_float_in_an_integer_field_is_coerced_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    converter = RecordBatchConverter(MT4_USER)
    with caplog.at_level(logging.WARNING):
        first = converter.convert([{"login": 1, "leverage": 200.0}, {"login": 2, "leverage": 50}])
        converter.convert([{"login": 3, "leverage": 100.0}])
    assert first.column("leverage").to_pylist() == [200, 50]
    assert sum("leverage" in r.getMessage() for r in caplog.records) == 1


def test_a_missing_key_is_an_error() -> None:
    with pytest.raises(SchemaDriftError, match=r"mt5_deals\.deal: 1 record"):
        RecordBatchConverter(MT5_DEAL).convert([{"deal": 1}, {"login": 5}])


def test_bad_timestamp_names_the_field() -> None:
    with pytest.raises(SchemaDriftError, match=r"mt4_users\.lastDate"):
        RecordBatchConverter(MT4_USER).convert([{"login": 1, "lastDate": "yesterday"}])


def test_msc_epochs_land_as_millisecond_timestamps() -> None:
    batch = RecordBatchConverter(MT5_DEAL).convert(
        [{"deal": 1, "timeMsc": "1767225600123"}, {"deal": 2, "timeMsc": "0"}, {"deal": 3}]
    )
    assert batch.schema.field("time_msc").type == MSC
    assert batch.column("time_msc").to_pylist() == [
        datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),  # MT5's 0 is served as such, like MT4's 1970-01-01 "unset" times
        None,
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2026-01-01T00:00:00.5Z", "1767225600123"], [1767225600500, 1767225600123]),  # SDK 0.3.3 reads ISO
        ([1767225600123], [1767225600123]),
    ],
)
def test_msc_accepts_iso_and_numbers(values: list[object], expected: list[int]) -> None:
    assert parse_epoch_millis(pa.array(values)).cast(pa.int64()).to_pylist() == expected


@pytest.mark.parametrize("value", ["soon", "1.5", "99999999999999999999", "253402300800000"])
def test_a_bad_msc_value_names_the_field(value: str) -> None:
    with pytest.raises(SchemaDriftError, match=rf"mt5_deals\.timeMsc: value '{value}' \(1 record\(s\)\) is not"):
        RecordBatchConverter(MT5_DEAL).convert([{"deal": 1, "timeMsc": value}])


def test_dotnet_min_datetime_is_null_and_years_beyond_ns_parse() -> None:
    values = pa.array(
        ["0001-01-01T00:00:00", "0001-01-01T00:00:00.0000000+00:00", "0001-01-01T00:00:01Z", "2300-01-01T00:00:00Z"]
    )
    assert parse_utc_timestamps(values).to_pylist() == [
        None,
        None,
        datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),  # not the sentinel: a real (if odd) value
        datetime(2300, 1, 1, tzinfo=UTC),
    ]
