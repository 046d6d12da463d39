"""Airflow connection → :class:`WebApiConnectionConfig` (shared by the sync and async hooks).

Validation follows the SDK (reference §1): absolute URLs, no ``user:pass@``, trailing ``/`` stripped, HTTPS
mandatory except plain ``http`` to exactly ``localhost``/``127.0.0.1``/``[::1]`` when the connection opts in with
``allow_insecure_loopback``. Every problem is a :class:`CPluginConfigError` naming the connection field.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_cplugin.exceptions import CPluginConfigError

CONN_TYPE = "cplugin_webapi"

# Reference §1 (the SDK's PRESETS).
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "prod": ("https://cloud.mywebapi.com", "https://auth.cplugin.net"),
    "staging": ("https://pre.mywebapi.com", "https://pre.auth.cplugin.net"),
}
ENV_NAMES = ("prod", "staging", "custom")
PLATFORM_TYPES = ("MT4", "MT5")
DEFAULT_SCOPES: tuple[str, ...] = ("webapi",)
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# Hostnames as urlsplit reports them ("[::1]" comes back without brackets).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

EXTRA_KEYS = (
    "env",
    "auth_url",
    "scopes",
    "trade_platform",
    "platform_type",
    "timeout",
    "verify",
    "allow_insecure_loopback",
    "max_attempts",
)


class Secret:
    """A string that never shows itself in ``repr``/``str``/logs; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class WebApiConnectionConfig:
    """Validated settings of one ``cplugin_webapi`` connection."""

    api_base_url: str
    auth_url: str
    client_id: str
    client_secret: Secret = field(repr=False)
    env: str = "custom"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    trade_platform: str | None = None
    platform_type: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    allow_insecure_loopback: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    conn_id: str | None = None


