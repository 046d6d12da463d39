"""A hub sample request (the trigger's kwargs) is validated field by field before anything connects or lands.

Each bad input must raise :class:`CPluginConfigError` naming the field a user has to fix; each good spelling must
normalise to the one serializable form, so a trigger re-created from its kwargs asks for the same streams.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime.sample_request import SampleRequest, StreamSpec, parse_streams, sample_specs

GOOD: dict[str, Any] = {
    "cplugin_conn_id": "cplugin_default",
    "trade_platform": "tp-1",
    "platform_type": "MT4",
    "streams": [{"method": "StreamTicks", "args": ["EURUSD"]}],
    "window_end": 1_767_225_600.0,
    "output_path": "file:///tmp/landing",
    "run_name": "dag__task__2026-01-01",
    "partition_date": "2026-01-01",
}


def test_every_spelling_of_a_stream_normalises_to_the_same_kwargs() -> None:
    """A StreamSpec, ``"Method:arg"`` text and a dict with padded values all name one stream.

    Bugs caught: a StreamSpec passed through unnormalised or rebuilt without its args; args not stripped (a
    subscription to ``" EURUSD"``); a missing ``args`` key not read as no arguments.
    """
    spec = StreamSpec("StreamTicks", ("EURUSD",))
    assert StreamSpec.parse(spec) is spec
    spellings: list[Any] = [spec, " StreamTicks : EURUSD ", {"method": " StreamTicks ", "args": (" EURUSD",)}]
    assert [StreamSpec.parse(s) for s in spellings] == [spec] * 3
    assert StreamSpec.parse({"method": "StreamTrades"}) == StreamSpec("StreamTrades", ())
    assert sample_specs([spec, "StreamTrades"]) == [
        {"method": "StreamTicks", "args": ["EURUSD"]},
        {"method": "StreamTrades", "args": []},
    ]


def test_a_recreated_request_is_equal_to_the_first() -> None:
    """The triggerer re-creates the request from ``to_dict()``: same fields, same window, same streams.

    Bug caught: a field dropped from (or renamed in) the serialized form, so a re-created trigger samples
    something else.
    """
    first = SampleRequest(**GOOD, reconnect_delays=[0, 0.5], max_events=0, sequences="pkg.mod:sequences")
    again = SampleRequest(**first.to_dict())
    assert again == first and again.specs() == [StreamSpec("StreamTicks", ("EURUSD",))]


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        ({"method": "StreamTicks", "symbol": "EURUSD"}, "unknown keys ['symbol']"),
        ({"method": "  ", "args": []}, "'method' must be a non-empty string"),
        ({"method": None}, "'method' must be a non-empty string"),
        ({"method": "StreamTicks", "args": "EURUSD"}, "'args' must be a list of non-empty strings"),
        ({"method": "StreamTicks", "args": [""]}, "'args' must be a list of non-empty strings"),
        (":EURUSD", "names no stream method"),
        (42, "got int"),
        (["StreamTicks"], "got list"),
        ("StreamTrades:EURUSD", "StreamTrades takes at most 0 argument(s)"),
    ],
)
def test_a_malformed_stream_names_the_streams_field(stream: Any, problem: str) -> None:
    """Bugs caught: an unknown key (``symbol`` instead of ``args``) silently ignored, so every symbol's ticks are
    sampled; an empty or missing method subscribed as ``""``; a bare string taken for a list of one-letter args;
    an argument given to a stream that takes none."""
    with pytest.raises(CPluginConfigError) as caught:
        parse_streams([stream])
    assert caught.value.field == "streams" and problem in str(caught.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cplugin_conn_id": ""}, "cplugin_conn_id"),
        ({"trade_platform": "  "}, "trade_platform"),
        ({"platform_type": None}, "platform_type"),
        ({"output_path": 7}, "output_path"),
        ({"run_name": ""}, "run_name"),
        ({"window_end": math.nan}, "window_end"),
        ({"window_end": math.inf}, "window_end"),
        ({"window_end": "1767225600"}, "window_end"),
        ({"window_end": True}, "window_end"),
        ({"batch_rows": 0}, "batch_rows"),
        ({"batch_bytes": 1.5}, "batch_bytes"),
        ({"max_events": -1}, "max_events"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"transports": ["WebSockets", "ServerSentEvents"]}, "transports"),
        ({"transports": []}, "transports"),
        ({"reconnect_delays": [1, -0.5]}, "reconnect_delays"),
        ({"reconnect_delays": [1, math.nan]}, "reconnect_delays"),
        ({"reconnect_delays": "1,2"}, "reconnect_delays"),
        ({"streams": ["StreamTrades", " StreamTrades "]}, "streams"),
        ({"streams": "StreamTrades"}, "streams"),
    ],
)
def test_a_bad_request_field_is_named(change: dict[str, Any], field: str) -> None:
    """Bugs caught: a blank connection id or path deferred and failing later in the triggerer; a NaN/inf window
    end that never ends the sample (or ends it at once); negative reconnect delays; one stream listed twice (every
    event landed twice)."""
    with pytest.raises(CPluginConfigError) as caught:
        SampleRequest(**{**GOOD, **change})
    assert caught.value.field == field


def test_the_window_end_is_absolute_unix_seconds() -> None:
    """An int window end is as good as a float (a re-created trigger keeps the same absolute end).

    Bug caught: an int (``int(time.time()) + 60``) refused as not a number.
    """
    end = int(time.time()) + 60
    assert SampleRequest(**{**GOOD, "window_end": end}).window_end == end
