"""Client side of the SignalR JSON hub protocol: record framing, message types, handshake."""

from __future__ import annotations

import json
from typing import Any

import orjson  # the hub stream is decode-bound (benchmarks/): ~2x faster than json.loads on tick batches

from airflow_provider_cplugin.realtime.errors import HubHandshakeError, HubProtocolError

RS = "\x1e"

INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7

HANDSHAKE_REQUEST = '{"protocol":"json","version":1}' + RS
PING_MESSAGE = '{"type":6}' + RS
CLOSE_MESSAGE = '{"type":7}' + RS

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode(message: dict[str, Any]) -> str:
    return _dumps(message) + RS


def invocation(target: str, args: list[Any], invocation_id: str | None) -> str:
    message: dict[str, Any] = {"type": INVOCATION, "target": target, "arguments": args}
    if invocation_id is not None:
        message["invocationId"] = invocation_id
    return encode(message)


def stream_invocation(target: str, args: list[Any], invocation_id: str) -> str:
    return encode({"type": STREAM_INVOCATION, "invocationId": invocation_id, "target": target, "arguments": args})


def cancel_invocation(invocation_id: str) -> str:
    return encode({"type": CANCEL_INVOCATION, "invocationId": invocation_id})


def completion_error(invocation_id: str, error: str) -> str:
    return encode({"type": COMPLETION, "invocationId": invocation_id, "error": error})


class FrameDecoder:
    """Turns transport chunks into decoded messages; a record may span chunks, a chunk may hold many records."""

    def __init__(self, max_record: int = 16 * 1024 * 1024) -> None:
        self._tail = ""
        self._max_record = max_record

    def split(self, text: str) -> list[str]:
        data = self._tail + text if self._tail else text
        records = data.split(RS)
        self._tail = records.pop()
        if len(self._tail) > self._max_record:
            raise HubProtocolError(f"incomplete message exceeds {self._max_record} characters (no record separator)")
        return records

    def complete(self, text: str) -> str:
        """The complete records of ``text`` (with what an earlier chunk left), each ending with ``RS``; keeps
        the incomplete tail for the next chunk. No per-record work: the records are routed as text."""
        data = self._tail + text if self._tail else text
        end = data.rfind(RS) + 1
        self._tail = data[end:]
        if len(self._tail) > self._max_record:
            raise HubProtocolError(f"incomplete message exceeds {self._max_record} characters (no record separator)")
        return data[:end] if end < len(data) else data

    def decode(self, text: str) -> list[dict[str, Any]]:
        return self.decode_records(self.split(text))

    @staticmethod
    def decode_records(records: list[str]) -> list[dict[str, Any]]:
        if not records:
            return []
        try:
            # One C-level parse for the whole batch; fall back per record to name the bad one (or when two
            # broken records happened to join into valid JSON: the count then differs).
            messages = orjson.loads("[" + ",".join(records) + "]")
            if len(messages) != len(records):
                raise ValueError("record count mismatch")
        except ValueError:
            messages = [_parse(r) for r in records]
        for message in messages:
            if not isinstance(message, dict) or type(message.get("type")) is not int:
                raise HubProtocolError(f"malformed frame (not a message object with an integer type): {message!r:.200}")
        return messages


ITEM_HEAD = '{"type":2,"invocationId":"'
"""How a stream item message starts as the server writes it (type first, then the id, then the item)."""
_ITEM_AFTER_ID = '","item":'


def item_invocation(record: str) -> str | None:
    """The invocation id of a stream item record written in the server's usual key order, else None (the record
    is then decoded as a message, whatever it is)."""
    if not record.startswith(ITEM_HEAD):
        return None
    end = record.find('"', len(ITEM_HEAD))
    if end < 0 or not record.startswith(_ITEM_AFTER_ID, end):
        return None
    return record[len(ITEM_HEAD) : end]


def single_item_run(text: str, count: int) -> str | None:
    """The invocation id when the ``count`` records of ``text`` are all items of that one invocation, else None.

    Proof without splitting: an unescaped ``RS`` cannot occur inside JSON (control characters are escaped in
    strings), so every ``RS`` ends a record; the first record and each one after an ``RS`` start with the prefix.
    """
    invocation_id = item_invocation(text)
    if invocation_id is None:
        return None
    prefix = ITEM_HEAD + invocation_id + _ITEM_AFTER_ID
    return invocation_id if text.count(RS + prefix) == count - 1 else None


def _parse(record: str) -> Any:
    try:
        return orjson.loads(record)
    except ValueError as exc:
        raise HubProtocolError(f"malformed frame (invalid JSON: {exc}): {record[:200]!r}") from None


def parse_handshake(record: str) -> None:
    """Raise :class:`HubHandshakeError` unless ``record`` is a successful handshake response."""
    try:
        body = json.loads(record)
    except ValueError:
        raise HubHandshakeError(f"handshake response is not JSON: {record[:200]!r}") from None
    if not isinstance(body, dict):
        raise HubHandshakeError(f"handshake response is not an object: {record[:200]!r}")
    if body.get("error"):
        raise HubHandshakeError(f"server rejected the handshake: {body['error']}")
    if "type" in body:
        raise HubHandshakeError("expected a handshake response, got a hub message")
