"""Hook behaviours a plausible bug would break unseen by the other hook tests (found by `make mutate`,
docs/mutation.md)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook


def test_sync_hook_logs_no_token_it_ever_used(
    emulator: EmulatorProcess, airflow_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Every token of the session (the first one and the one after a 401 refresh), not only the last."""
    caplog.set_level(logging.DEBUG)
    airflow_conn("cplugin_default", emulator.connection_json())
    hook = CPluginWebApiHook()
    issued_before = emulator.stats()["tokens_issued"]
    hook.server_time()
    first = hook.get_access_token()
    emulator.revoke_tokens()
    hook.server_time()  # 401, one refresh, re-sent
    second = hook.get_access_token()
    assert first != second and emulator.stats()["tokens_issued"] == issued_before + 2
    assert "refreshing the token" in caplog.text
    assert first not in caplog.text and second not in caplog.text
    assert emulator.client_secret not in caplog.text
