"""``logger_name`` (Airflow's ``BaseHook`` argument) decides where both hooks' request lines go."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

NAMED = "airflow.task.hooks.risk.cplugin"  # BaseHook's naming: its log-config parent + the given name


def request_lines(caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    """Logger name -> messages of the hooks' request and retry lines (logged by ``Call`` and ``RetryDecisions``)."""
    lines: dict[str, list[str]] = {}
    for record in caplog.records:
        if record.module in ("call", "retry") and "ServerTime" in record.getMessage():
            lines.setdefault(record.name, []).append(record.getMessage())
    return lines


async def test_logger_name_names_the_request_and_retry_lines(
    emulator: EmulatorProcess, airflow_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=NAMED)  # a clean answer's line is DEBUG; Airflow's config sets the parent
    airflow_conn("cplugin_default", emulator.connection_json())
    # One 503 per hook: each logs a retry line and a success line.
    emulator.set_faults([{"path": "ServerTime$", "status": 503, "times": 2}])
    try:
        sync_hook = CPluginWebApiHook(logger_name="risk.cplugin")
        sync_hook.server_time()
        async with CPluginWebApiAsyncHook(logger_name="risk.cplugin") as async_hook:
            await async_hook.server_time()
    finally:
        emulator.set_faults([])
    lines = request_lines(caplog)
    assert set(lines) == {NAMED}, lines
    assert sum("retrying" in line for line in lines[NAMED]) == 2
    assert sum("-> HTTP 200" in line for line in lines[NAMED]) == 2
    # The same name Airflow gives the hooks' own ``log``.
    assert sync_hook.log.name == NAMED
    assert async_hook.log.name == NAMED


async def test_without_logger_name_the_module_loggers_are_used(
    emulator: EmulatorProcess, airflow_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    airflow_conn("cplugin_default", emulator.connection_json())
    CPluginWebApiHook().server_time()
    async with CPluginWebApiAsyncHook() as hook:
        await hook.server_time()
    assert set(request_lines(caplog)) == {
        "airflow_provider_cplugin.hooks.webapi",
        "airflow_provider_cplugin.hooks.webapi_async",
    }
