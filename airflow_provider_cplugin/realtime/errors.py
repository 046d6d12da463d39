"""Errors of the realtime hub client (all are :class:`~airflow_provider_cplugin.exceptions.CPluginError`)."""

from __future__ import annotations

from airflow_provider_cplugin.exceptions import CPluginError


class HubError(CPluginError):
    """Base class of every hub client error."""


class HubNegotiationError(HubError):
    """``POST {hub}/negotiate`` failed: HTTP status (if any) and the start of the body say why."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None, url: str = "") -> None:
        self.status = status
        self.body = body
        self.url = url
        detail = f" (HTTP {status})" if status is not None else ""
        snippet = f": {body[:300]}" if body else ""
        super().__init__(f"SignalR negotiate failed{detail} at {url}: {message}{snippet}")


class HubAuthError(HubNegotiationError):
    """The hub refused the bearer token (401/403 on negotiate or connect)."""


class HubTransportError(HubError):
    """A transport could not be opened or broke (WebSocket upgrade refused, poll failed, socket reset)."""

    def __init__(self, message: str, *, transport: str | None = None, status: int | None = None) -> None:
        self.transport = transport
        self.status = status
        super().__init__(f"{transport or 'transport'}: {message}" + (f" (HTTP {status})" if status else ""))


class HubHandshakeError(HubError):
    """The server answered the handshake with an error (or not at all within the handshake timeout)."""


class HubProtocolError(HubError):
    """The server sent something that is not valid SignalR JSON protocol (e.g. a malformed frame)."""


class HubClosedError(HubError):
    """The server closed the connection with a Close message carrying an error."""

    def __init__(self, error: str | None, allow_reconnect: bool) -> None:
        self.error = error
        self.allow_reconnect = allow_reconnect
        super().__init__(
            f"server closed the connection: {error or 'no error given'} (allowReconnect={allow_reconnect})"
        )


class HubTimeoutError(HubError):
    """Nothing (not even a ping) arrived from the server within ``server_timeout``, or an invocation got no
    completion within its deadline."""


class HubInvocationError(HubError):
    """A hub method or stream completed with an error."""

    def __init__(self, target: str, error: str) -> None:
        self.target = target
        self.error = error
        super().__init__(f"{target}: {error}")


class HubConnectionLostError(HubError):
    """The connection was lost and could not be re-established (reconnect disabled or attempts exhausted)."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        self.last_error = cause
        super().__init__(message + (f"; last error: {cause}" if cause is not None else ""))
