"""What the sync and async hooks share as Airflow hooks: identity, constructor, repr and call set-up."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

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
    :param logger_name: as Airflow's ``BaseHook``: the hook logs under ``airflow.task.hooks.<logger_name>`` (the
        name Airflow gives ``hook.log``), its per-request lines included. Unset, the per-request lines keep the
        module's stdlib logger (``airflow_provider_cplugin.hooks.webapi`` / ``.webapi_async``).
    """

    conn_name_attr = "cplugin_conn_id"
    default_conn_name = "cplugin_default"
    conn_type = CONN_TYPE
    hook_name = "CPlugin Cloud WebAPI"
    # The module logger of the concrete hook: where per-request lines go when no ``logger_name`` is given.
    default_request_log: ClassVar[logging.Logger] = logging.getLogger(__name__)

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

    @functools.cached_property
    def request_log(self) -> logging.Logger:
        """The stdlib logger of the per-request lines (stdlib, not ``self.log``'s structlog: Airflow routes both
        into the task log, and caplog sees this one). With ``logger_name``, the same name as ``self.log``."""
        if self._logger_name is None:
            return self.default_request_log
        return logging.getLogger(self._create_logger_name(type(self), self._log_config_logger_name, self._logger_name))

    def _new_call(self, config: WebApiConnectionConfig, clock: Callable[[], float], **request: Any) -> Call:
        """A :class:`Call` with this connection's deadline and retry policy (``request``: Call's own arguments)."""
        policy = self._retry_policy or RetryPolicy(max_attempts=config.max_attempts)
        return Call(timeout=config.timeout, policy=policy, logger=self.request_log, clock=clock, **request)
