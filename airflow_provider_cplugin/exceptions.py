"""Typed errors raised by the provider.

Every error that comes from the service carries what support needs to find the call on their side: the WebAPI
error code, its description, the activity id (W3C trace id from ``meta.activityId``) and the HTTP status.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class CPluginError(AirflowException):
    """Base class of every error raised by this provider."""


class CPluginConfigError(CPluginError):
    """The Airflow connection (or an operator argument) is missing or invalid; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str, *, conn_id: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.conn_id = conn_id
        where = f"connection {conn_id!r} " if conn_id else ""
        super().__init__(f"{where}field {field!r}: {problem}")


class CPluginApiError(CPluginError):
    """A WebAPI call failed: an envelope error (even with HTTP 200) or an HTTP error status.

    Mirrors the SDK's ``ApiError``: ``code`` is the ``WebApiErrorCode`` (``NotFound``, ``Validation``,
    ``MT4Error``...), ``description`` the server's message, ``activity_id`` the trace id for support.
    """

    def __init__(
        self,
        code: str,
        description: str | None = None,
        *,
        activity_id: str | None = None,
        manager_code: str | int | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.activity_id = activity_id
        self.manager_code = manager_code
        self.status = status
        self.method = method
        self.path = path
        parts = [f"CPlugin WebAPI error {code}: {description or f'v2 error: {code}'}"]
        if manager_code is not None:
            parts.append(f"managerCode={manager_code}")
        if status is not None:
            parts.append(f"HTTP {status}")
        if method and path:
            parts.append(f"{method} {path}")
        parts.append(f"activityId={activity_id or '<none>'}")
        super().__init__(" | ".join(parts))


class CPluginAuthError(CPluginError):
    """OAuth2 discovery or token request failed (the SDK's ``OAuth2TokenError``).

    ``error_code`` is the OAuth ``error`` (``invalid_client``...) or one of the synthetic codes
    ``discovery_failed``, ``discovery_invalid``, ``invalid_response``. Descriptions never contain the secret.
    """

    def __init__(
        self,
        error_code: str | None,
        error_description: str | None = None,
        *,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.error_code = error_code
        self.error_description = error_description
        self.status = status
        self.request_id = request_id
        code = error_code or (str(status) if status is not None else "unknown")
        msg = f"OAuth2 token error ({code}): {error_description or '<no description>'}"
        if request_id:
            msg += f" | x-request-id={request_id}"
        super().__init__(msg)


class DuplicateKeyError(CPluginError):
    """Rows of one landing share a declared key (``login``, ``order``, ``deal``...) with different contents.

    The API served the same entity twice in one read (overlapping pages, a page longer than asked for): landing
    both would double-count it, landing either would be a guess, so nothing is committed.
    """

    def __init__(self, entity: str, key: tuple[str, ...], conflicting: int, examples: list[object]) -> None:
        self.entity = entity
        self.key = key
        self.conflicting = conflicting
        self.examples = examples
        super().__init__(
            f"{entity}: {conflicting} key value(s) of ({', '.join(key)}) arrived more than once with different "
            f"contents, e.g. {examples[:5]}; nothing was landed"
        )
