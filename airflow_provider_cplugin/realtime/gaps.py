"""Gap reporting: every disconnect window, and events missed or duplicated according to payload sequences.

The hub payloads carry no sequence number. A subscription may be given a ``sequence`` function mapping a payload
to ``(partition, index)`` (e.g. ``(symbol, per-symbol tick index)``); with it the client drops duplicates
(index <= last seen in the partition) and counts missed events (index jumps). Without it a gap still records
when and why the connection was lost and how long recovery took, but ``missed`` for that channel is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cplugin.results import HubGap

SequenceFn = Callable[[Any], tuple[Hashable, int] | None]

DISCONNECT = "disconnect"
SEQUENCE = "sequence"


@dataclass
class GapRecord:
    """One window in which events may have been lost.

    ``kind``: ``disconnect`` (the connection broke; ``started_at``..``ended_at`` is the outage, ``ended_at`` is
    when the new connection had re-subscribed, None if it never recovered) or ``sequence`` (an index jump on a
    live connection). ``missed`` maps channel -> events known to be missing (sequenced channels); ``unsequenced``
    lists channels that were subscribed but have no sequence function, so their loss is unknown. Missed events
    of a partition are attributed to the disconnect that followed the last event seen in it.
    """

    kind: str
    reason: str
    started_at: float
    connection: int
    transport: str | None = None
    ended_at: float | None = None
    last_event_at: float | None = None
    attempts: int = 0
    missed: dict[str, int] = field(default_factory=dict)
    unsequenced: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def total_missed(self) -> int | None:
        """Sum over sequenced channels; None when an unsequenced channel may have lost events too."""
        return None if self.unsequenced else sum(self.missed.values())

    def add_missed(self, channel: str, count: int) -> None:
        self.missed[channel] = self.missed.get(channel, 0) + count

    def to_dict(self) -> HubGap:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "connection": self.connection,
            "transport": self.transport,
            "last_event_at": self.last_event_at,
            "attempts": self.attempts,
            "missed": dict(self.missed),
            "total_missed": self.total_missed,
            "unsequenced": list(self.unsequenced),
            "error": self.error,
        }


class GapLedger:
    """All gap records of one client, in order; finds the disconnect gap that ended a given connection."""

    def __init__(self) -> None:
        self.records: list[GapRecord] = []
        self._ended: dict[int, GapRecord] = {}

    def open_disconnect(
        self,
        *,
        reason: str,
        connection: int,
        transport: str | None,
        started_at: float,
        last_event_at: float | None,
        unsequenced: list[str],
    ) -> GapRecord:
        record = GapRecord(
            kind=DISCONNECT,
            reason=reason,
            started_at=started_at,
            connection=connection,
            transport=transport,
            last_event_at=last_event_at,
            unsequenced=unsequenced,
        )
        self.records.append(record)
        self._ended[connection] = record
        return record

    def after_connection(self, connection: int) -> GapRecord | None:
        return self._ended.get(connection)

    def sequence_jump(
        self, channel: str, partition: Hashable, last: int, index: int, connection: int, now: float
    ) -> GapRecord:
        record = GapRecord(
            kind=SEQUENCE,
            reason=f"{channel}[{partition}]: index {last} -> {index} on a live connection",
            started_at=now,
            ended_at=now,
            connection=connection,
        )
        record.add_missed(channel, index - last - 1)
        self.records.append(record)
        return record


class SequenceTracker:
    """Last index per partition of one channel; classifies each event as new, duplicate or after a jump."""

    def __init__(self, channel: str, sequence: SequenceFn) -> None:
        self.channel = channel
        self.sequence = sequence
        self.duplicates = 0
        self.missed = 0
        self._last: dict[Hashable, tuple[int, int]] = {}  # partition -> (index, connection number)

    def observe(
        self, payload: Any, connection: int, ledger: GapLedger, now: float
    ) -> tuple[bool, tuple[Hashable, int] | None]:
        """``(deliver?, sequence)``: duplicates are not delivered; jumps are booked in ``ledger``."""
        seq = self.sequence(payload)
        if seq is None:
            return True, None
        partition, index = seq
        last = self._last.get(partition)
        if last is not None:
            last_index, last_connection = last
            if index <= last_index:
                self.duplicates += 1
                return False, seq
            jump = index - last_index - 1
            if jump:
                self.missed += jump
                gap = ledger.after_connection(last_connection) if last_connection != connection else None
                if gap is not None:
                    gap.add_missed(self.channel, jump)
                else:
                    ledger.sequence_jump(self.channel, partition, last_index, index, connection, now)
        self._last[partition] = (index, connection)
        return True, seq
