"""A bad parameter answered HTTP 400 ValidationProblemDetails (ASP.NET Core's ``[ApiController]`` answer, the
emulator's ``http400_validation`` quirk) is the same typed error as a 200 + ``Validation`` envelope, sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.emulator.quirks import HTTP400_VALIDATION
from airflow_provider_cplugin.exceptions import CPluginApiError
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook

PROBLEM = [{"path": "UsersRequest$", "quirks": ["http400_validation"], "times": None}]


@pytest.fixture
def emu(emulator: EmulatorProcess, airflow_conn: Any) -> Iterator[EmulatorProcess]:
    airflow_conn("cplugin_default", emulator.connection_json())
    emulator.set_faults([])
    yield emulator
    emulator.set_faults([])


@pytest.mark.parametrize("faults", [[], PROBLEM], ids=["envelope", "problem-details"])
def test_sync_hook_same_validation_error(emu: EmulatorProcess, faults: list[dict[str, Any]]) -> None:
    emu.set_faults(faults)
    before = emu.stats()["statuses"].get("400", 0)
    hook = CPluginWebApiHook()
    with pytest.raises(CPluginApiError) as excinfo:
        hook.get(hook.v2_path("UsersRequest"), {"limit": "abc"})
    err = excinfo.value
    assert err.code == "Validation" and "limit" in str(err) and "abc" in str(err)
    problem = bool(faults) or HTTP400_VALIDATION in emu.quirks  # the whole run may play it ($CPLUGIN_EMULATOR_QUIRKS)
    assert err.status == (400 if problem else 200)
    assert emu.stats()["statuses"].get("400", 0) - before == problem  # answered once, not retried


@pytest.mark.parametrize("faults", [[], PROBLEM], ids=["envelope", "problem-details"])
async def test_async_hook_same_validation_error(emu: EmulatorProcess, faults: list[dict[str, Any]]) -> None:
    emu.set_faults(faults)
    async with CPluginWebApiAsyncHook() as hook:
        with pytest.raises(CPluginApiError) as excinfo:
            await hook.get(await hook.v2_path("UsersRequest"), {"limit": "abc"})
    err = excinfo.value
    assert err.code == "Validation" and "limit" in str(err)
    assert err.status == (400 if faults or HTTP400_VALIDATION in emu.quirks else 200)
