"""Apache Airflow provider for the CPlugin Cloud WebAPI (MetaTrader 4/5 broker API)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-cplugin",
        "name": "CPlugin Cloud WebAPI",
        "description": "Hooks, operators, sensors and triggers for the CPlugin Cloud WebAPI (MT4/MT5).",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "cplugin_webapi",
                "hook-class-name": "airflow_provider_cplugin.hooks.webapi.CPluginWebApiHook",
            }
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
