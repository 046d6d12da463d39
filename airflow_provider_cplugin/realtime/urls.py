"""Hub URL rules: HTTPS only, plain HTTP only to loopback with an explicit opt-in (reference §1)."""

from __future__ import annotations

from yarl import URL

from airflow_provider_cplugin.exceptions import CPluginConfigError

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def validate_hub_url(url: str, *, allow_insecure_loopback: bool = False, field: str = "hub_url") -> URL:
    """Parse and check a hub URL (``http(s)://host/hubs/...?...``); returns it without a trailing ``/``."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError) as exc:
        raise CPluginConfigError(field, f"not a URL: {exc}") from None
    if not parsed.is_absolute() or not parsed.host:
        raise CPluginConfigError(field, f"must be an absolute URL, got {url!r}")
    if parsed.user or parsed.password:
        raise CPluginConfigError(field, "must not carry user:password@")
    if parsed.scheme == "http":
        if not allow_insecure_loopback:
            raise CPluginConfigError(field, "plain http:// needs allow_insecure_loopback=True (tests only)")
        if parsed.host not in LOOPBACK_HOSTS:
            raise CPluginConfigError(field, f"plain http:// is only allowed to loopback, not {parsed.host!r}")
    elif parsed.scheme != "https":
        raise CPluginConfigError(field, f"scheme must be https (or http to loopback), got {parsed.scheme!r}")
    if parsed.fragment:
        raise CPluginConfigError(field, "must not have a #fragment")
    path = parsed.path.rstrip("/") or "/"
    return parsed.with_path(path, keep_query=True)


def with_query(url: URL, **params: str) -> URL:
    """``url`` plus ``params`` (existing keys such as ``tradePlatform`` are kept)."""
    return url.update_query(params)


def negotiate_url(hub: URL) -> URL:
    return hub.with_path(hub.path.rstrip("/") + "/negotiate", keep_query=True).update_query(negotiateVersion="1")


def websocket_url(url: URL) -> URL:
    return url.with_scheme("wss" if url.scheme == "https" else "ws")


def redact(url: URL) -> str:
    """URL for messages and logs: the ``access_token`` query value never appears."""
    if "access_token" in url.query:
        url = url.update_query(access_token="***")
    return str(url)


def redact_text(text: str, *secrets: str | None) -> str:
    """``text`` (a server body, a library's error message) with every given secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
