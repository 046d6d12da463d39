"""Request pipeline shared by every route: routing like ASP.NET Core, counters, fault injection, Idempotency-Key replay.

Order (outermost first): case-insensitive routing -> stats -> faults -> bearer auth -> idempotency -> envelope
errors -> unknown route -> handler.
Faults sit before auth so a rule can answer like a load balancer would, token or not; replays sit after it so
a stored answer is never handed out without a valid token. ``/_emulator/`` requests bypass stats and faults.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from airflow_provider_cplugin.emulator.envelope import REQUEST_QUIRKS_KEY, Handler
from airflow_provider_cplugin.emulator.faults import CONTROL_PREFIX, HTTP_KIND, apply_http_fault
from airflow_provider_cplugin.emulator.state import StoredResponse, get_state


def _canonical_path(app: web.Application, path: str) -> str | None:
    """``path`` spelt as the route that matches it ignoring case (ASP.NET Core routes are case-insensitive).

    Literal segments take the route's spelling, ``{variable}`` segments keep the request's. Among several
    matches the one with the most literal segments wins (a literal beats a variable, as in endpoint routing)."""
    parts = path.split("/")
    best: tuple[int, str] | None = None
    for resource in app.router.resources():
        pattern = resource.canonical.split("/")
        if len(pattern) != len(parts):
            continue
        out: list[str] = []
        literals = 0
        for want, got in zip(pattern, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    break
                out.append(got)
            elif want.lower() == got.lower():
                out.append(want)
                literals += 1
            else:
                break
        else:
            if best is None or literals > best[0]:
                best = (literals, "/".join(out))
    return best[1] if best is not None else None


@web.middleware
async def case_insensitive_routing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path that matches a route only ignoring case is served as that route, through the whole pipeline."""
    if request.match_info.http_exception is None:
        return await handler(request)
    raw_path = request.rel_url.raw_path  # still percent-encoded: variables pass through untouched
    canonical = _canonical_path(request.app, raw_path)
    if canonical is None or canonical == raw_path:
        return await handler(request)
    url = URL.build(path=canonical, query_string=request.rel_url.raw_query_string, encoded=True)
    # aiohttp resolves the route before middlewares run and offers no public re-dispatch: Application._handle
    # routes the re-spelt request and runs every middleware once for it (this one passes it through).
    return await request.app._handle(request.clone(rel_url=url))


@web.middleware
async def unknown_route_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No route: an empty 404 (405 with ``Allow`` for a known path), as ASP.NET Core endpoint routing answers.

    Without this aiohttp answers a text body ("404: Not Found") that no ASP.NET Core server sends."""
    exc = request.match_info.http_exception
    if exc is None:
        return await handler(request)
    headers = {"Allow": exc.headers["Allow"]} if exc.status == 405 and "Allow" in exc.headers else None
    return web.Response(status=exc.status, headers=headers)


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
    request[REQUEST_QUIRKS_KEY] = state.config.quirks
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
