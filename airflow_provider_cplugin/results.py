"""What the operators return to XCom and what the triggers send their tasks, as ``TypedDict``s.

The operators' return types and the triggers' payload builders are annotated with these, so mypy checks every key
they write; ``tests/test_results.py`` and the tests that run the operators and triggers against the emulator check
that what they return has exactly these keys, so this module and the docstrings cannot drift from the code.

Deliberately no ``from __future__ import annotations``: Python 3.11 only sees ``NotRequired`` in real annotations
(``__required_keys__`` would be wrong with string ones).
"""

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "CaptureEvent",
    "CaptureRejects",
    "ConditionEvent",
    "HubGap",
    "HubNotLanded",
    "HubRejects",
    "HubSampleFailure",
    "HubSampleSummary",
    "LandedFileEntry",
    "SnapshotResult",
    "WatcherEvent",
]


# -- snapshots (every BaseSnapshotOperator: users, history, datasets, the generic operator's Parquet output) -----


class LandedFileEntry(TypedDict):
    """One committed Parquet file of a snapshot run."""

    path: str
    rows: int
    bytes: int
    row_groups: int
    entity: str
    schema: dict[str, str]  # column -> Arrow type name
    duplicates_dropped: int  # rows served twice with identical contents, dropped (counted, warned once)
    pages: int
    records_read: int  # records the API served for this file (before filters such as the run's interval)


class SnapshotResult(TypedDict):
    """XCom of every snapshot operator (``TradeHistoryOperator`` and the dataset operators included).

    ``path``, ``entity`` and ``schema`` repeat the file's at the top level exactly when the run landed one file.
    """

    trade_platform: str
    platform_type: str  # MT4 or MT5
    rows: int
    duplicates_dropped: int
    files: list[LandedFileEntry]
    path: NotRequired[str]
    entity: NotRequired[str]
    schema: NotRequired[dict[str, str]]


# -- deferrable sensors ---------------------------------------------------------------------------------------


class ConditionEvent(TypedDict):
    """``ConditionTrigger`` → the deferred sensor's ``execute_complete``."""

    status: Literal["success", "timeout", "error"]
    message: str
    condition: dict[str, Any]  # Condition.serialize()


# -- hub sample (HubSampleTrigger → HubSampleOperator; the operator returns the summary) -------------------------


class HubGap(TypedDict):
    """A time the hub connection lost (or may have lost) events: reconnects, a restart, an outage."""

    kind: str
    reason: str
    started_at: float
    ended_at: float | None
    duration: float | None
    connection: int
    transport: str | None
    last_event_at: float | None
    attempts: int
    missed: dict[str, int]  # per stream, counted from sequence numbers
    total_missed: int | None  # None: an unsequenced stream may have lost events too
    unsequenced: list[str]
    error: str | None


class HubRejects(TypedDict):
    events: dict[str, int]  # per stream: events that did not convert (quarantined, not landed)
    total: int
    files: list[str]


class HubNotLanded(TypedDict):
    """Per stream: events received but deliberately not landed."""

    after_window: int
    over_max_events: int
    duplicates: int


class HubSampleSummary(TypedDict):
    """The sample's summary: the trigger's success event, the operator's XCom and the run's manifest."""

    status: Literal["success", "running"]  # "running": a checkpointed manifest of an unfinished sample
    run_name: str
    trade_platform: str
    platform_type: str
    window_end: float
    seconds: float
    checkpointed_at: float
    transport: str | None
    connections: int
    events: dict[str, int]  # landed per stream, earlier instances of the run included
    total_events: int
    instance_events: dict[str, int]  # landed by this trigger instance
    earlier_batches: dict[str, int]
    files: list[dict[str, Any]]  # the batch files (path, rows, bytes, row_groups, entity, schema, ...)
    gaps: list[HubGap]
    missed: dict[str, int | None]  # per stream over all gaps; None = unknown
    rejects: HubRejects
    not_landed: dict[str, HubNotLanded]
    complete: bool  # no gap and no reject
    resumed_from_manifest: NotRequired[bool]  # the same window had already completed: its manifest, as it was


class HubSampleFailure(TypedDict):
    """The trigger's event for an expected failure (hub refused, auth, config): fails the task on the worker."""

    status: Literal["error"]
    error_type: str
    message: str
    run_name: str


# -- hub watchers and capture (HubEventTrigger) --------------------------------------------------------------


class WatcherEvent(TypedDict):
    """One fire of a hub watcher (an asset event's ``extra`` when used by an ``AssetWatcher``)."""

    watcher: str
    stream: str
    trade_platform: str
    platform_type: str
    key: dict[str, Any]  # the key_fields of the matching event
    event: dict[str, Any]  # its requested fields
    received_at: float
    sequence: list[Any] | None  # [partition, index] of a sequenced stream
    matches: int
    matched_since_last_fire: int
    missed_live: int | None  # None: the stream is not sequenced
    outages: list[dict[str, Any]]
    outages_dropped: int


class CaptureRejects(TypedDict):
    rows: int
    path: str | None


class CaptureEvent(TypedDict):
    """One landed file of a continuous hub capture."""

    capture: str
    stream: str
    path: str | None  # None: every event of the batch was rejected
    rows: int
    bytes: int
    batch: int
    entity: str
    first_event_at: str | None
    last_event_at: str | None
    rejects: CaptureRejects
    recovered: NotRequired[bool]  # landed by an instance killed before it recorded the file
    gaps: list[dict[str, Any]]
    missed_live: int | None
    missed: int | None
