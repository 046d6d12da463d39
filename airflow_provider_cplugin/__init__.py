"""Apache Airflow provider for the CPlugin Cloud WebAPI (MetaTrader 4/5 broker API)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

    The connection form (labels, placeholders, extra fields) is declared here, as Airflow 3.3 expects, rather than
    through the deprecated hook methods.
    """
    from airflow_provider_cplugin.hooks.ui import connection_type_info

    return {
        "package-name": "airflow-provider-cplugin",
        "name": "CPlugin Cloud WebAPI",
        "description": "Hooks, operators, sensors and triggers for the CPlugin Cloud WebAPI (MT4/MT5).",
        "versions": [__version__],
        "connection-types": [
            connection_type_info(
                "airflow_provider_cplugin.hooks.webapi.CPluginWebApiHook", "cplugin_webapi", "CPlugin Cloud WebAPI"
            )
        ],
        "hooks": [
            {
                "integration-name": "CPlugin Cloud WebAPI",
                "python-modules": [
                    "airflow_provider_cplugin.hooks.webapi",
                    "airflow_provider_cplugin.hooks.webapi_async",
                ],
            }
        ],
    }
