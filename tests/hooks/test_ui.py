"""Connection form metadata is valid for Airflow's provider schema (declarative) and legacy hook methods."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_cplugin.hooks import ui
from airflow_provider_cplugin.hooks.connection import EXTRA_KEYS
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

SCHEMAS = Path(airflow.__file__).parent


def test_declarative_entry_matches_provider_yaml_schema() -> None:
    schema = json.loads((SCHEMAS / "provider.yaml.schema.json").read_text())["properties"]["connection-types"]
    entry = ui.connection_type_info(
        "airflow_provider_cplugin.hooks.webapi.CPluginWebApiHook", CPluginWebApiHook.conn_type, "CPlugin Cloud WebAPI"
    )
    jsonschema.validate([entry], schema)
    assert set(ui.CONN_FIELDS) == set(EXTRA_KEYS)


def test_legacy_field_behaviour_matches_schema() -> None:
    schema = json.loads((SCHEMAS / "customized_form_field_behaviours.schema.json").read_text())
    behaviour = CPluginWebApiHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, schema)
    assert behaviour["relabeling"] == {"host": "API base URL", "login": "Client ID", "password": "Client secret"}
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}


@pytest.mark.skipif(importlib.util.find_spec("wtforms") is None, reason="wtforms/flask-appbuilder not installed")
def test_legacy_form_widgets() -> None:
    widgets = CPluginWebApiHook.get_connection_form_widgets()
    assert set(widgets) == set(ui.CONN_FIELDS)
