"""Hub request checks and token scrubbing a plausible bug would break unseen by the other realtime tests (found by
`make mutate`, docs/mutation.md)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from yarl import URL

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.realtime import transports
from airflow_provider_cplugin.realtime.errors import HubNegotiationError, HubTransportError
from airflow_provider_cplugin.realtime.negotiate import negotiate
from airflow_provider_cplugin.realtime.sample_request import SampleRequest, check_window
from airflow_provider_cplugin.realtime.transports import WebSocketTransport

TOKEN = "hub-token-0123456789abcdef"
HUB = URL("https://hub.example.test/hubs/mt4/v2")


def test_a_boolean_window_is_refused() -> None:
    with pytest.raises(CPluginConfigError) as excinfo:
        check_window(True)
    assert excinfo.value.field == "window"


@pytest.mark.parametrize("sequences", ["module_without_function", 12])
def test_sequences_must_name_module_and_function(sequences: Any) -> None:
    with pytest.raises(CPluginConfigError) as excinfo:
        SampleRequest(
            cplugin_conn_id="c", trade_platform="tp", platform_type="MT4", streams=["StreamTicks"],
            window_end=time.time(), output_path="file:///tmp/x", run_name="run", partition_date="2026-11-24",
            sequences=sequences,
        )  # fmt: skip
    assert excinfo.value.field == "sequences"


class _EchoingSession:
    """A session whose request fails with a library error quoting the request (URL and headers)."""

    def post(self, url: URL, headers: dict[str, str], **options: Any) -> Any:
        raise aiohttp.ClientError(f"POST {url} with {headers} failed: connection reset")


async def test_a_negotiate_error_quoting_the_request_never_shows_the_token() -> None:
    with pytest.raises(HubNegotiationError) as excinfo:
        await negotiate(_EchoingSession(), HUB, TOKEN, deadline_s=5)  # type: ignore[arg-type]
    assert "request failed: ClientError" in str(excinfo.value) and TOKEN not in str(excinfo.value)


async def test_a_websocket_connect_error_quoting_the_url_never_shows_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(session: Any, url: URL, **options: Any) -> Any:
        raise aiohttp.ClientError(f"cannot connect to {url}")

    monkeypatch.setattr(transports, "_ws_connect", refuse)
    with pytest.raises(HubTransportError) as excinfo:
        await WebSocketTransport.open(None, HUB, "conn-token", TOKEN, deadline_s=5)  # type: ignore[arg-type]
    assert "connect failed" in str(excinfo.value) and TOKEN not in str(excinfo.value)
