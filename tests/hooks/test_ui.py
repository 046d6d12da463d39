"""Connection form metadata is valid for Airflow's provider schema (declarative) and legacy hook methods."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def test_legacy_form_widgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """wtforms/flask-appbuilder are not installed with Airflow 3 (only a 3.1 webserver has them): stand-ins record
    which field class each extra gets, with its label and description."""

    def field(kind: str) -> Any:
        return lambda label, **kwargs: {"kind": kind, "label": label, **kwargs}

    stubs = {
        "wtforms": SimpleNamespace(BooleanField=field("bool"), IntegerField=field("int"), StringField=field("str")),
        "flask_babel": SimpleNamespace(lazy_gettext=lambda text: f"i18n:{text}"),
        "flask_appbuilder": SimpleNamespace(),
        "flask_appbuilder.fieldwidgets": SimpleNamespace(BS3TextFieldWidget=lambda: "text-widget"),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    widgets = CPluginWebApiHook.get_connection_form_widgets()
    assert set(widgets) == set(ui.CONN_FIELDS) == set(EXTRA_KEYS)
    kinds = {name: w["kind"] for name, w in widgets.items()}
    assert kinds == {
        "env": "str",
        "auth_url": "str",
        "scopes": "str",
        "trade_platform": "str",
        "platform_type": "str",
        "timeout": "str",  # a number with decimals: text, parsed by the connection
        "max_attempts": "int",
        "verify": "str",  # true/false or a CA bundle path
        "allow_insecure_loopback": "bool",
    }
    for name, widget in widgets.items():
        assert widget["label"] == "i18n:" + ui.CONN_FIELDS[name]["label"]
        assert widget["description"] == ui.CONN_FIELDS[name]["description"]
        assert widget.get("widget", "text-widget") == "text-widget"
