"""The asset helpers on their own: what an operator declares (no duplicates, nothing guessed for run-time paths)
and which events a landing emits (only for declared aliases, read back as the task runner would send them)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.execution_time.task_runner import _serialize_outlet_events

from airflow_provider_cplugin.assets import (
    emit_landed,
    entity_alias,
    entity_asset,
    landed_extras,
    with_aliases,
    with_state_inlets,
)
from airflow_provider_cplugin.parquet.schemas import MT4_USER

LAKE = "file:///lake"
USERS_URI = "file:///lake/entity=mt4_users"


def test_a_templated_landing_has_no_asset_until_rendered() -> None:
    """Bug caught: an Asset built from the raw template text (``file:///{{ var }}/entity=...``), which no consumer
    ever matches."""
    assert entity_asset("file:///{{ var.value.lake }}", MT4_USER) is None
    assert entity_asset(LAKE, MT4_USER) == Asset(uri=USERS_URI)


def test_declared_aliases_and_inlets_are_never_duplicated() -> None:
    """The user's outlets/inlets are kept; an alias or Asset already among them is not added twice.

    Bugs caught: a duplicate alias (Airflow then records two events per landing); a run-time ``output_path``
    (an XComArg) turned into an Asset of its repr; a templated path's Asset guessed.
    """
    alias = entity_alias("mt4_users")
    assert with_aliases([alias], ["mt4_users", "mt4_trades"]) == [alias, entity_alias("mt4_trades")]
    assert with_aliases(alias, ["mt4_users"]) == [alias]
    assert with_aliases(None, ["mt4_users"]) == [alias]
    mine = Asset(uri="file:///elsewhere")
    assert with_state_inlets([mine, Asset(uri=USERS_URI)], LAKE, ["mt4_users"]) == [mine, Asset(uri=USERS_URI)]
    assert with_state_inlets(mine, LAKE, ["mt4_users"]) == [mine, Asset(uri=USERS_URI)]
    assert with_state_inlets(None, object(), ["mt4_users"]) == []
    assert with_state_inlets([mine], "file:///{{ ds }}", ["mt4_users"]) == [mine]


def files(*entities: str) -> list[dict[str, Any]]:
    return [{"entity": e, "rows": 3, "path": f"{LAKE}/entity={e}/part-{n}.parquet"} for n, e in enumerate(entities)]


def test_events_only_for_declared_aliases_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An entity landed without its alias among the outlets gets no event, and one warning names them all.

    Bugs caught: an event sent to an alias the task did not declare (Airflow rejects the whole task's events);
    the undeclared entity dropped silently; one warning per entity instead of one with the count.
    """
    extras = landed_extras(
        files("mt4_users", "mt4_users", "mt4_groups", "mt4_symbols"),
        context={},
        trade_platform="tp",
        platform_type="MT4",
        schemas={"mt4_users": MT4_USER.arrow_schema},
    )
    assert extras["mt4_users"]["rows"] == 6 and len(extras["mt4_users"]["files"]) == 2
    assert extras["mt4_groups"]["schema_fingerprint"] is None  # no schema given: none claimed
    events = OutletEventAccessors()
    logger = logging.getLogger("test.assets")
    with caplog.at_level(logging.INFO, logger="test.assets"):
        emitted = emit_landed({"outlet_events": events}, [entity_alias("mt4_users")], LAKE, extras, logger)
    assert emitted == [USERS_URI]
    sent: list[Any] = list(_serialize_outlet_events(events))  # JSON the task runner would send
    assert [(e["dest_asset_key"]["uri"], e["source_alias_name"]) for e in sent] == [(USERS_URI, "cplugin:mt4_users")]
    assert sent[0]["extra"]["rows"] == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "No asset event for 2 landed entit(ies) ['mt4_groups', 'mt4_symbols']: their alias (cplugin:<entity>) is "
        "not an outlet of this task"
    ]


def test_a_templated_landing_emits_nothing_for_its_unrendered_path() -> None:
    """Bug caught: an event for an Asset of the unrendered template (emit_landed is given the path the operator
    holds; a bare template there means no concrete Asset)."""
    extras = landed_extras(files("mt4_users"), context={}, trade_platform="tp", platform_type="MT4", schemas={})
    events = OutletEventAccessors()
    assert emit_landed({"outlet_events": events}, [entity_alias("mt4_users")], "file:///{{ ds }}", extras) == []
    assert list(_serialize_outlet_events(events)) == []
    assert emit_landed({}, [AssetAlias(name="cplugin:mt4_users")], LAKE, extras) == []  # no task runner: no events
