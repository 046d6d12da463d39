"""``CPluginWebApiAsyncHook``: the asyncio twin of :class:`~.webapi.CPluginWebApiHook` (aiohttp + tenacity).

For triggers and deferrable sensors. The connection is fetched with ``BaseHook.aget_connection`` (Airflow 3's
async path through the supervisor / secrets backends) and its extras with ``Connection.aextra_dejson``, so the
event loop never blocks on a sync lookup. Parsing, OAuth2, retry decisions, decoding and paging are the same
code as the sync hook (``connection``, ``oauth2``, ``retry``, ``call``, ``envelope``, ``paging``); only the socket
calls differ.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from tenacity import AsyncRetrying
from yarl import URL

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError
from airflow_provider_cplugin.hooks._base import POOL_SIZE, WebApiHookBase, tls_problem
from airflow_provider_cplugin.hooks.call import TRANSPORT_CODE, Call, remaining, transport_error
from airflow_provider_cplugin.hooks.connection import Secret, WebApiConnectionConfig, from_connection
from airflow_provider_cplugin.hooks.envelope import ApiResponse, DataDecoder
from airflow_provider_cplugin.hooks.oauth2 import TokenCache, TokenGrant, afetch_token_with, token_cache_for
from airflow_provider_cplugin.hooks.paging import Page, PageTracker, apaginate_ahead
from airflow_provider_cplugin.hooks.paths import TRADE_PLATFORMS_PATH, build_v2_path, ping_path, platforms_from
from airflow_provider_cplugin.hooks.reply import Reply
from airflow_provider_cplugin.hooks.retry import TransientTransportError
from airflow_provider_cplugin.platforms import configured_platform_type, platform_type_in, require_trade_platform

log = logging.getLogger(__name__)

# Test seam: the retry loop sleeps through this, so tests can record delays instead of waiting.
_asleep = asyncio.sleep

__all__ = ["ApiResponse", "CPluginWebApiAsyncHook", "Page"]


def _ssl_option(verify: bool | str) -> bool | ssl.SSLContext:
    if verify is True:
        return True
    if verify is False:
        return False
    return ssl.create_default_context(cafile=verify)


async def _reply(resp: aiohttp.ClientResponse) -> Reply:
    body = await resp.read()
    return Reply(resp.status, body, dict(resp.headers))


class CPluginWebApiAsyncHook(WebApiHookBase):
    """Async client of the CPlugin Cloud WebAPI; same connection, behaviour and errors as the sync hook.

    Use as ``async with CPluginWebApiAsyncHook(cplugin_conn_id=...) as hook:`` or call :meth:`close`.
    """

    hook_name = "CPlugin Cloud WebAPI (async)"
    default_request_log = log

    _session: aiohttp.ClientSession | None = None
    _proxies: dict[tuple[str, str | None], dict[str, Any]]

    # -- configuration ---------------------------------------------------------------------------------------

    async def get_config(self) -> WebApiConnectionConfig:
        """The validated connection, looked up once without blocking the event loop."""
        if self._config is None:
            conn = await self.aget_connection(self.cplugin_conn_id)
            aextra = getattr(conn, "aextra_dejson", None)
            extras = await aextra() if aextra is not None else None
            self._config = from_connection(conn, self.cplugin_conn_id, extras=extras)
        return self._config

    async def get_conn(self) -> aiohttp.ClientSession:
        """The pooled ``aiohttp.ClientSession`` (created in the running loop on first use)."""
        if self._session is None or self._session.closed:
            config = await self.get_config()
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, ssl=_ssl_option(config.verify))
            # trust_env stays off: besides proxies it adds ~/.netrc Basic credentials to every request without an
            # Authorization header, i.e. the identity server calls (the sync hook never sends them). Proxies from
            # the environment are applied per request by _proxy instead.
            self._session = aiohttp.ClientSession(connector=connector, headers={"Accept": "application/json"})
            self._proxies = {}
        return self._session

    async def _proxy(self, url: str) -> dict[str, Any]:
        """``proxy``/``proxy_auth`` for ``url`` from $HTTP(S)_PROXY / $NO_PROXY, as ``trust_env`` would set them."""
        target = URL(url)
        key = (target.scheme, target.host)
        if key not in self._proxies:
            try:
                proxy, auth = await asyncio.to_thread(get_env_proxy_for_url, target)
            except LookupError:
                self._proxies[key] = {}
            else:
                self._proxies[key] = {"proxy": proxy, "proxy_auth": auth}
        return self._proxies[key]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CPluginWebApiAsyncHook:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- OAuth2 ----------------------------------------------------------------------------------------------

    async def _plain(self, method: str, url: str, deadline: float, **kwargs: Any) -> Reply:
        config = await self.get_config()
        timeout = min(config.timeout, remaining(deadline, method, url, config.timeout, asyncio.get_running_loop().time))
        session = await self.get_conn()
        proxy = await self._proxy(url)
        try:
            async with session.request(
                method, url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False, **proxy, **kwargs
            ) as resp:
                return await _reply(resp)
        except TimeoutError:
            raise CPluginAuthError(None, f"{method} {url} timed out after {timeout:.1f}s") from None
        except aiohttp.ClientSSLError as err:
            raise CPluginAuthError(None, tls_problem(url, err)) from err
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
            raise TransientTransportError(err) from err
        except aiohttp.ClientError as err:
            raise CPluginAuthError(None, f"{method} {url} failed: {type(err).__name__}: {err}") from err

    async def _get_token_cache(self) -> TokenCache:
        if self._token_cache is None:
            self._token_cache = token_cache_for(await self.get_config(), skew=self.token_skew)
        return self._token_cache

    async def _token(self, deadline: float, *, force_refresh: bool = False, rejected: Secret | None = None) -> Secret:
        config = await self.get_config()
        cache = await self._get_token_cache()

        async def fetch() -> TokenGrant:
            return await afetch_token_with(
                config,
                cache,
                get=lambda url: self._plain("GET", url, deadline),
                post_form=lambda url, form: self._plain("POST", url, deadline, data=form),
            )

        return await cache.aget(fetch, force_refresh=force_refresh, rejected=rejected)

    async def get_token(self, *, force_refresh: bool = False) -> str:
        """A valid bearer token (shared process-wide with every hook of these credentials). Never log it."""
        config = await self.get_config()
        deadline = asyncio.get_running_loop().time() + config.timeout
        try:
            return (await self._token(deadline, force_refresh=force_refresh)).reveal()
        except TransientTransportError as err:
            raise transport_error("POST", config.auth_url, err, 1) from err

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def _send(self, call: Call, token: Secret) -> Reply:
        config = await self.get_config()
        timeout = call.remaining()
        session = await self.get_conn()
        headers = {**call.headers, "Authorization": "Bearer " + token.reveal()}
        url = config.api_base_url + call.path
        proxy = await self._proxy(url)
        try:
            async with session.request(
                call.method,
                url,
                params=call.query,
                json=call.json_body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                **proxy,
            ) as resp:
                return await _reply(resp)
        except TimeoutError:
            raise call.timed_out() from None
        except aiohttp.ClientSSLError as err:
            raise CPluginApiError(TRANSPORT_CODE, tls_problem(url, err), method=call.method, path=call.path) from err
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
            raise TransientTransportError(err) from err
        except aiohttp.ClientError as err:
            detail = f"{type(err).__name__}: {err}"
            raise CPluginApiError(TRANSPORT_CODE, detail, method=call.method, path=call.path) from err

    async def _attempt(self, call: Call) -> Reply:
        call.attempts += 1
        token = await self._token(call.deadline, rejected=call.rejected)
        reply = await self._send(call, token)
        if call.refresh_after(reply, token):
            reply = await self._send(call, await self._token(call.deadline, rejected=token))
        return reply

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        data_decoder: DataDecoder | None = None,
    ) -> ApiResponse:
        """Async :meth:`CPluginWebApiHook.request <.webapi.CPluginWebApiHook.request>` (same rules and errors)."""
        config = await self.get_config()
        call = self._new_call(
            config,
            asyncio.get_running_loop().time,
            method=method,
            path=path,
            params=params,
            json_body=json,
            headers=headers,
            idempotency_key=idempotency_key,
        )
        return call.finish(await self._send_with_retries(call), data_decoder)

    async def _send_with_retries(self, call: Call) -> Reply:
        retrying = AsyncRetrying(sleep=lambda seconds: _asleep(seconds), **call.decisions.tenacity_kwargs())
        try:
            reply: Reply = await retrying(self._attempt, call)
        except TransientTransportError as err:
            raise call.failed(err) from err
        return call.arrived(reply)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` and return the envelope's ``data``."""
        return (await self.request("GET", path, params=params)).data

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = 5000,
        request_ahead: bool = True,
        max_pages: int | None = None,
        data_decoder: DataDecoder | None = None,
    ) -> AsyncIterator[Page]:
        """Async iterator over the pages of a cursor-paged list: the sync hook's :class:`PageTracker` decisions
        (same stop rules, same refusals of partial or duplicated lists) and the same fetch-ahead, as a task of the
        running loop (:func:`~.paging.apaginate_ahead`)."""
        tracker = PageTracker("GET", path, limit, max_pages)
        return apaginate_ahead(
            lambda query: self._fetch(path, query), tracker, params, data_decoder, ahead=request_ahead
        )

    async def _fetch(self, path: str, query: Mapping[str, Any]) -> tuple[Call, Reply]:
        config = await self.get_config()
        call = self._new_call(
            config, asyncio.get_running_loop().time, method="GET", path=path, params=query,
            json_body=None, headers=None, idempotency_key=None,
        )  # fmt: skip
        return call, await self._send_with_retries(call)

    # -- WebAPI helpers --------------------------------------------------------------------------------------

    async def trade_platforms(self) -> list[dict[str, Any]]:
        """``GET /api/TradePlatforms`` (a bare array), cached per hook."""
        if self._platforms is None:
            self._platforms = platforms_from(await self.request("GET", TRADE_PLATFORMS_PATH))
        return self._platforms

    async def platform_type_of(self, trade_platform: str | None = None) -> str:
        config = await self.get_config()
        tp = trade_platform or config.trade_platform
        configured = configured_platform_type(config, tp)
        if configured:
            return configured
        return platform_type_in(await self.trade_platforms(), require_trade_platform(config, tp), config.conn_id)

    async def v2_path(
        self, method: str, *path_params: Any, trade_platform: str | None = None, platform_type: str | None = None
    ) -> str:
        """Async :meth:`CPluginWebApiHook.v2_path` (the platform type may need the trade platforms list)."""
        tp = require_trade_platform(await self.get_config(), trade_platform)
        return build_v2_path(platform_type or await self.platform_type_of(tp), tp, method, path_params)

    async def ping(self, trade_platform: str | None = None) -> Any:
        return await self.get(ping_path(require_trade_platform(await self.get_config(), trade_platform)))

    async def server_time(self, trade_platform: str | None = None, platform_type: str | None = None) -> Any:
        return await self.get(
            await self.v2_path("ServerTime", trade_platform=trade_platform, platform_type=platform_type)
        )
