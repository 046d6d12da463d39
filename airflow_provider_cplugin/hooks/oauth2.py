"""OAuth2 client credentials exactly as the SDK does it (reference §2), transport-agnostic.

The HTTP calls themselves live in the hooks (requests for the sync hook, aiohttp for the async one); this module
holds what both share: discovery and token response parsing, the error mapping, and :class:`TokenCache`.

Why hand-written and not ``requests-oauthlib``/``authlib``: the behaviour that matters here is the SDK's own
(same-origin discovery check, loopback rule, 60 s skew, single in-flight request shared by sync threads and
async tasks, synthetic error codes, secret redaction), and neither library covers an aiohttp transport plus a
process-wide single-flight cache; the protocol part is a single form POST.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow.sdk.log import amask_secret, mask_secret

from airflow_provider_cplugin.exceptions import CPluginAuthError
from airflow_provider_cplugin.hooks.connection import Secret, WebApiConnectionConfig, check_service_url
from airflow_provider_cplugin.hooks.reply import Reply

DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_SKEW = 60.0
# Share of a token's lifetime that the skew may take at most. Tokens living >= 240 s get the SDK's full 60 s;
# shorter ones (a 2 s emulator token) are still reused for 3/4 of their life instead of never (SDK behaviour).
MAX_SKEW_FRACTION = 0.25
EXCERPT_CHARS = 500
_SECRET_FIELD = re.compile(r"client_secret=[^&\s]*", re.IGNORECASE)


@dataclass(frozen=True)
class TokenGrant:
    access_token: Secret
    expires_in: float


def origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def discovery_url(authority: str) -> str:
    return authority.rstrip("/") + DISCOVERY_PATH


def token_form(client_id: str, client_secret: Secret, scopes: tuple[str, ...]) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret.reveal()}
    if scopes:
        form["scope"] = " ".join(scopes)
    return form


def redact(text: str, secret: Secret | None) -> str:
    text = _SECRET_FIELD.sub("client_secret=<redacted>", text)
    if secret and secret.reveal() in text:
        text = text.replace(secret.reveal(), "<redacted>")
    return text


def parse_discovery(reply: Reply, authority: str, allow_insecure_loopback: bool) -> str:
    """Token endpoint from a discovery reply, or ``CPluginAuthError(discovery_failed|discovery_invalid)``."""
    if not 200 <= reply.status < 300:
        raise CPluginAuthError(
            "discovery_failed",
            f"Discovery endpoint {discovery_url(authority)} returned HTTP {reply.status}.",
            status=reply.status,
            request_id=reply.header("x-request-id"),
        )
    try:
        document = json.loads(reply.text)
    except ValueError:
        document = None
    endpoint = document.get("token_endpoint") if isinstance(document, dict) else None
    if not isinstance(endpoint, str):
        raise CPluginAuthError(
            "discovery_invalid", "Discovery document missing or invalid token_endpoint.", status=reply.status
        )
    try:
        endpoint = check_service_url(endpoint, allow_insecure_loopback)
    except ValueError as err:
        raise CPluginAuthError("discovery_invalid", f"token_endpoint {err}", status=reply.status) from None
    if origin(endpoint) != origin(authority):
        raise CPluginAuthError(
            "discovery_invalid",
            f"Discovery token_endpoint must use the identity URL origin {origin(authority)}, got {origin(endpoint)}.",
            status=reply.status,
        )
    return endpoint


def parse_token_reply(reply: Reply, secret: Secret) -> TokenGrant:
    """Access token from a token endpoint reply, or ``CPluginAuthError`` with the OAuth error fields."""
    request_id = reply.header("x-request-id")
    if not 200 <= reply.status < 300:
        code: str | None = None
        description: str | None = None
        try:
            body = json.loads(reply.text) if reply.text else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("error") if isinstance(body.get("error"), str) else None
            description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
        if code is None and description is None and reply.text:
            description = reply.text[:EXCERPT_CHARS]
        if 300 <= reply.status < 400:
            description = f"HTTP {reply.status}: the token endpoint redirected (redirects are refused)"
        raise CPluginAuthError(
            code,
            redact(description, secret) if description else None,
            status=reply.status,
            request_id=request_id,
        )
    try:
        body = json.loads(reply.text)
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    if (
        not isinstance(token, str)
        or not token
        or isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or expires_in <= 0
    ):
        raise CPluginAuthError(
            "invalid_response",
            "Token endpoint returned malformed JSON (missing access_token or expires_in).",
            status=reply.status,
            request_id=request_id,
        )
    return TokenGrant(Secret(token), float(expires_in))


def effective_skew(skew: float, lifetime: float) -> float:
    return max(0.0, min(skew, lifetime * MAX_SKEW_FRACTION))


@dataclass(frozen=True)
class _Cached:
    token: Secret
    expires_at: float
    skew: float


class TokenCache:
    """One client's token: reuse while ``expires_at - now > skew``, one in-flight request at a time.

    Sync callers (threads) serialise on a ``threading.Lock``; async callers on an ``asyncio.Lock`` per event
    loop. A caller that waited for someone else's request uses its result (even with ``force_refresh``), like
    the SDK's shared promise. Discovery is cached here on success and forgotten on failure.
    """

    def __init__(self, skew: float = DEFAULT_SKEW, clock: Callable[[], float] = time.monotonic) -> None:
        self.skew = skew
        self.clock = clock
        self.token_endpoint: str | None = None
        self._cached: _Cached | None = None
        self._generation = 0
        self._sync_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._async_locks_guard = threading.Lock()

    # -- state -----------------------------------------------------------------------------------------------

    def valid_token(self) -> Secret | None:
        cached = self._cached
        if cached is not None and cached.expires_at - self.clock() > cached.skew:
            return cached.token
        return None

    def store(self, grant: TokenGrant) -> Secret:
        self._cached = _Cached(
            grant.access_token, self.clock() + grant.expires_in, effective_skew(self.skew, grant.expires_in)
        )
        self._generation += 1
        return grant.access_token

    def invalidate(self) -> None:
        self._cached = None

    def _usable(self, force_refresh: bool, rejected: Secret | None, seen: int | None) -> Secret | None:
        """The cached token this caller may use without a new request, if any.

        ``seen``: the generation before waiting for the lock; if it moved, someone refreshed meanwhile and the
        caller joins that result (the SDK's shared promise). ``rejected``: the token a 401 answered; only that one
        needs replacing, so threads that hit 401 just after another thread refreshed don't refresh again.
        """
        current = self.valid_token()
        if current is None:
            return None
        if seen is not None and self._generation != seen:
            return current
        if rejected is not None:
            return None if current == rejected else current
        return None if force_refresh else current

    # -- sync ------------------------------------------------------------------------------------------------

    def get(
        self, fetch: Callable[[], TokenGrant], *, force_refresh: bool = False, rejected: Secret | None = None
    ) -> Secret:
        if (token := self._usable(force_refresh, rejected, None)) is not None:
            return token
        seen = self._generation
        with self._sync_lock:
            if (token := self._usable(force_refresh, rejected, seen)) is not None:
                return token
            token = self.store(fetch())
        # Registered with Airflow's secrets masker (task and supervisor) so a token that reaches a log line or a
        # traceback (a hub URL's access_token) is printed as ***.
        mask_secret(token.reveal())
        return token

    # -- async -----------------------------------------------------------------------------------------------

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._async_locks_guard:
            lock = self._async_locks.get(loop)
            if lock is None:
                lock = self._async_locks[loop] = asyncio.Lock()
            return lock

    async def aget(
        self,
        fetch: Callable[[], Awaitable[TokenGrant]],
        *,
        force_refresh: bool = False,
        rejected: Secret | None = None,
    ) -> Secret:
        if (token := self._usable(force_refresh, rejected, None)) is not None:
            return token
        seen = self._generation
        async with self._async_lock():
            if (token := self._usable(force_refresh, rejected, seen)) is not None:
                return token
            token = self.store(await fetch())
        await amask_secret(token.reveal())  # async twin: mask_secret's blocking send could deadlock a trigger
        return token


# -- process-wide registry -----------------------------------------------------------------------------------

_registry: dict[tuple[tuple[str, str, tuple[str, ...], str], float], TokenCache] = {}
_registry_lock = threading.Lock()


def cache_key(config: WebApiConnectionConfig) -> tuple[str, str, tuple[str, ...], str]:
    """(authority, client id, scopes, hash of the secret): the authority fixes the token endpoint via discovery,
    and hashing keeps the secret itself out of a long-lived dict key."""
    digest = hashlib.sha256(config.client_secret.reveal().encode()).hexdigest()
    return (config.auth_url, config.client_id, config.scopes, digest)


def token_cache_for(config: WebApiConnectionConfig, skew: float = DEFAULT_SKEW) -> TokenCache:
    """The process-wide cache for these credentials: every hook instance in a worker shares one token (hooks
    asking for another ``skew`` get a cache of their own, so the setting is never silently ignored)."""
    key = (cache_key(config), skew)
    with _registry_lock:
        cache = _registry.get(key)
        if cache is None:
            cache = _registry[key] = TokenCache(skew=skew)
        return cache


def clear_token_caches() -> None:
    """Forget every cached token and discovery result (tests)."""
    with _registry_lock:
        _registry.clear()


def describe_auth_failure(err: CPluginAuthError) -> str:
    """A hint for humans on top of the error (used by ``test_connection``)."""
    hints = {
        "invalid_client": "check the client id (login) and client secret (password)",
        "invalid_scope": "check extra.scopes",
        "unauthorized_client": "the client may not use the client_credentials grant",
        "discovery_failed": "check extra.auth_url (the identity server)",
        "discovery_invalid": "the identity server's discovery document is not usable",
        "invalid_response": "the token endpoint answered without access_token/expires_in",
    }
    hint = hints.get(err.error_code or "")
    return f"{err} ({hint})" if hint else str(err)


def fetch_token_with(
    config: WebApiConnectionConfig,
    cache: TokenCache,
    get: Callable[[str], Reply],
    post_form: Callable[[str, dict[str, str]], Reply],
) -> TokenGrant:
    """Discovery (cached in ``cache``) then the token request, with the caller's sync transport."""
    if cache.token_endpoint is None:
        cache.token_endpoint = parse_discovery(
            get(discovery_url(config.auth_url)), config.auth_url, config.allow_insecure_loopback
        )
    reply = post_form(cache.token_endpoint, token_form(config.client_id, config.client_secret, config.scopes))
    return parse_token_reply(reply, config.client_secret)


async def afetch_token_with(
    config: WebApiConnectionConfig,
    cache: TokenCache,
    get: Callable[[str], Awaitable[Reply]],
    post_form: Callable[[str, dict[str, str]], Awaitable[Reply]],
) -> TokenGrant:
    """Async twin of :func:`fetch_token_with` (same pure steps, awaited transport)."""
    if cache.token_endpoint is None:
        cache.token_endpoint = parse_discovery(
            await get(discovery_url(config.auth_url)), config.auth_url, config.allow_insecure_loopback
        )
    reply = await post_form(cache.token_endpoint, token_form(config.client_id, config.client_secret, config.scopes))
    return parse_token_reply(reply, config.client_secret)
