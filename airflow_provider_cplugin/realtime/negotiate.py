"""``POST {hub}/negotiate?negotiateVersion=1``: connection token and the transports the server offers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp
from yarl import URL

from airflow_provider_cplugin.realtime.errors import HubAuthError, HubNegotiationError
from airflow_provider_cplugin.realtime.urls import negotiate_url, redact, redact_text


@dataclass(frozen=True)
class Negotiation:
    connection_id: str
    # What the transport sends as ``id``: connectionToken (negotiateVersion 1) or connectionId (version 0).
    connection_token: str
    transports: tuple[str, ...]
    version: int


async def negotiate(session: aiohttp.ClientSession, hub: URL, token: str | None, deadline_s: float) -> Negotiation:
    """Errors never carry the token: the body is scrubbed (a server may echo the request) and aiohttp's own error,
    whose ``request_info`` holds the Authorization header, is not chained."""
    url = negotiate_url(hub)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    problem: str
    try:
        async with asyncio.timeout(deadline_s):
            async with session.post(url, headers=headers, allow_redirects=False) as resp:
                text = redact_text(await resp.text(), token)
                status = resp.status
    except TimeoutError:
        problem = f"no answer within {deadline_s:g}s"
    except aiohttp.ClientError as exc:
        problem = f"request failed: {type(exc).__name__}: {redact_text(str(exc), token)}"
    else:
        return _parse(url, status, text)
    raise HubNegotiationError(problem, url=redact(url))


def _parse(url: URL, status: int, text: str) -> Negotiation:
    if status in (401, 403):
        raise HubAuthError("the hub refused the access token", status=status, body=text, url=redact(url))
    if 300 <= status < 400:
        raise HubNegotiationError("redirects are not followed", status=status, url=redact(url))
    if status != 200:
        raise HubNegotiationError("unexpected status", status=status, body=text, url=redact(url))
    try:
        body = json.loads(text)
    except ValueError:
        raise HubNegotiationError("response is not JSON", status=status, body=text, url=redact(url)) from None
    if not isinstance(body, dict):
        raise HubNegotiationError("response is not a JSON object", status=status, body=text, url=redact(url))
    if body.get("error"):
        raise HubNegotiationError(str(body["error"]), status=status, url=redact(url))
    if "url" in body:
        # Azure SignalR style redirect to another service; the CPlugin hubs do not use it.
        raise HubNegotiationError("redirect negotiation (url/accessToken) is not supported", url=redact(url))
    connection_id = body.get("connectionId")
    version = body.get("negotiateVersion", 0)
    connection_token = body.get("connectionToken") if version and version >= 1 else connection_id
    if not isinstance(connection_id, str) or not isinstance(connection_token, str):
        raise HubNegotiationError("connectionId/connectionToken missing", status=status, body=text, url=redact(url))
    transports = tuple(
        str(t.get("transport"))
        for t in body.get("availableTransports") or []
        if isinstance(t, dict) and "Text" in (t.get("transferFormats") or [])
    )
    return Negotiation(connection_id, connection_token, transports, int(version or 0))
