"""OAuth2 identity server face (discovery + client-credentials token endpoint) and bearer checks.

Tokens are issued by :class:`~airflow_provider_cplugin.emulator.tokens.TokenStore`.
Hubs check tokens with :func:`token_status` (header or ``access_token`` query) or directly through
``get_state(app).tokens.validate(token)``; :func:`unauthorized` builds the matching bare 401.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.config import DEFAULT_SCOPE
from airflow_provider_cplugin.emulator.envelope import Handler, json_response
from airflow_provider_cplugin.emulator.state import get_state

SUPPORTED_SCOPES = frozenset({DEFAULT_SCOPE})
TOKEN_PATH = "/connect/token"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def bearer_token(request: web.Request, allow_query: bool = False) -> str | None:
    """Token from ``Authorization: Bearer``, or (for hubs) the ``access_token`` query parameter."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return request.query.get("access_token") or None
    return None


def token_status(request: web.Request, allow_query: bool = False) -> str:
    """``valid``/``expired``/``unknown`` for the request's bearer token (hubs pass ``allow_query=True``)."""
    return get_state(request).tokens.status(bearer_token(request, allow_query))


def unauthorized(status: str) -> web.Response:
    """Bare 401 like ASP.NET JwtBearer: no body, no envelope."""
    challenge = "Bearer"
    if status == "expired":
        challenge = 'Bearer error="invalid_token", error_description="The token expired"'
    elif status == "unknown":
        challenge = 'Bearer error="invalid_token"'
    return web.Response(status=401, headers={"WWW-Authenticate": challenge})


def _origin(request: web.Request) -> str:
    # Built from the Host the client used, so the token endpoint always has the authority's origin.
    return f"{request.scheme}://{request.host}"


def _oauth_error(status: int, error: str, description: str, request_id: str) -> web.Response:
    return json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={"x-request-id": request_id, "Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


async def discovery(request: web.Request) -> web.Response:
    origin = _origin(request)
    return json_response(
        {
            "issuer": origin,
            "token_endpoint": origin + TOKEN_PATH,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": sorted(SUPPORTED_SCOPES),
            "response_types_supported": ["token"],
            "claims_supported": ["client_id", "scope"],
        }
    )


async def token(request: web.Request) -> web.Response:
    state = get_state(request)
    config = state.config
    state.stats.token_requests += 1
    request_id = secrets.token_hex(8)

    def fail(status: int, error: str, description: str) -> web.Response:
        state.stats.token_errors += 1
        return _oauth_error(status, error, description, request_id)

    if not request.content_type.startswith("application/x-www-form-urlencoded"):
        return fail(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    form = await request.post()
    fields: dict[str, Any] = {k: str(v) for k, v in form.items()}
    basic = _basic_credentials(request)
    client_id, client_secret = basic or (fields.get("client_id", ""), fields.get("client_secret", ""))
    grant_type = fields.get("grant_type", "")
    if not grant_type:
        return fail(400, "invalid_request", "grant_type is missing")
    if grant_type != "client_credentials":
        return fail(400, "unsupported_grant_type", f"Grant type '{grant_type[:64]}' is not supported")
    if not (
        secrets.compare_digest(client_id.encode(), config.client_id.encode())
        and secrets.compare_digest(client_secret.encode(), config.client_secret.encode())
    ):
        # RFC 6749 §5.2: 401 when the client authenticated via the Authorization header, else 400.
        return fail(401 if basic else 400, "invalid_client", "Invalid client or client credentials")
    scope = " ".join(fields.get("scope", "").split()) or DEFAULT_SCOPE
    unknown = set(scope.split()) - SUPPORTED_SCOPES
    if unknown:
        return fail(400, "invalid_scope", f"Unknown scope(s): {' '.join(sorted(unknown))}")
    access_token, expires_in = state.tokens.issue(client_id, scope, _origin(request))
    state.stats.tokens_issued += 1
    return json_response(
        {"access_token": access_token, "expires_in": expires_in, "token_type": "Bearer", "scope": scope},
        headers={"x-request-id": request_id, "Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/api/**`` request needs a live token; hubs do their own check (header or query)."""
    if request.path.startswith("/api/"):
        status = token_status(request)
        if status != "valid":
            get_state(request).stats.unauthorized += 1
            return unauthorized(status)
    return await handler(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get(DISCOVERY_PATH, discovery)
    app.router.add_post(TOKEN_PATH, token)
