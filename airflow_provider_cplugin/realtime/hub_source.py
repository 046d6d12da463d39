"""One hub stream as an endless iterator of :class:`HubBatch` (the shared poll of the hub event triggers).

Imported by the triggers in a worker thread (it pulls in aiohttp, the hooks and the hub client). The iterator
connects with the connection's OAuth2 token, subscribes one stream and yields what arrives in batches, so a
shared-stream subscriber queue holds batches, not single events. It runs for the lifetime of the group, as
Airflow's shared streams expect ("yield forever, or raise"): when the client gives up (reconnects exhausted) or
the server completes the stream, it starts a new client after a back-off and reports the outage in the next
batch. Configuration and authentication errors are raised (every subscriber fails with the message).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.webapi_async import CPluginWebApiAsyncHook
from airflow_provider_cplugin.platforms import aresolve_platform
from airflow_provider_cplugin.realtime.errors import HubAuthError, HubError
from airflow_provider_cplugin.realtime.events import HubEvent
from airflow_provider_cplugin.realtime.gaps import SequenceFn
from airflow_provider_cplugin.realtime.hubs import check_stream, hub_client
from airflow_provider_cplugin.realtime.sample_request import StreamSpec

log = logging.getLogger(__name__)

BATCH_MAX = 5_000
BATCH_WAIT_S = 0.05
RESTART_DELAYS = (1.0, 5.0, 15.0, 60.0)
"""Back-off before a new client when the previous one gave up (the last delay repeats)."""


@dataclass
class HubBatch:
    """Events that arrived together, plus the outages closed since the previous batch.

    ``connection_offset`` + ``event.connection`` numbers connections across the clients of one poll; an outage's
    ``connection`` is the (offset) number of the connection it ended.
    """

    events: list[HubEvent]
    trade_platform: str
    platform_type: str
    connection_offset: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)


def load_sequence(
    factory_path: str | None, api_base_url: str, platform_type: str, spec: StreamSpec
) -> SequenceFn | None:
    """The ``module:function`` sequence factory's function for the stream (blocking: call in a thread)."""
    if not factory_path:
        return None
    module, _, name = factory_path.partition(":")
    try:
        factory: Callable[..., SequenceFn | None] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise CPluginConfigError("sequences", f"cannot import {factory_path!r}: {err}") from err
    fn = factory(api_base_url, platform_type, spec.method, list(spec.args))
    if fn is None:
        return None

    def tolerant(payload: Any) -> Any:
        # A malformed payload has no sequence: it must not break the client's receive loop.
        try:
            return fn(payload)
        except Exception:
            return None

    return tolerant


async def hub_batches(kwargs: dict[str, Any]) -> AsyncIterator[HubBatch]:
    """Endless batches of one stream; ``kwargs`` are a hub trigger's (only the shared-key fields are read)."""
    spec = StreamSpec.parse(kwargs["stream"])
    hook = CPluginWebApiAsyncHook(cplugin_conn_id=kwargs["cplugin_conn_id"])
    try:
        config = await hook.get_config()
        platform = await aresolve_platform(hook, kwargs.get("trade_platform"), kwargs.get("platform_type"))
        check_stream(platform.platform_type, spec.method)
        sequence = await asyncio.to_thread(
            load_sequence, kwargs.get("sequences"), config.api_base_url, platform.platform_type, spec
        )
        options: dict[str, Any] = {"allow_insecure_loopback": config.allow_insecure_loopback}
        if kwargs.get("reconnect_delays") is not None:
            options["reconnect_delays"] = tuple(kwargs["reconnect_delays"])
        offset = 0
        failures = 0
        outage: dict[str, Any] | None = None
        while True:
            # The hook's session carries the connection's TLS settings to the hub.
            client = hub_client(
                config.api_base_url, platform.platform_type, platform.trade_platform, hook.get_token,
                session=await hook.get_conn(), **options,
            )  # fmt: skip
            reported = 0
            try:
                await client.start()
                stream = await client.stream(spec.method, *spec.args, sequence=sequence)
                failures = 0
                pending: list[dict[str, Any]] = []
                if outage is not None:
                    outage["ended_at"] = time.time()
                    pending.append(outage)
                    outage = None
                while True:
                    events = await stream.get_batch(BATCH_MAX, BATCH_WAIT_S)
                    gaps = client.gaps
                    while reported < len(gaps) and gaps[reported].ended_at is not None:
                        gap = gaps[reported].to_dict()
                        gap["connection"] += offset
                        pending.append(dict(gap))
                        reported += 1
                    if events or pending:
                        yield HubBatch(events, platform.trade_platform, platform.platform_type, offset, pending)
                        pending = []
                    elif not stream.active:
                        raise HubError(f"the server completed {spec.channel}")
            except HubAuthError:
                raise
            except HubError as err:
                failures += 1
                delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1]
                log.warning("Hub stream %s stopped (%s); a new connection in %.0f s", spec.channel, err, delay)
                if outage is None:
                    outage = {
                        "kind": "disconnect", "reason": f"{type(err).__name__}: {err}", "started_at": time.time(),
                        "connection": offset + client.connection_number, "ended_at": None,
                    }  # fmt: skip
                offset += client.connection_number
                await client.stop()
                await asyncio.sleep(delay)
            finally:
                await client.stop()
    finally:
        await hook.close()
