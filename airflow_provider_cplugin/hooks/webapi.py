"""``CPluginWebApiHook``: the synchronous CPlugin Cloud WebAPI client (requests + tenacity).

Behaviour mirrors the official SDK 0.2.1 (reference §2-§5): OAuth2 client credentials with a process-wide token
cache, one forced token refresh on 401 for idempotent methods, retries of idempotent methods only on
408/429/502/503/504 and network errors (``Retry-After`` honoured and capped, otherwise exponential backoff with
jitter) within one overall deadline, envelope decoding into typed errors, cursor pagination.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from tenacity import Retrying

from airflow_provider_cplugin.exceptions import CPluginApiError, CPluginAuthError, CPluginConfigError, CPluginError
from airflow_provider_cplugin.hooks import ui
from airflow_provider_cplugin.hooks._base import POOL_SIZE, WebApiHookBase, tls_problem
from airflow_provider_cplugin.hooks.call import TRANSPORT_CODE, Call, remaining, transport_error
from airflow_provider_cplugin.hooks.connection import Secret, WebApiConnectionConfig, from_connection
from airflow_provider_cplugin.hooks.envelope import ApiResponse, DataDecoder
from airflow_provider_cplugin.hooks.oauth2 import (
    TokenCache,
    TokenGrant,
    describe_auth_failure,
    fetch_token_with,
    token_cache_for,
)
from airflow_provider_cplugin.hooks.paging import Page, PageTracker, paginate_ahead
from airflow_provider_cplugin.hooks.paths import TRADE_PLATFORMS_PATH, build_v2_path, ping_path, platforms_from
from airflow_provider_cplugin.hooks.reply import Reply
from airflow_provider_cplugin.hooks.retry import TransientTransportError
from airflow_provider_cplugin.platforms import configured_platform_type, platform_type_in, require_trade_platform

# Per-request lines go to a stdlib logger (routed into the task log by Airflow, visible to caplog in tests).
log = logging.getLogger(__name__)

# Test seam: the retry loop sleeps through this, so tests can record delays instead of waiting.
_sleep = time.sleep

__all__ = ["ApiResponse", "CPluginWebApiHook", "Page"]


class _BearerAuth(requests.auth.AuthBase):
    """Sets ``Authorization`` per request; passing ``auth=`` also stops requests from applying ~/.netrc."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self._token.reveal()
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def _verify_option(config: WebApiConnectionConfig) -> bool | str:
    """``verify=`` for every request. Passed per request because requests lets $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE
    replace a *session*'s verify; an explicit ``true`` means the bundled CAs (like the async hook's defaults), not
    whatever bundle the environment names."""
    if config.verify is True and config.verify_explicit:
        return DEFAULT_CA_BUNDLE_PATH
    return config.verify


