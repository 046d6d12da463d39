"""Event-driven scheduling from the realtime hubs: asset watchers that fire on hub events, and continuous capture.

* :class:`HubEventTrigger` fires a small event for hub events that match a declarative filter, debounced per key.
  Watchers of one (connection, trade platform, stream) share **one** hub connection through Airflow's shared
  streams (``shared_stream_key`` / ``open_shared_stream`` / ``filter_shared_stream``, Airflow >= 3.3).
* :class:`HubCaptureTrigger` lands a hub stream to Parquet continuously and fires one event per landed file.

Both are made for ``Asset(..., watchers=[AssetWatcher(name=..., trigger=...)])``; Airflow stores each event's
payload in the asset event's ``extra["payload"]``. Their kwargs are plain data (connection id, stream, filter...),
never a secret: the triggerer reads the connection itself. The module imports nothing heavy (the triggerer builds
triggers on its event loop); the hub client, hooks and pyarrow are imported in a thread when a trigger runs.
See ``docs/realtime.md`` ("Watchers").
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import math
from collections.abc import AsyncIterator, Hashable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.parquet.location import check_output_path
from airflow_provider_cplugin.platforms import check_platform_type
from airflow_provider_cplugin.realtime.filters import (
    DEFAULT_KEYS,
    STREAM_FIELDS,
    SUMMARY_FIELDS,
    Debouncer,
    check_field_list,
    compile_filter,
)
from airflow_provider_cplugin.realtime.sample_request import StreamSpec
from airflow_provider_cplugin.realtime.watcher import StateSlot, Watcher, state_key

SOURCE_MODULE = "airflow_provider_cplugin.realtime.hub_source"
CAPTURE_MODULE = "airflow_provider_cplugin.realtime.capture"
SHARED_KEY = "cplugin-hub"
FINAL_CHECKPOINT_S = 2.0


def _stream(value: Any, platform_type: str | None) -> StreamSpec:
    try:
        spec = StreamSpec.parse(value)
    except CPluginConfigError as err:
        raise CPluginConfigError("stream", err.problem) from None
    known = {m for (p, m) in STREAM_FIELDS if platform_type in (None, p)}
    if spec.method not in known:
        where = f"{platform_type} " if platform_type else ""
        raise CPluginConfigError("stream", f"{spec.method!r} is not a {where}hub stream; known: {sorted(known)}")
    return spec


def _positive(name: str, value: Any, *, integer: bool = False, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float) and math.isfinite(value)
    if isinstance(value, bool) or not ok or value <= 0:
        kind = "an integer >= 1" if integer else "a number of seconds > 0"
        raise CPluginConfigError(name, f"must be {kind}{' or None' if optional else ''}, got {value!r}")
    return value


def _delays(value: Any) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(
        isinstance(d, int | float) and not isinstance(d, bool) and math.isfinite(d) and d >= 0 for d in value
    ):
        raise CPluginConfigError("reconnect_delays", f"must be a list of seconds >= 0, got {value!r}")
    return [float(d) for d in value]


def _where(value: Any) -> list[Any]:
    """The filter as given, or as :meth:`HubEventTrigger.serialize` stores it (JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise CPluginConfigError("where", f"is not a list of conditions nor its JSON text: {err}") from None
    return list(value or []) if isinstance(value, list | tuple) or value is None else value  # checked by compile


def _sequences(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or ":" not in value):
        raise CPluginConfigError("sequences", f"must be 'module:function', got {value!r}")
    return value


class _HubTrigger(BaseEventTrigger):
    """What both hub triggers share: the stream they read, its platform, and the shared hub connection."""

    def __init__(
        self,
        *,
        stream: str | dict[str, Any],
        cplugin_conn_id: str = "cplugin_default",
        trade_platform: str | None = None,
        platform_type: str | None = None,
        sequences: str | None = None,
        reconnect_delays: list[float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(cplugin_conn_id, str) or not cplugin_conn_id.strip():
            raise CPluginConfigError("cplugin_conn_id", f"must be a connection id, got {cplugin_conn_id!r}")
        if trade_platform is not None and (not isinstance(trade_platform, str) or not trade_platform.strip()):
            raise CPluginConfigError("trade_platform", f"must be a trade platform GUID or None, got {trade_platform!r}")
        self.cplugin_conn_id = cplugin_conn_id
        self.trade_platform = trade_platform
        self.platform_type = None if platform_type is None else check_platform_type(platform_type)
        self.spec = _stream(stream, self.platform_type)
        self.sequences = _sequences(sequences)
        self.reconnect_delays = _delays(reconnect_delays)

    def _source_kwargs(self) -> dict[str, Any]:
        return {
            "stream": self.spec.to_dict(),
            "cplugin_conn_id": self.cplugin_conn_id,
            "trade_platform": self.trade_platform,
            "platform_type": self.platform_type,
            "sequences": self.sequences,
            "reconnect_delays": self.reconnect_delays,
        }

    def _classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def _state_slot(self, kind: str) -> StateSlot:
        return StateSlot(self.asset_state_store, state_key(kind, self.serialize()[1]), self.log)


class HubEventTrigger(_HubTrigger):
    """Fires when events of one hub stream match ``where``, at most once per key per ``debounce_s`` seconds and/or
    once per ``every_n`` matches of the key.

    :param stream: ``"StreamMarginCallUpdates"``, ``"StreamTrades"``, ``"StreamTicks:EURUSD"``...
    :param where: the filter, a list of conditions (see :mod:`..realtime.filters`); ``[]`` matches every event.
        Serialized as its JSON text (also accepted here).
    :param key_fields: payload fields that make the debounce key (default: ``login`` for account streams,
        ``symbol`` for ticks and symbols; ``[]`` = one key for the whole stream).
    :param fields: payload fields copied into the event (default: the key, the filtered fields and a few per stream).
    :param trade_platform: default: the connection's. ``platform_type``: default: the connection's, or looked up.
    :param sequences: ``"module:function"`` sequence factory (as :class:`~.hub_sample.HubSampleTrigger`'s): with
        it, repeats are dropped and missed events counted (the emulator's: ``...emulator.hubs.feeds:sample_sequences``).
    :param checkpoint_s: how often the watermark is saved besides every fire.

    The event payload: ``watcher``, ``stream``, ``trade_platform``, ``platform_type``, ``key``, ``event`` (the
    selected fields), ``received_at``, ``sequence``, ``matches`` (matches of this key covered by this event),
    ``matched_since_last_fire`` (all keys), ``missed_live`` (events lost on a live connection since the last event;
    None without sequences), ``outages`` (disconnects and restarts since the last event: kind, reason, start, end,
    duration, missed) and ``outages_dropped``.
    """

    def __init__(
        self,
        *,
        stream: str | dict[str, Any],
        where: list[dict[str, Any]] | str | None = None,
        key_fields: list[str] | None = None,
        fields: list[str] | None = None,
        debounce_s: float | None = None,
        every_n: int | None = None,
        name: str | None = None,
        checkpoint_s: float = 5.0,
        cplugin_conn_id: str = "cplugin_default",
        trade_platform: str | None = None,
        platform_type: str | None = None,
        sequences: str | None = None,
        reconnect_delays: list[float] | None = None,
    ) -> None:
        super().__init__(
            stream=stream, cplugin_conn_id=cplugin_conn_id, trade_platform=trade_platform,
            platform_type=platform_type, sequences=sequences, reconnect_delays=reconnect_delays,
        )  # fmt: skip
        method = self.spec.method
        self.where = _where(where)
        self.compiled = compile_filter(self.where, self.platform_type, method)
        keys = DEFAULT_KEYS.get(method, []) if key_fields is None else key_fields
        self.key_fields = check_field_list("key_fields", keys, self.platform_type, method)
        self.fields = None if fields is None else check_field_list("fields", fields, self.platform_type, method)
        self.debounce_s = _positive("debounce_s", debounce_s)
        self.every_n = _positive("every_n", every_n, integer=True)
        self.checkpoint_s = _positive("checkpoint_s", checkpoint_s, optional=False)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise CPluginConfigError("name", f"must be a non-empty string or None, got {name!r}")
        self.name = name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {
            **self._source_kwargs(),
            # JSON text: Airflow 3.3 hashes a watcher's kwargs before and after its DB round trip to link the trigger
            # to the asset, and a list of dicts does not hash the same both ways (the watcher was never linked).
            "where": json.dumps(self.where, sort_keys=True),
            "key_fields": self.key_fields,
            "fields": self.fields,
            "debounce_s": self.debounce_s,
            "every_n": self.every_n,
            "name": self.name,
            "checkpoint_s": self.checkpoint_s,
        }

    # ------------------------------------------------------------------ shared stream

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of the same connection, platform, stream and sequence factory share one hub connection."""
        return (
            SHARED_KEY, self.cplugin_conn_id, self.trade_platform or "", self.platform_type or "",
            self.spec.method, tuple(self.spec.args), self.sequences or "", tuple(self.reconnect_delays or ()),
        )  # fmt: skip

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        source = await asyncio.to_thread(importlib.import_module, SOURCE_MODULE)
        async for batch in source.hub_batches(kwargs):
            yield batch

    def _watcher(self) -> Watcher:
        fields = self.fields
        if fields is None:
            summary = SUMMARY_FIELDS.get(self.spec.method, [])
            fields = list(dict.fromkeys([*self.key_fields, *self.compiled.fields, *summary]))
        return Watcher(
            self.name or self.spec.channel,
            self.compiled,
            self.key_fields,
            fields,
            Debouncer(self.debounce_s, self.every_n),
            self._state_slot("event"),
            self.checkpoint_s,
            self.log,
        )

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        watcher = self._watcher()
        await watcher.load()
        checked = self.platform_type is not None
        work: asyncio.Future[Any] | None = None
        handing_over = False  # a batch's fires are being yielded: its last state is not the watermark yet
        try:
            async for batch in shared_stream:
                if not checked:
                    # The type was resolved by the hub source: the filter must hold for that platform's payloads.
                    watcher.filter = compile_filter(self.where, batch.platform_type, self.spec.method)
                    check_field_list("key_fields", self.key_fields, batch.platform_type, self.spec.method)
                    checked = True
                # Filter, debounce and bookkeeping in a worker thread: the loop only saves and yields the results.
                work = asyncio.ensure_future(asyncio.to_thread(watcher.process_batch, batch))
                fires, state = await asyncio.shield(work)
                if state is not None:
                    await watcher.save(state)
                handing_over = True
                for payload, as_of in fires:
                    # Saved before it leaves: a restart never fires it twice, and counts what follows it as missed.
                    await watcher.save(as_of, whole=False)
                    yield TriggerEvent(payload)
                handing_over = False
        finally:
            # Best effort on a graceful stop (cancel, reassignment): a later restart then counts no false loss. A
            # stop while a batch's fires are handed over keeps the state of the last one that left.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(FINAL_CHECKPOINT_S):
                    if work is not None and not work.done():
                        await work  # the state must not be read while a thread still changes it
                    if not handing_over:
                        await watcher.checkpoint(force=watcher.evaluated > 0)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Standalone path (no shared-stream manager: tests, ``airflow dags test``): its own hub connection."""
        async for event in self.filter_shared_stream(type(self).open_shared_stream(self.serialize()[1])):
            yield event


class HubCaptureTrigger(_HubTrigger):
    """Lands one hub stream to Parquet continuously and fires one event per landed file (see
    :mod:`..realtime.capture`): a file every ``roll_s`` seconds or ``roll_rows`` rows, whichever comes first.

    :param output_path: landing root (URL or absolute path; default: the provider's landing path), with
        ``output_conn_id`` its storage connection.
    :param name: the capture's name, the prefix of its files (default: the stream's channel).
    :param sequences: as :class:`HubEventTrigger`'s; with it the events missed across disconnects and restarts are
        counted (``landed = sent - missed``), else they are reported as unknown (``None``).

    The event payload: ``capture``, ``stream``, ``path``, ``rows``, ``bytes``, ``batch`` (file number),
    ``entity``, ``first_event_at``/``last_event_at`` (ISO, UTC), ``gaps`` (outages since the previous file),
    ``missed`` (their events plus ``missed_live``; None when unknown), ``rejects`` (``rows``, ``path``) and
    ``recovered`` (a file landed before a kill and reported by the next instance).

    It keeps its own hub connection (no shared stream): Airflow's shared streams fan out without backpressure and
    fail a subscriber that falls behind, where a capture wants the hub client to slow the server down instead.
    """

    def __init__(
        self,
        *,
        stream: str | dict[str, Any],
        output_path: str | None = None,
        output_conn_id: str | None = None,
        name: str | None = None,
        roll_s: float = 60.0,
        roll_rows: int = 100_000,
        cplugin_conn_id: str = "cplugin_default",
        trade_platform: str | None = None,
        platform_type: str | None = None,
        sequences: str | None = None,
        reconnect_delays: list[float] | None = None,
    ) -> None:
        super().__init__(
            stream=stream, cplugin_conn_id=cplugin_conn_id, trade_platform=trade_platform,
            platform_type=platform_type, sequences=sequences, reconnect_delays=reconnect_delays,
        )  # fmt: skip
        self.output_path = output_path if output_path is None else check_output_path(output_path)
        self.output_conn_id = output_conn_id
        if name is not None and (not isinstance(name, str) or not name.strip() or "__" in name or "/" in name):
            raise CPluginConfigError("name", f"must be a non-empty name without '__' or '/', got {name!r}")
        self.name = name or self.spec.channel.replace("(", "-").replace(")", "").replace(",", "-")
        self.roll_s = _positive("roll_s", roll_s, optional=False)
        self.roll_rows = _positive("roll_rows", roll_rows, integer=True, optional=False)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return self._classpath(), {
            **self._source_kwargs(),
            "output_path": self.output_path,
            "output_conn_id": self.output_conn_id,
            "name": self.name,
            "roll_s": self.roll_s,
            "roll_rows": self.roll_rows,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        capture = await asyncio.to_thread(importlib.import_module, CAPTURE_MODULE)
        kwargs = self.serialize()[1]
        async for landed in capture.HubCapture(kwargs, self._state_slot("capture"), self.log).run():
            self.log.info("Hub capture %s: landed %d rows at %s", self.name, landed["rows"], landed["path"])
            yield TriggerEvent(landed)