def check_service_url(raw: Any, allow_insecure_loopback: bool) -> str:
    """The SDK's ``validateServiceUrl``: returns the normalised URL or raises ``ValueError(problem)``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be an absolute URL such as https://cloud.mywebapi.com")
    try:
        parts = urlsplit(raw.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid URL") from None
    if not parts.scheme or not host:
        raise ValueError(f"{raw!r} must be an absolute URL such as https://cloud.mywebapi.com")
    scheme = parts.scheme.lower()
    loopback = host.lower() in LOOPBACK_HOSTS
    if scheme != "https" and not (scheme == "http" and loopback and allow_insecure_loopback):
        if scheme == "http" and loopback:
            raise ValueError("must use HTTPS; plain http to loopback needs extra allow_insecure_loopback=true")
        raise ValueError(
            "must use HTTPS (plain http is allowed only to localhost/127.0.0.1/[::1] with allow_insecure_loopback)"
        )
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: it carries credentials.
        raise ValueError("must not contain credentials (user:pass@)")
    url = urlunsplit((scheme, parts.netloc.lower(), parts.path, parts.query, parts.fragment))
    return url.rstrip("/")


def _extras(conn: Any, extras: Mapping[str, Any] | None) -> dict[str, Any]:
    if extras is None:
        extras = getattr(conn, "extra_dejson", None)
        if extras is None:
            raw = getattr(conn, "extra", None)
            extras = json.loads(raw) if raw else {}
    out: dict[str, Any] = {}
    for key, value in dict(extras or {}).items():
        # Older UIs store form fields as extra__<conn_type>__<name>; accept both spellings.
        short = key.removeprefix(f"extra__{CONN_TYPE}__")
        if value in (None, "") and short in out:
            continue
        out[short] = value
    return out


_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})


def _as_bool(value: Any, name: str, conn_id: str | None) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE_WORDS:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CPluginConfigError(f"extra.{name}", f"must be true or false, got {value!r}", conn_id=conn_id)


def _scopes(value: Any, conn_id: str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_SCOPES
    if isinstance(value, str):
        return tuple(value.replace(",", " ").split())
    if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        return tuple(s.strip() for s in value if s.strip())
    raise CPluginConfigError("extra.scopes", f"must be a string or a list of strings, got {value!r}", conn_id=conn_id)


def _verify(value: Any, conn_id: str | None) -> bool | str:
    if value is None:
        return True
    if isinstance(value, str) and value.strip().lower() not in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip()  # a CA bundle path
    return _as_bool(value, "verify", conn_id)


def _positive(value: Any, name: str, default: float, conn_id: str | None) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CPluginConfigError(f"extra.{name}", f"must be a number, got {value!r}", conn_id=conn_id) from None
    if not number > 0 or number == float("inf"):
        raise CPluginConfigError(f"extra.{name}", f"must be > 0, got {value!r}", conn_id=conn_id)
    return number


def _max_attempts(value: Any, conn_id: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_ATTEMPTS
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CPluginConfigError("extra.max_attempts", f"must be an integer, got {value!r}", conn_id=conn_id) from None
    if number < 1 or number != float(value):
        raise CPluginConfigError("extra.max_attempts", f"must be an integer >= 1, got {value!r}", conn_id=conn_id)
    return number


def _trade_platform(value: Any, conn_id: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(uuid.UUID(str(value).strip()))
    except ValueError:
        raise CPluginConfigError(
            "extra.trade_platform", f"must be a trade platform GUID, got {value!r}", conn_id=conn_id
        ) from None


def _platform_type(value: Any, conn_id: str | None) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip().upper()
    if text not in PLATFORM_TYPES:
        raise CPluginConfigError("extra.platform_type", f"must be MT4 or MT5, got {value!r}", conn_id=conn_id)
    return text


def _host_url(conn: Any) -> str | None:
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return None
    port = getattr(conn, "port", None)
    if port and "://" in host and urlsplit(host).port is None:
        # A port typed in the (normally hidden) port field of a URL host.
        parts = urlsplit(host)
        host = urlunsplit((parts.scheme, f"{parts.netloc}:{port}", parts.path, parts.query, parts.fragment))
    return host


def from_connection(
    conn: Any, conn_id: str | None = None, *, extras: Mapping[str, Any] | None = None
) -> WebApiConnectionConfig:
    """Parse and validate an Airflow connection.

    :param conn: an ``airflow.sdk.Connection`` (anything with ``host``/``login``/``password``/``extra_dejson``).
    :param extras: already decoded extras (async callers pass ``await conn.aextra_dejson()``).
    """
    conn_id = conn_id or getattr(conn, "conn_id", None)
    ex = _extras(conn, extras)
    loopback_ok = _as_bool(ex.get("allow_insecure_loopback", False), "allow_insecure_loopback", conn_id)
    host = _host_url(conn)
    auth_raw = ex.get("auth_url") or None

    env = str(ex.get("env") or "").strip().lower()
    if not env:
        # Without an explicit env: a preset base URL names its env, anything else is custom, nothing is prod.
        env = next((name for name, (api, _) in ENVIRONMENTS.items() if host and host.rstrip("/") == api), "")
        env = env or ("custom" if host or auth_raw else "prod")
    if env not in ENV_NAMES:
        raise CPluginConfigError("extra.env", f"must be one of {', '.join(ENV_NAMES)}, got {env!r}", conn_id=conn_id)

    if env == "custom":
        if not host:
            raise CPluginConfigError("host", "the API base URL is required when env is custom", conn_id=conn_id)
        if not auth_raw:
            raise CPluginConfigError(
                "extra.auth_url", "the identity server URL (authority) is required when env is custom", conn_id=conn_id
            )
        try:
            api_base_url = check_service_url(host, loopback_ok)
        except ValueError as err:
            raise CPluginConfigError("host", str(err), conn_id=conn_id) from None
        try:
            auth_url = check_service_url(auth_raw, loopback_ok)
        except ValueError as err:
            raise CPluginConfigError("extra.auth_url", str(err), conn_id=conn_id) from None
    else:
        api_base_url, auth_url = ENVIRONMENTS[env]
        # The presets are fixed; a different URL next to env=prod/staging is a mistake, not an override.
        if host and host.rstrip("/") != api_base_url:
            raise CPluginConfigError(
                "host", f"env {env} uses {api_base_url}; leave host empty or set env to custom", conn_id=conn_id
            )
        if auth_raw and str(auth_raw).rstrip("/") != auth_url:
            raise CPluginConfigError(
                "extra.auth_url", f"env {env} uses {auth_url}; leave it empty or set env to custom", conn_id=conn_id
            )

    client_id = (getattr(conn, "login", None) or "").strip()
    if not client_id:
        raise CPluginConfigError("login", "the OAuth2 client id is required", conn_id=conn_id)
    secret = getattr(conn, "password", None) or ""
    if not secret:
        raise CPluginConfigError("password", "the OAuth2 client secret is required", conn_id=conn_id)

    return WebApiConnectionConfig(
        api_base_url=api_base_url,
        auth_url=auth_url,
        client_id=client_id,
        client_secret=Secret(secret),
        env=env,
        scopes=_scopes(ex.get("scopes"), conn_id),
        trade_platform=_trade_platform(ex.get("trade_platform"), conn_id),
        platform_type=_platform_type(ex.get("platform_type"), conn_id),
        timeout=_positive(ex.get("timeout"), "timeout", DEFAULT_TIMEOUT, conn_id),
        verify=_verify(ex.get("verify"), conn_id),
        allow_insecure_loopback=loopback_ok,
        max_attempts=_max_attempts(ex.get("max_attempts"), conn_id),
        conn_id=conn_id,
    )
