"""Apache Airflow provider for the CPlugin Cloud WebAPI (MetaTrader 4/5 broker API)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

INTEGRATION = "CPlugin Cloud WebAPI"
CONN_TYPE = "cplugin"
"""The connection type (``cplugin_webapi`` before: RFC 3986 schemes have no ``_``; such connections still read)."""
_PACKAGE = "airflow_provider_cplugin"


def _modules(kind: str, *names: str) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"{_PACKAGE}.{kind}.{n}" for n in names]}]


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

    The connection form (labels, placeholders, extra fields) is declared here, as Airflow 3.3 expects, rather than
    through the deprecated hook methods. ``config`` declares ``[cplugin]`` options (``airflow config list``).
    Imports nothing of Airflow: Airflow calls this while it loads its own configuration.
    """
    from airflow_provider_cplugin.hooks.ui import connection_type_info

    return {
        "package-name": "airflow-provider-cplugin",
        "name": INTEGRATION,
        "description": "Hooks, operators, sensors and triggers for the CPlugin Cloud WebAPI (MT4/MT5).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://cplugin.com/docs/webapi",
                "tags": ["service"],
            }
        ],
        "connection-types": [
            connection_type_info(f"{_PACKAGE}.hooks.webapi.CPluginWebApiHook", CONN_TYPE, INTEGRATION),
        ],
        "hooks": _modules("hooks", "webapi", "webapi_async"),
        "operators": _modules(
            "operators",
            "users_snapshot",
            "trade_history",
            "open_orders",
            "symbols",
            "margin_levels",
            "online_users",
            "webapi",
            "hub_sample",
            "daily_reports",
            "groups",
            "price_history",
            "mt5_symbols",
            "users_changes",
        ),
        "sensors": _modules("sensors", "platform_reachable", "history_complete"),
        "triggers": _modules("triggers", "condition", "hub_sample", "hub_event"),
        "config": {
            "cplugin": {
                "description": "Settings of the CPlugin Cloud WebAPI provider.",
                "options": {
                    "landing_path": {
                        "description": (
                            "Default landing zone of the operators' Parquet files (an absolute path or a URL: "
                            "file://, s3://...), used when a task gives no output_path. Empty: "
                            "$CPLUGIN_LANDING_PATH, else $AIRFLOW_HOME/data/cplugin."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-lake/cplugin",
                        "default": "",
                    }
                },
            }
        },
    }