class _NoAuth(requests.auth.AuthBase):
    """Identity-server calls carry their credentials in the form; passing ``auth=`` stops requests from adding
    ~/.netrc Basic credentials (which would be sent to the identity server and make it refuse the client)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_AUTH = _NoAuth()


class CPluginWebApiHook(WebApiHookBase):
    """Talk to the CPlugin Cloud WebAPI (MT4/MT5) through an Airflow connection of type ``cplugin``.

    Constructor parameters: see :class:`~._base.WebApiHookBase`. One hook may be shared by threads.
    """

    default_request_log = log
    _session: requests.Session | None = None

    # -- configuration ---------------------------------------------------------------------------------------

    @property
    def config(self) -> WebApiConnectionConfig:
        """The validated connection (looked up once per hook)."""
        if self._config is None:
            conn = self.get_connection(self.cplugin_conn_id)
            self._config = from_connection(conn, self.cplugin_conn_id)
        return self._config

    @property
    def token_cache(self) -> TokenCache:
        """The process-wide token cache of this connection's credentials."""
        if self._token_cache is None:
            self._token_cache = token_cache_for(self.config, skew=self.token_skew)
        return self._token_cache

    def get_conn(self) -> requests.Session:
        """The pooled ``requests.Session`` (created on first use, shared by threads using this hook)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = requests.Session()
                    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    session.verify = _verify_option(self.config)
                    session.headers["Accept"] = "application/json"
                    self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> CPluginWebApiHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- OAuth2 ----------------------------------------------------------------------------------------------

    def _plain(self, method: str, url: str, deadline: float, **kwargs: Any) -> Reply:
        """One auth-server round trip (no bearer, no redirects) as a :class:`Reply`."""
        timeout = min(self.config.timeout, remaining(deadline, method, url, self.config.timeout, time.monotonic))
        try:
            resp = self.get_conn().request(
                method,
                url,
                timeout=timeout,
                allow_redirects=False,
                auth=_NO_AUTH,
                verify=_verify_option(self.config),
                **kwargs,
            )
        except requests.Timeout:
            raise CPluginAuthError(None, f"{method} {url} timed out after {timeout:.1f}s") from None
        except requests.exceptions.SSLError as err:
            raise CPluginAuthError(None, tls_problem(url, err)) from err
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            raise TransientTransportError(err) from err
        except requests.RequestException as err:
            raise CPluginAuthError(None, f"{method} {url} failed: {type(err).__name__}: {err}") from err
        return Reply(resp.status_code, resp.content, dict(resp.headers))

    def _fetch_token(self, deadline: float) -> TokenGrant:
        return fetch_token_with(
            self.config,
            self.token_cache,
            get=lambda url: self._plain("GET", url, deadline),
            post_form=lambda url, form: self._plain("POST", url, deadline, data=form),
        )

    def _token(self, deadline: float, *, force_refresh: bool = False, rejected: Secret | None = None) -> Secret:
        return self.token_cache.get(lambda: self._fetch_token(deadline), force_refresh=force_refresh, rejected=rejected)

    def get_access_token(self, *, force_refresh: bool = False) -> str:
        """A valid bearer token (shared process-wide; for the realtime hub client). Never log it."""
        deadline = time.monotonic() + self.config.timeout
        try:
            return self._token(deadline, force_refresh=force_refresh).reveal()
        except TransientTransportError as err:
            raise transport_error("POST", self.config.auth_url, err, 1) from err

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _send(self, call: Call, token: Secret) -> Reply:
        timeout = call.remaining()
        try:
            resp = self.get_conn().request(
                call.method,
                self.config.api_base_url + call.path,
                params=call.query,
                json=call.json_body,
                headers=call.headers,
                auth=_BearerAuth(token),
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                verify=_verify_option(self.config),
            )
            # One read of the whole body instead of requests' 10 KB ``iter_content`` loop: each chunk needs the GIL
            # back, and with a converting thread beside it that hand-over, not the socket, paced a snapshot.
            body = self._read_body(resp)
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError):
            raise call.timed_out() from None
        except requests.exceptions.SSLError as err:
            url = self.config.api_base_url + call.path
            raise CPluginApiError(TRANSPORT_CODE, tls_problem(url, err), method=call.method, path=call.path) from err
        except (requests.ConnectionError, urllib3.exceptions.ProtocolError) as err:
            raise TransientTransportError(err) from err
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            detail = f"{type(err).__name__}: {err}"
            raise CPluginApiError(TRANSPORT_CODE, detail, method=call.method, path=call.path) from err
        return Reply(resp.status_code, body, dict(resp.headers))

    @staticmethod
    def _read_body(resp: requests.Response) -> bytes:
        try:
            body: bytes = resp.raw.read(decode_content=True)
        except BaseException:
            resp.close()  # a half-read connection must not go back to the pool
            raise
        return body

    def _attempt(self, call: Call) -> Reply:
        call.attempts += 1
        token = self._token(call.deadline, rejected=call.rejected)
        reply = self._send(call, token)
        if call.refresh_after(reply, token):
            reply = self._send(call, self._token(call.deadline, rejected=token))
        return reply

    def request(
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
        """Send one call and decode it. Idempotent methods are retried; POST/PATCH are sent exactly once.

        :param path: API path (``/api/v2/MT4/{tp}/UsersRequest``); build v2 paths with :meth:`v2_path`.
        :param params: query parameters; lists become repeated keys, None values are dropped.
        :param idempotency_key: sent as ``Idempotency-Key`` for server-side de-duplication of writes.
        :param data_decoder: decodes a list ``data`` into its form (see :meth:`paginate`).
        :raises CPluginApiError: envelope error (even at HTTP 200), HTTP error, malformed body, deadline.
        :raises CPluginAuthError: the token could not be obtained.
        """
        call = self._new_call(
            self.config,
            time.monotonic,
            method=method,
            path=path,
            params=params,
            json_body=json,
            headers=headers,
            idempotency_key=idempotency_key,
        )
        return call.finish(self._send_with_retries(call), data_decoder)

    def _send_with_retries(self, call: Call) -> Reply:
        retrying = Retrying(sleep=lambda seconds: _sleep(seconds), **call.decisions.tenacity_kwargs())
        try:
            reply: Reply = retrying(self._attempt, call)
        except TransientTransportError as err:
            raise call.failed(err) from err
        return call.arrived(reply)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` and return the envelope's ``data``."""
        return self.request("GET", path, params=params).data

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = 5000,
        request_ahead: bool = True,
        max_pages: int | None = None,
        data_decoder: DataDecoder | None = None,
    ) -> Iterator[Page]:
        """Yield the pages of a cursor-paged list until ``hasMore`` is false.

        Every answer that would make the list partial or duplicated raises :class:`CPluginApiError` naming the
        API method and page (:class:`PageTracker`, shared with the async hook): ``hasMore`` without a cursor,
        ``data: null`` with more announced, more rows than ``limit``, a repeated cursor or page, a long run of
        empty pages with cursors, more than ``max_pages`` pages (unbounded by default).

        :param request_ahead: request page n+1 in a worker thread, with the cursor peeked from page n's body
            (:func:`~.paging.peek_next_cursor`), while page n is decoded and consumed (:func:`~.paging.
            paginate_ahead`). The decoded page decides: after a wrong guess the fetched-ahead reply is dropped.
        :param data_decoder: decodes each page's data (e.g. :class:`~airflow_provider_cplugin.parquet.decode.
            PageDecoder`: the body straight to an Arrow batch); ``Page.items`` is then in its form.
        """
        tracker = PageTracker("GET", path, limit, max_pages)
        return paginate_ahead(
            lambda query: self._fetch(path, query), tracker, params, data_decoder, ahead=request_ahead
        )

    def _fetch(self, path: str, query: Mapping[str, Any]) -> tuple[Call, Reply]:
        call = self._new_call(
            self.config, time.monotonic, method="GET", path=path, params=query,
            json_body=None, headers=None, idempotency_key=None,
        )  # fmt: skip
        return call, self._send_with_retries(call)

    # -- WebAPI helpers --------------------------------------------------------------------------------------

    def v2_path(
        self, method: str, *path_params: Any, trade_platform: str | None = None, platform_type: str | None = None
    ) -> str:
        """``/api/v2/{MT4|MT5}/{tp}/{method}``: segments of ``method`` and each ``path_params`` percent-encoded.

        ``trade_platform`` defaults to the connection's; ``platform_type`` to :meth:`platform_type_of` of it.
        ``v2_path("UserRecordGet", 1001)`` → ``/api/v2/MT4/<tp>/UserRecordGet/1001``.
        """
        tp = require_trade_platform(self.config, trade_platform)
        return build_v2_path(platform_type or self.platform_type_of(tp), tp, method, path_params)

    def trade_platforms(self) -> list[dict[str, Any]]:
        """``GET /api/TradePlatforms`` (a bare array), cached per hook."""
        if self._platforms is None:
            self._platforms = platforms_from(self.request("GET", TRADE_PLATFORMS_PATH))
        return self._platforms

    def platform_type_of(self, trade_platform: str | None = None) -> str:
        """``MT4``/``MT5``: the connection's ``platform_type`` extra for its own trade platform, otherwise the
        ``type`` field of the trade platforms list."""
        tp = trade_platform or self.config.trade_platform
        configured = configured_platform_type(self.config, tp)
        if configured:
            return configured
        return platform_type_in(self.trade_platforms(), require_trade_platform(self.config, tp), self.config.conn_id)

    def ping(self, trade_platform: str | None = None) -> Any:
        """``GET /api/TradePlatforms/{id}/Ping`` (connection check of the trade platform)."""
        return self.get(ping_path(require_trade_platform(self.config, trade_platform)))

    def server_time(self, trade_platform: str | None = None, platform_type: str | None = None) -> Any:
        """``ServerTime`` of the trade platform (ISO string), the SDK's connectivity probe."""
        return self.get(self.v2_path("ServerTime", trade_platform=trade_platform, platform_type=platform_type))

    def test_connection(self) -> tuple[bool, str]:
        """Token, trade platforms list and (for the default trade platform) ping; messages meant for humans."""
        # Messages name the field only: the UI and REST API test a copy of the connection under a random id
        # ("connection 'SDIhO6XQ'"), which would mean nothing to the person who filled in the form.
        try:
            config = self.config
        except CPluginConfigError as err:
            return False, f"Invalid connection: {field_problem(err)}"
        steps: list[str] = []
        try:
            self.get_access_token(force_refresh=True)
            steps.append(f"token issued to client {config.client_id!r} by {config.auth_url}")
            platforms = self.trade_platforms()
            names = ", ".join(f"{p.get('name') or p.get('id')} ({p.get('type')})" for p in platforms[:5])
            steps.append(f"{len(platforms)} trade platform(s) visible" + (f": {names}" if names else ""))
            if config.trade_platform:
                self.ping(config.trade_platform)
                steps.append(f"ping of trade platform {config.trade_platform} answered")
        except CPluginAuthError as err:
            return False, f"Authentication failed: {describe_auth_failure(err)}"
        except CPluginError as err:
            done = "; ".join(steps)
            problem = field_problem(err) if isinstance(err, CPluginConfigError) else str(err)
            return False, f"{done + '; then ' if done else ''}failed: {problem}"
        except Exception as err:
            return False, f"Unexpected {type(err).__name__}: {err}"
        return True, "Connection OK: " + "; ".join(steps)

    # -- Airflow UI (Airflow 3.1; >= 3.2 reads hooks.ui from the provider info) --------------------------------

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        return ui.legacy_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return ui.legacy_field_behaviour()


def field_problem(err: CPluginConfigError) -> str:
    """``field 'extra.auth_url': <problem>`` without the connection id."""
    return f"field {err.field!r}: {err.problem}"
