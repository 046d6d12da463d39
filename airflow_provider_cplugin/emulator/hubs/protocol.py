"""Server side of the SignalR JSON hub protocol: record framing, message types, frame builders.

Deliberately independent of the client codec in ``airflow_provider_cplugin.realtime.protocol``: a shared codec
would let one framing bug hide on both sides of the tests.
"""

from __future__ import annotations

import json
from typing import Any

RS = "\x1e"

INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7

PING_FRAME = '{"type":6}' + RS
HANDSHAKE_OK = "{}" + RS

# ASP.NET Core 8+ ``JsonHubProtocol.IsVersionSupported(v)`` is ``v <= 2`` (2 adds stateful-reconnect acks); clients
# that send the negotiate version (signalrcore) hand in 0, which it accepts too.
JSON_PROTOCOL = "json"
JSON_MAX_VERSION = 2


class ProtocolViolation(Exception):
    """The client sent something the JSON hub protocol does not allow; the connection is closed with this text."""


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def frame(message: dict[str, Any]) -> str:
    return dumps(message) + RS


def invocation_frame(target: str, arguments_json: str) -> str:
    """Server -> client event (no invocationId). ``arguments_json`` is an already encoded JSON array."""
    return f'{{"type":1,"target":{dumps(target)},"arguments":{arguments_json}}}{RS}'


def stream_item_prefix(invocation_id: str) -> str:
    """Everything of a StreamItem frame before the item JSON; the pump appends ``item + "}" + RS``."""
    return f'{{"type":2,"invocationId":{dumps(invocation_id)},"item":'


def completion_frame(
    invocation_id: str, *, result: Any = None, error: str | None = None, has_result: bool = False
) -> str:
    message: dict[str, Any] = {"type": COMPLETION, "invocationId": invocation_id}
    if error is not None:
        message["error"] = error
    elif has_result:
        message["result"] = result
    return frame(message)


def close_frame(error: str | None = None, allow_reconnect: bool | None = None) -> str:
    message: dict[str, Any] = {"type": CLOSE}
    if error is not None:
        message["error"] = error
    if allow_reconnect is not None:
        message["allowReconnect"] = allow_reconnect
    return frame(message)


def handshake_error_frame(error: str) -> str:
    return frame({"error": error})


class RecordReader:
    """Splits an inbound text stream into records (a transport message may carry several, or half of one)."""

    def __init__(self, max_buffer: int = 1024 * 1024) -> None:
        self._tail = ""
        self._max_buffer = max_buffer

    def feed(self, text: str) -> list[str]:
        data = self._tail + text if self._tail else text
        parts = data.split(RS)
        self._tail = parts.pop()
        if len(self._tail) > self._max_buffer:
            raise ProtocolViolation("incomplete message larger than the server accepts")
        return parts


def parse_handshake(record: str) -> tuple[str, int]:
    """``(protocol, version)`` of a handshake request record; raises ProtocolViolation with the reason."""
    try:
        body = json.loads(record)
    except ValueError:
        raise ProtocolViolation("Handshake request is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("protocol"), str):
        raise ProtocolViolation("Handshake request is missing the 'protocol' property.")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolViolation("Handshake request is missing the 'version' property.")
    return body["protocol"], version


def check_handshake(protocol: str, version: int) -> None:
    """Raise ProtocolViolation with ASP.NET Core's text when the server would refuse the handshake.

    The protocol name is matched case-insensitively (``DefaultHubProtocolResolver`` uses OrdinalIgnoreCase)."""
    if protocol.lower() != JSON_PROTOCOL:
        raise ProtocolViolation(f"The protocol '{protocol}' is not supported.")
    if version > JSON_MAX_VERSION:
        raise ProtocolViolation(f"The server does not support version {version} of the '{protocol}' protocol.")


def parse_message(record: str) -> dict[str, Any]:
    try:
        message = json.loads(record)
    except ValueError:
        raise ProtocolViolation("Invalid message: not valid JSON.") from None
    if not isinstance(message, dict):
        raise ProtocolViolation("Invalid message: expected a JSON object.")
    kind = message.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ProtocolViolation("Missing required property 'type'.")
    return message
