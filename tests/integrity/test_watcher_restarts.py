"""Integrity of a hub watcher when its hub client gives up (reconnects exhausted) and the hub source starts a new one
after a back-off: the outage between the two clients is reported in the next event, with its exact missed count.

Truth: the emulator's stream records (``GET /_emulator/hub-stats``: the feed index of each invocation's first item)
and the feed index every payload carries (its sequence)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_testing import ready_hub, take

from airflow_provider_cplugin.emulator.process import EmulatorProcess
from airflow_provider_cplugin.triggers.hub_event import HubEventTrigger

pytestmark = pytest.mark.timeout(150)

MARGIN = "StreamMarginCallUpdates"
SEQUENCES = "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences"


@pytest.fixture(scope="module")
def process() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(users=500, seed=17) as emu:
        yield emu


@pytest.fixture
def emu(process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    return ready_hub(process, monkeypatch, margin_calls=50)


@pytest.mark.matrix(
    area="hub watchers",
    fault="hub client gives up (no reconnect left) mid-stream",
    expected="a new client after a back-off; disconnect outage with the exact missed count in the next event",
)
async def test_a_new_client_after_the_old_one_gave_up_reports_the_outage(emu: EmulatorProcess) -> None:
    emu.set_hub_faults([{"fault": "drop", "after_messages": 40, "hub": "/hubs/mt4/v2", "times": 1}])
    trigger = HubEventTrigger(stream=MARGIN, platform_type="MT4", sequences=SEQUENCES, key_fields=[],
                              reconnect_delays=[])  # fmt: skip
    fired = await take(trigger.run(), 60)
    one, two = [r for r in emu._control("GET", "hub-stats")["streams"] if r["target"] == MARGIN]
    indexes = [p["sequence"][1] for p in fired]
    assert indexes == sorted(set(indexes))
    (n,) = [k for k, p in enumerate(fired) if p["outages"]]
    (outage,) = fired[n]["outages"]
    assert outage["kind"] == "disconnect" and indexes[n] == two["first_index"]
    assert indexes[:n] == list(range(one["first_index"], indexes[n - 1] + 1))  # nothing lost before the drop
    assert outage["missed"] == two["first_index"] - indexes[n - 1] - 1 > 0
    assert outage["ended_at"] >= outage["started_at"] and fired[n]["missed_live"] == 0
    stats = emu._control("GET", "hub-stats")
    assert stats["connections_opened"] == 2 and stats["handshakes"] == 2
