"""Airflow connection → :class:`WebApiConnectionConfig` (shared by the sync and async hooks).

Validation follows the SDK (reference §1): absolute URLs, no ``user:pass@``, trailing ``/`` stripped, HTTPS
mandatory except plain ``http`` to exactly ``localhost``/``127.0.0.1``/``[::1]`` when the connection opts in with
``allow_insecure_loopback``. Every problem is a :class:`CPluginConfigError` naming the connection field.
"""

from __future__ import annotations

import difflib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_cplugin import CONN_TYPE
from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.platforms import check_platform_type

# The first name of the type: RFC 3986 schemes have no "_" (Airflow warns when it builds a URI of one). Connections
# still of that type are read the same way; only the new name is registered with Airflow.
LEGACY_CONN_TYPES = ("cplugin_webapi",)
_FORM_PREFIXES = tuple(f"extra__{t}__" for t in (CONN_TYPE, *LEGACY_CONN_TYPES))

# Reference §1 (the SDK's PRESETS).
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "prod": ("https://cloud.mywebapi.com", "https://auth.cplugin.net"),
    "staging": ("https://pre.mywebapi.com", "https://pre.auth.cplugin.net"),
}
ENV_NAMES = ("prod", "staging", "custom")
DEFAULT_SCOPES: tuple[str, ...] = ("webapi",)
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 3
# One call's deadline covers the token, every attempt and decoding; beyond an hour it is a typo (and 1e12 s
# overflows the socket and event loop timers).
MAX_TIMEOUT = 3600.0
MAX_ATTEMPTS_LIMIT = 10
# RFC 7230 has no limit, but browsers, proxies and the API's front door stop around 2 KB; a host is much shorter.
MAX_URL_CHARS = 2048
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
    """Validated settings of one ``cplugin`` connection."""

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
    # Whether ``extra.verify`` was given: then it wins over $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE (sync hook).
    verify_explicit: bool = False
    allow_insecure_loopback: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    conn_id: str | None = None


def check_service_url(raw: Any, allow_insecure_loopback: bool) -> str:
    """The SDK's ``validateServiceUrl``: returns the normalised URL or raises ``ValueError(problem)``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be an absolute URL such as https://cloud.mywebapi.com")
    if len(raw.strip()) > MAX_URL_CHARS:
        raise ValueError(f"is {len(raw.strip())} characters long; a service URL has at most {MAX_URL_CHARS}")
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
    if parts.query or parts.fragment:
        # API paths are appended to the base URL: a ?query or #fragment would end up in the middle of every one.
        raise ValueError(f"{raw!r} must not have a ?query or #fragment")
    try:
        host.encode("idna")  # labels of 1-63 characters, 253 in all (what the resolver will accept)
    except UnicodeError:
        raise ValueError(f"host name {host[:80]!r}{'...' if len(host) > 80 else ''} is not a valid DNS name") from None
    url = urlunsplit((scheme, parts.netloc.lower(), parts.path, "", ""))
    return url.rstrip("/")


def _extras(conn: Any, extras: Any, conn_id: str | None) -> dict[str, Any]:
    if extras is None:
        extras = getattr(conn, "extra_dejson", None)
        if extras is None:
            raw = getattr(conn, "extra", None)
            try:
                extras = json.loads(raw) if raw else {}
            except ValueError as err:
                raise CPluginConfigError("extra", f"is not valid JSON: {err}", conn_id=conn_id) from None
    if not isinstance(extras, Mapping):
        kind = type(extras).__name__
        raise CPluginConfigError("extra", f"must be a JSON object of settings, got a {kind}", conn_id=conn_id)
    out: dict[str, Any] = {}
    for key, value in extras.items():
        # Older UIs store form fields as extra__<conn_type>__<name>; accept both spellings (and the old type name).
        short = next((str(key)[len(p) :] for p in _FORM_PREFIXES if str(key).startswith(p)), str(key))
        if short not in EXTRA_KEYS:
            raise CPluginConfigError(f"extra.{short}", _unknown_key(short), conn_id=conn_id)
        if value in (None, "") and short in out:
            continue
        out[short] = value
    return out


def _unknown_key(key: str) -> str:
    """A typo (``timout``) would otherwise silently fall back to the default."""
    close = difflib.get_close_matches(key, EXTRA_KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown setting; {hint}known: {', '.join(EXTRA_KEYS)}"


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
    """true/false or an existing CA bundle; anything else (``""``, a typo such as ``ture``) is an error: an empty
    value once read as false sent the client secret to a self-signed server."""
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise CPluginConfigError(
                "extra.verify", "is empty: use true, false or the path of a CA bundle", conn_id=conn_id
            )
        if text.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return text.lower() in _TRUE_WORDS
        if not os.path.exists(text):
            raise CPluginConfigError(
                "extra.verify",
                f"{text!r} is neither true/false nor an existing CA bundle file or directory",
                conn_id=conn_id,
            )
        return text
    if isinstance(value, bool):
        return value
    raise CPluginConfigError("extra.verify", f"must be true, false or a CA bundle path, got {value!r}", conn_id=conn_id)


def _number(value: Any, name: str, conn_id: str | None) -> float:
    # bool is an int in Python: ``timeout: true`` would silently become 1 s.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CPluginConfigError(f"extra.{name}", f"must be a number, got {value!r}", conn_id=conn_id)
    try:
        number = float(value)
    except ValueError:
        raise CPluginConfigError(f"extra.{name}", f"must be a number, got {value!r}", conn_id=conn_id) from None
    if number != number:  # NaN
        raise CPluginConfigError(f"extra.{name}", f"must be a number, got {value!r}", conn_id=conn_id)
    return number


def _timeout(value: Any, conn_id: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT
    number = _number(value, "timeout", conn_id)
    if not 0 < number <= MAX_TIMEOUT:
        raise CPluginConfigError(
            "extra.timeout", f"must be > 0 and <= {MAX_TIMEOUT:g} seconds, got {value!r}", conn_id=conn_id
        )
    return number


def _max_attempts(value: Any, conn_id: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_ATTEMPTS
    number = _number(value, "max_attempts", conn_id)
    if number != int(number) or not 1 <= number <= MAX_ATTEMPTS_LIMIT:
        raise CPluginConfigError(
            "extra.max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}", conn_id=conn_id
        )
    return int(number)


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
    return check_platform_type(value, "extra.platform_type", conn_id=conn_id)


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


def from_connection(conn: Any, conn_id: str | None = None, *, extras: Any = None) -> WebApiConnectionConfig:
    """Parse and validate an Airflow connection.

    :param conn: an ``airflow.sdk.Connection`` (anything with ``host``/``login``/``password``/``extra_dejson``).
    :param extras: already decoded extras (async callers pass ``await conn.aextra_dejson()``).
    :raises CPluginConfigError: naming the field (``host``, ``extra.timeout``...); unknown extra keys included.
    """
    conn_id = conn_id or getattr(conn, "conn_id", None)
    ex = _extras(conn, extras, conn_id)
    loopback_ok = _as_bool(ex.get("allow_insecure_loopback") or False, "allow_insecure_loopback", conn_id)
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
        timeout=_timeout(ex.get("timeout"), conn_id),
        verify=_verify(ex.get("verify"), conn_id),
        verify_explicit=ex.get("verify") is not None,
        allow_insecure_loopback=loopback_ok,
        max_attempts=_max_attempts(ex.get("max_attempts"), conn_id),
        conn_id=conn_id,
    )
