"""Where landings go: one place that turns an operator's ``output_path`` (+ storage connection) into a root.

Every operator and the hub trigger resolve their landing root here, so validation (an absolute URL or path, no
``..``) and the storage connection (``output_conn_id``, as common.io's transfer operators take it) are decided once.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath, conf

from airflow_provider_cplugin.exceptions import CPluginConfigError

LANDING_PATH_ENV = "CPLUGIN_LANDING_PATH"
CONFIG_SECTION = "cplugin"


def default_landing_path() -> str:
    """``[cplugin] landing_path``, else ``$CPLUGIN_LANDING_PATH``, else ``$AIRFLOW_HOME/data/cplugin`` (local disk).

    The option is read from Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__CPLUGIN__LANDING_PATH``); an
    empty value falls through.
    """
    configured = (conf.get(CONFIG_SECTION, "landing_path", fallback="") or "").strip()
    if configured:
        return configured
    configured = os.environ.get(LANDING_PATH_ENV, "").strip()
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return f"file://{os.path.join(home, 'data', 'cplugin')}"


def check_output_path(output_path: str | None, field: str = "output_path") -> str:
    """The landing URL to use; a relative path or one with ``..`` segments is a config error naming ``field``."""
    url = output_path if output_path is not None else default_landing_path()
    if not isinstance(url, str) or not url.strip():
        raise CPluginConfigError(field, f"must be a non-empty URL or absolute path, got {url!r}")
    parts = urlsplit(url)
    path = parts.path if parts.scheme else url
    if not parts.scheme and not path.startswith("/"):
        raise CPluginConfigError(field, f"{url!r} is relative: give an absolute path or a URL (file://, s3://...)")
    if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not path.startswith("/")):
        # file://data/x names host "data", not a path: almost always a relative path meant as file:///...
        raise CPluginConfigError(field, f"{url!r} is not an absolute file URL: write file:///absolute/path")
    if ".." in path.split("/"):
        raise CPluginConfigError(field, f"{url!r} climbs out of its base with '..'")
    return url


def landing_root(output_path: str | None, output_conn_id: str | None = None) -> ObjectStoragePath:
    """The validated landing root as an ``ObjectStoragePath`` bound to the storage connection, if any."""
    url = check_output_path(output_path)
    if output_conn_id:
        return ObjectStoragePath(url, conn_id=output_conn_id)
    return ObjectStoragePath(url)
