"""Connection form metadata for the Airflow UI, in the declarative ``provider.yaml`` format.

Airflow >= 3.2 reads ``conn-fields`` / ``ui-field-behaviour`` from the provider info (without importing the
hook) and deprecates the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``; the hook still
offers both methods, built from these same dicts, for Airflow 3.1.
"""

from __future__ import annotations

from typing import Any

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "env": {
        "label": "Environment",
        "description": "prod (cloud.mywebapi.com), staging (pre.mywebapi.com) or custom (host + auth_url below).",
        "schema": {"type": ["string", "null"], "enum": ["prod", "staging", "custom"], "default": "prod"},
    },
    "auth_url": {
        "label": "Identity server URL",
        "description": "OAuth2 authority for env=custom, e.g. https://auth.example.com (discovery is read from it).",
        "schema": {"type": ["string", "null"], "format": "url"},
    },
    "scopes": {
        "label": "Scopes",
        "description": "Space-separated OAuth2 scopes (default: webapi).",
        "schema": {"type": ["string", "null"], "default": "webapi"},
    },
    "trade_platform": {
        "label": "Default trade platform",
        "description": "Trade platform GUID used when a task does not name one.",
        "schema": {"type": ["string", "null"]},
    },
    "platform_type": {
        "label": "Platform type",
        "description": "MT4 or MT5 for the default trade platform; empty = look it up in /api/TradePlatforms.",
        "schema": {"type": ["string", "null"], "enum": ["MT4", "MT5"]},
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": "One deadline per call: token, every retry and decoding (default 30).",
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": 3600, "default": 30},
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": "Attempts for idempotent calls on 408/429/502/503/504 or network errors (default 3).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10, "default": 3},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true, false, or a path to a CA bundle; when set it wins over $REQUESTS_CA_BUNDLE.",
        "schema": {"type": ["string", "boolean", "null"], "default": True},
    },
    "allow_insecure_loopback": {
        "label": "Allow http on loopback",
        "description": "Only for a local emulator: allows plain http to localhost/127.0.0.1/[::1].",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
    "placeholders": {
        "host": "https://cloud.mywebapi.com (optional for env prod/staging)",
        "login": "OAuth2 client id from the CPlugin Toolbox",
        "password": "OAuth2 client secret",
        "extra": '{"env": "prod", "trade_platform": "<GUID>"}',
    },
}


def connection_type_info(hook_class_name: str, conn_type: str, hook_name: str) -> dict[str, Any]:
    """A ``connection-types`` entry for ``get_provider_info`` with the declarative UI metadata."""
    return {
        "connection-type": conn_type,
        "hook-class-name": hook_class_name,
        "hook-name": hook_name,
        "conn-fields": CONN_FIELDS,
        "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
    }


def legacy_field_behaviour() -> dict[str, Any]:
    """``get_ui_field_behaviour`` format (snake_case keys)."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def legacy_form_widgets() -> dict[str, Any]:
    """``get_connection_form_widgets`` format: wtforms fields (imported lazily: only the webserver has them)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        types = spec["schema"]["type"]
        label = lazy_gettext(spec["label"])
        if "boolean" in types and "string" not in types:
            widgets[name] = BooleanField(label, description=spec["description"])
        elif "integer" in types:
            widgets[name] = IntegerField(label, widget=BS3TextFieldWidget(), description=spec["description"])
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=spec["description"])
    return widgets
