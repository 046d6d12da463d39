"""Request pipeline shared by every route: counters, fault injection and Idempotency-Key replay.

Order (outermost first): stats -> faults -> bearer auth -> idempotency -> envelope errors -> handler.
Faults sit before auth so a rule can answer like a load balancer would, token or not; replays sit after it so
a stored answer is never handed out without a valid token. ``/_emulator/`` requests bypass stats and faults.
"""

from __future__ import annotations

from aiohttp import web

from airflow_provider_cplugin.emulator.envelope import Handler
from airflow_provider_cplugin.emulator.faults import CONTROL_PREFIX, HTTP_KIND, apply_http_fault
from airflow_provider_cplugin.emulator.state import StoredResponse, get_state


def route_name(request: web.Request) -> str:
    """``GET /api/v2/MT4/{tradePlatform}/UsersRequest``-style key (the matched route pattern)."""
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else '<unmatched>'}"


@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    stats = get_state(request).stats
    stats.requests_total += 1
    stats.requests[route_name(request)] += 1
    response = await handler(request)
    stats.statuses[response.status] += 1
    return response


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = get_state(request)
    rule = state.faults.take(HTTP_KIND, request.method, request.path)
    if rule is None:
        return await handler(request)
    state.stats.faults_applied += 1
    return await apply_http_fault(request, rule, handler)


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A repeated POST with the same ``Idempotency-Key`` gets the stored first answer, not a second effect."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/api/"):
        return await handler(request)
    state = get_state(request)
    cache_key = (key, request.method, request.path_qs)
    stored = state.idempotency.get(cache_key)
    if stored is not None:
        state.stats.idempotent_replays += 1
        return web.Response(
            status=stored.status,
            body=stored.body,
            headers={"Content-Type": stored.content_type, "Idempotent-Replayed": "true"},
        )
    response = await handler(request)
    # Only complete answers are worth replaying (401s are not: the retry carries a new token).
    if isinstance(response, web.Response) and isinstance(response.body, bytes) and response.status == 200:
        content_type = response.headers.get("Content-Type", "application/json; charset=utf-8")
        state.remember(cache_key, StoredResponse(response.status, response.body, content_type))
    return response
