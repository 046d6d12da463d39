"""What the sync and async hooks share as Airflow hooks: identity, constructor, repr and call set-up."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_cplugin.hooks.call import Call
from airflow_provider_cplugin.hooks.connection import CONN_TYPE, WebApiConnectionConfig
from airflow_provider_cplugin.hooks.oauth2 import DEFAULT_SKEW, TokenCache
from airflow_provider_cplugin.hooks.retry import RetryPolicy

POOL_SIZE = 32  # connections kept per host by either hook: enough for 16+ threads or tasks sharing one hook


def tls_problem(url: str, err: BaseException) -> str:
    """A failed TLS handshake is not transient (no retry) and is almost always the ``verify`` setting."""
    return f"TLS verification of {url} failed (check extra.verify): {type(err).__name__}: {err}"


class WebApiHookBase(BaseHook):
    """Base of :class:`~.webapi.CPluginWebApiHook` and :class:`~.webapi_async.CPluginWebApiAsyncHook`.

    :param cplugin_conn_id: the Airflow connection (host = API base URL, login = client id, password = client
        secret, extras ``env``, ``auth_url``, ``scopes``, ``trade_platform``, ``platform_type``, ``timeout``,
        ``verify``, ``allow_insecure_loopback``, ``max_attempts``).
    :param config: an already parsed configuration (skips the connection lookup; benchmarks, scripts).
    :param retry_policy: overrides the SDK default policy (``max_attempts`` otherwise comes from the connection).
    :param token_skew: seconds before expiry a token stops being reused (60 like the SDK; clamped to a quarter of
        the token lifetime so short-lived tokens are still reused).
    """

    conn_name_attr = "cplugin_conn_id"
    default_conn_name = "cplugin_default"
    conn_type = CONN_TYPE
    hook_name = "CPlugin Cloud WebAPI"

    def __init__(
        self,
        cplugin_conn_id: str = default_conn_name,
        *,
        config: WebApiConnectionConfig | None = None,
        retry_policy: RetryPolicy | None = None,
        token_skew: float = DEFAULT_SKEW,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.cplugin_conn_id = cplugin_conn_id
        self._config = config
        self._retry_policy = retry_policy
        self.token_skew = token_skew
        self._platforms: list[dict[str, Any]] | None = None
        self._token_cache: TokenCache | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        base = self._config.api_base_url if self._config else "<not loaded>"
        return f"{type(self).__name__}(cplugin_conn_id={self.cplugin_conn_id!r}, api={base})"

    def _new_call(
        self, config: WebApiConnectionConfig, logger: logging.Logger, clock: Callable[[], float], **request: Any
    ) -> Call:
        """A :class:`Call` with this connection's deadline and retry policy (``request``: Call's own arguments)."""
        policy = self._retry_policy or RetryPolicy(max_attempts=config.max_attempts)
        return Call(timeout=config.timeout, policy=policy, logger=logger, clock=clock, **request)
