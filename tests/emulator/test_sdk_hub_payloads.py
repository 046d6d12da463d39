"""Every hub the emulator serves, checked against the vendor's TypeScript SDK (``@mywebapi.com/sdk`` 0.2.1, the one
SDK that declares the hub contract): hub paths, method names, kinds (invoke / stream / server event) and arity, and
every payload the emulator actually pushes, field by field (names, JSON types, ``?`` optional, ``| null``, literal
unions).

Nothing is copied from the SDK by hand: the package is ``npm pack``-ed at test time (skipped, with the reason, when
npm is missing or the registry unreachable, like the ``@microsoft/signalr`` client test), its ``signalr*.d.ts`` and
the model files they reference are parsed by ``ts_sdk.py``, and the wire target of each wrapper method is read from
its compiled JS body. What the test writes itself: sample arguments by parameter name (``SAMPLE_ARGS``) and the
commented differences where the SDK is silent or the reference overrides it (``ALLOWED``, each must stay in use).

The payloads are collected from the emulator in-process over a raw WebSocket (no client library that could reshape
them), with and without every data quirk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from emulator_support import MT4, MT5, ClientFactory, get_token
from ts_sdk import (
    Alias,
    Checker,
    DtsError,
    HubCall,
    HubClient,
    Indexed,
    Package,
    Prim,
    Ref,
    SdkUnavailable,
    hub_clients,
    npm_pack,
    parse_dts,
)

from airflow_provider_cplugin.emulator.hubs.definitions import HUBS, MT4_HUB, HubSpec, Method
from airflow_provider_cplugin.emulator.hubs.feeds import DEFAULT_RATES
from airflow_provider_cplugin.emulator.quirks import ALL_QUIRKS

pytestmark = pytest.mark.timeout(120)
RS = "\x1e"
ITEMS = 12  # payloads checked per stream / event: enough for every trade kind and several accounts and symbols
SAMPLE_ARGS: dict[str, Any] = {"symbol": "EURUSD"}  # hub arguments by the SDK's parameter name
# The invocation that makes the server push an event (the SDK's doc: "Pair with subscribeToTicks(symbol)").
DRIVEN_BY = {"OnTick": "SubscribeToTicks"}
PLATFORMS = {"/hubs/mt4/v2": MT4, "/hubs/mt5/v2": MT5}


@dataclass(frozen=True)
class Allowance:
    why: str
    # For a served event the SDK does not declare: check its payload as this SDK call's payload instead.
    check_as: tuple[str, str] | None = None  # (kind, target)


# Known differences, keyed (hub path, target or "*" for the whole hub). Each must be in use (else the test fails).
ALLOWED: dict[tuple[str, str], Allowance] = {
    # The seed's legacy hub (reference §8, confluence "MT4 Hub"): no SDK declares it. Its methods and the docs'
    # {Symbol, Bid, Ask} tick are checked in test_hubs_protocol.py and test_independent_clients.py.
    ("/hubs/mt4/v1", "*"): Allowance("legacy v1 hub of the docs' example: no SDK declares it"),
    # The docs' "no auth" demo hub (path and event name unverified, reference §8): no SDK declares it.
    ("/hubs/test", "*"): Allowance("demo test hub of the docs: no SDK declares it"),
    # The vendor's .NET SDK declares an MT5 OnMarginCall callback (reference §8, issue 15); the TS SDK 0.2.1
    # registers no handler for it. The emulator pushes the StreamMarginCallUpdates item, checked as that.
    ("/hubs/mt5/v2", "OnMarginCall"): Allowance(
        ".NET SDK callback the TS SDK does not declare", check_as=("stream", "StreamMarginCallUpdates")
    ),
}


# --------------------------------------------------------------------------- the SDK, obtained at test time


@pytest.fixture(scope="module")
def ts_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return npm_pack(tmp_path_factory.mktemp("ts-sdk"))
    except SdkUnavailable as exc:
        pytest.skip(f"the TypeScript SDK cannot be obtained: {exc}")


def test_parser_reads_the_hub_and_model_declarations(ts_sdk: Path) -> None:
    """Every ``signalr*.d.ts`` and generated model file parses, and every orval enum resolves to its values."""
    files = sorted((ts_sdk / "dist").glob("signalr*.d.ts")) + sorted((ts_sdk / "dist/generated/model").glob("*.d.ts"))
    assert len(files) > 300, "the package layout changed: the model files were not found"
    package = Package(ts_sdk)
    checker = Checker(package)
    enums = 0
    for file in files:
        mod = package.module(file)
        for decl in mod.decls.values():
            if isinstance(decl, Alias) and isinstance(decl.type, Indexed):
                assert checker.enum_union(decl.type, mod).options
                enums += 1
    assert enums > 50
    # A payload that references the generated models resolves through the imports (MT4TickInfo: the REST tick).
    mod = package.module(ts_sdk / "dist/generated/model/mT4TickInfoListApiResponse.d.ts")
    tick = {"symbol": "EURUSD", "time": "2026-01-01T00:00:00Z", "bid": 1.1, "ask": 1.2}
    envelope = {"data": [tick], "error": None, "meta": {"activityId": "0" * 32}}
    assert checker.problems(envelope, Ref("MT4TickInfoListApiResponse"), mod, "$") == []


# --------------------------------------------------------------------------- hub methods and arity


def method_problems(clients: list[HubClient], hubs: tuple[HubSpec, ...], used: set[tuple[str, str]]) -> list[str]:
    """Hub paths, method names (exact spelling), kinds and arity of the SDK's calls against the emulator's hubs."""
    out: list[str] = []
    declared = {c.path.lower() for c in clients}
    for spec in hubs:
        if spec.path.lower() not in declared:
            if (spec.path, "*") in ALLOWED:
                used.add((spec.path, "*"))
            else:
                out.append(f"{spec.path}: served, but no SDK client connects to it")
    for client in clients:
        hub = next((s for s in hubs if s.path.lower() == client.path.lower()), None)
        if hub is None:
            out.append(f"{client.path}: {client.name} connects to it, the emulator does not serve it")
            continue
        spec = hub
        served = {("invoke", n): m for n, m in spec.invocations.items()}
        served.update({("stream", n): m for n, m in spec.streams.items()})
        wanted = {(c.kind, c.target): c for c in client.calls if c.kind != "on"}
        for key, call in wanted.items():
            method = served.get(key)
            other = "stream" if key[0] == "invoke" else "invoke"
            if method is None:
                also = " (served as a " + other + ")" if (other, key[1]) in served else ""
                out.append(f"{spec.path}: the SDK calls {key[0]} {key[1]}, not served{also}")
            elif (method.min_args, method.max_args) != call.arity:
                out.append(
                    f"{spec.path}: {key[1]} takes {method.min_args}..{method.max_args} arguments, "
                    f"the SDK's {call.method} sends {call.arity[0]}..{call.arity[1]}"
                )
        for key in served.keys() - wanted.keys():
            if (spec.path, key[1]) in ALLOWED:
                used.add((spec.path, key[1]))
            else:
                out.append(f"{spec.path}: serves {key[0]} {key[1]}, which the SDK does not declare")
    return out


def test_hub_methods_match_the_sdk(ts_sdk: Path) -> None:
    clients = hub_clients(ts_sdk)
    assert {c.name for c in clients} == {"MT4V2SignalRClient", "MT5V2SignalRClient"}
    used: set[tuple[str, str]] = set()
    assert method_problems(clients, HUBS, used) == []
    hub_level = {k for k in ALLOWED if k[1] == "*"}
    assert used == hub_level, "a hub allow-list entry is not needed any more: remove it"


# --------------------------------------------------------------------------- payloads pushed over the wire


@dataclass
class Wire:
    """One raw WebSocket hub connection (past the handshake) recording every message the server sends."""

    ws: Any
    messages: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: int = 0

    async def read(self) -> None:
        async for frame in self.ws:
            self.messages += [json.loads(r) for r in frame.data.split(RS) if r]
            self.changed.set()

    async def until(self, predicate: Any, what: str) -> None:
        async with asyncio.timeout(20):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def send(self, kind: int, target: str, args: list[Any]) -> str:
        self._ids += 1
        invocation_id = str(self._ids)
        message = {"type": kind, "invocationId": invocation_id, "target": target, "arguments": args}
        await self.ws.send_str(json.dumps(message) + RS)
        return invocation_id

    def for_id(self, invocation_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("invocationId") == invocation_id]

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == 1 and "invocationId" not in m]

    async def invoke(self, target: str, args: list[Any]) -> dict[str, Any]:
        """Invocation -> its Completion message."""
        invocation_id = await self.send(1, target, args)
        await self.until(lambda: bool(self.for_id(invocation_id)), f"{target} completion")
        return self.for_id(invocation_id)[0]

    async def stream(self, target: str, args: list[Any], count: int) -> tuple[list[Any], dict[str, Any] | None]:
        """StreamInvocation -> (its first ``count`` items, its Completion if it ended before); then cancelled."""
        invocation_id = await self.send(4, target, args)

        def answers() -> list[dict[str, Any]]:
            return self.for_id(invocation_id)

        def ended() -> bool:
            return any(m["type"] == 3 for m in answers())

        await self.until(lambda: ended() or sum(m["type"] == 2 for m in answers()) >= count, f"{target} items")
        await self.ws.send_str(json.dumps({"type": 5, "invocationId": invocation_id}) + RS)
        got = answers()
        return [m["item"] for m in got if m["type"] == 2][:count], next((m for m in got if m["type"] == 3), None)


@asynccontextmanager
async def _wire(client: TestClient[Any, Any], path: str) -> AsyncIterator[Wire]:
    token = await get_token(client)
    ws = await client.ws_connect(f"{path}?tradePlatform={PLATFORMS[path]}&access_token={token}")
    await ws.send_str('{"protocol":"json","version":1}' + RS)
    wire = Wire(ws)
    reader = asyncio.create_task(wire.read())
    try:
        await wire.until(lambda: bool(wire.messages), "the handshake answer")
        assert wire.messages.pop(0) == {}, "handshake refused"
        yield wire
    finally:
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def _arg_sets(call: HubCall) -> list[list[Any]]:
    """Sample argument lists for every arity the SDK's wrapper can send (all optional ones left out, or given)."""
    low, high = call.arity
    missing = [p.name for p in call.params if p.name not in SAMPLE_ARGS]
    assert not missing, f"{call.method}: add a sample value for its parameters {missing} to SAMPLE_ARGS"
    values = [SAMPLE_ARGS[p.name] for p in call.params]
    return [values[:low]] if low == high else [values[:low], values[:high]]


@dataclass
class Served:
    """What the emulator pushed: payloads keyed (hub path, kind, target), and per-call wire problems."""

    payloads: dict[tuple[str, str, str], list[Any]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)


async def collect(client: TestClient[Any, Any], hub: HubClient) -> Served:
    """Drive one hub as the SDK would (every invocation and stream, every arity) and record what it pushes."""
    served = Served()
    async with _wire(client, hub.path) as wire:

        def seen(target: str) -> int:
            return sum(e["target"] == target for e in wire.events())

        # Server events first: every one the SDK declares and every allow-listed one, seen ITEMS times
        # (OnConnectionStatus once: it is pushed once per connection, right after the handshake).
        waited = {c.target for c in hub.calls if c.kind == "on"} | {t for p, t in ALLOWED if p == hub.path and t != "*"}
        for target in sorted(waited):
            if target in DRIVEN_BY:
                (driver,) = [c for c in hub.calls if (c.kind, c.target) == ("invoke", DRIVEN_BY[target])]
                await wire.invoke(driver.target, _arg_sets(driver)[-1])
            want = 1 if target == "OnConnectionStatus" else ITEMS
            await wire.until(lambda t=target, n=want: seen(t) >= n, f"{target} pushes")
        for call in hub.calls:
            if call.kind == "on":
                continue
            for args in _arg_sets(call):
                if call.kind == "invoke":
                    completion = await wire.invoke(call.target, args)
                    if completion.get("error"):
                        served.problems.append(f"{hub.path}: {call.target}{args} failed: {completion['error']}")
                    served.payloads[(hub.path, "result", call.target)].append(completion.get("result"))
                    continue
                items, ended = await wire.stream(call.target, args, ITEMS)
                if ended is not None:
                    served.problems.append(f"{hub.path}: {call.target}{args} ended after {len(items)} items: {ended}")
                served.payloads[(hub.path, "stream", call.target)] += items
            # One argument too many: refused on the wire, as ASP.NET Core's binder does.
            too_many = [SAMPLE_ARGS[p.name] for p in call.params] + ["extra"]
            if call.kind == "invoke":
                refused = (await wire.invoke(call.target, too_many)).get("error")
            else:
                refused = ((await wire.stream(call.target, too_many, 1))[1] or {}).get("error")
            if not refused:
                served.problems.append(f"{hub.path}: {call.target} accepted {len(too_many)} arguments")
        for event in wire.events():
            served.payloads[(hub.path, "on", event["target"])].append(event["arguments"])
    return served


def payload_problems(
    checker: Checker, clients: list[HubClient], served: Served, used: set[tuple[str, str]]
) -> list[str]:
    """Every served payload against the SDK type of its call; an undeclared one must be allow-listed."""
    out = list(served.problems)
    for (path, kind, target), values in served.payloads.items():
        client = next(c for c in clients if c.path == path)
        lookup = ("invoke" if kind == "result" else kind, target)
        call = next((c for c in client.calls if (c.kind, c.target) == lookup), None)
        where = f"{path} {kind} {target}"
        if call is None:
            allowance = ALLOWED.get((path, target))
            if allowance is None or allowance.check_as is None:
                out.append(f"{where}: pushed, the SDK does not declare it")
                continue
            used.add((path, target))
            call = next(c for c in client.calls if (c.kind, c.target) == allowance.check_as)
            values = [args[0] if len(args) == 1 else args for args in values]
        elif kind == "on":
            bad = [args for args in values if len(args) != 1]
            out += [f"{where}: {len(args)} arguments, the SDK's handler takes 1" for args in bad[:1]]
            values = [args[0] for args in values if len(args) == 1]
        for n, value in enumerate(values):
            if kind == "result" and call.payload == Prim("void"):
                out += [] if value is None else [f"{where}: result {value!r}, the SDK's {call.method} returns void"]
                continue
            out += checker.problems(value, call.payload, client.module, f"{where}[{n}]")
    # One line per kind of problem, with the number of payloads that have it.
    counts = Counter(re.sub(r"^(.*?)\[\d+\]", r"\1[*]", p) for p in out)
    return [p if n == 1 else f"{p} ({n} payloads)" for p, n in counts.items()]


@pytest.mark.parametrize("quirks", [(), ALL_QUIRKS], ids=["default", "all-quirks"])
async def test_served_hub_payloads_match_the_sdk(
    ts_sdk: Path, make_client: ClientFactory, quirks: tuple[str, ...]
) -> None:
    clients = hub_clients(ts_sdk)
    client = await make_client(quirks=quirks)
    rates = {name: 200.0 for name in DEFAULT_RATES}
    resp = await client.post("/_emulator/hub-config", json={"rates": rates})
    assert resp.status == 200, await resp.text()
    checker = Checker(Package(ts_sdk))
    found: list[str] = []
    used: set[tuple[str, str]] = set()
    for hub in clients:
        served = await collect(client, hub)
        for call in hub.calls:
            key = (hub.path, "result" if call.kind == "invoke" else call.kind, call.target)
            assert served.payloads.get(key), f"{key}: nothing served, the check would prove nothing"
        found += payload_problems(checker, clients, served, used)
    assert found == []
    event_level = {k for k, a in ALLOWED.items() if a.check_as is not None}
    assert used == event_level, "an allow-list entry no served payload needs any more: remove it"


# --------------------------------------------------------------------------- the comparator can fail

PLANTED_DTS = {
    "signalr.d.ts": """
import type { Side } from './generated/model/side';
/** A doc comment with `code` and 'quotes'. */
export interface TickPayload {
    symbol: string;
    bid: number;
    /** ISO-8601 */
    lastTime: string | null;
    kind: 'Added' | 'Updated' | 'Deleted';
    note?: string;
    sides: Side[];
    enabled: boolean;
}
export declare class FakeSignalRClient {
    private readonly hubUrl;
    constructor(opts: unknown);
    get hubUrlForTest(): string;
    onTick(handler: (payload: TickPayload) => void): void;
    subscribeToTicks(symbol: string): Promise<void>;
    streamTicks(symbol?: string): AsyncIterable<TickPayload>;
}
""",
    "generated/model/side.d.ts": """
export type Side = typeof Side[keyof typeof Side];
export declare const Side: {
    readonly Buy: "Buy";
    readonly Sell: "Sell";
};
""",
}

GOOD = {"symbol": "EURUSD", "bid": 1.1, "lastTime": None, "kind": "Added", "sides": ["Buy"], "enabled": True}
PLANTED = [
    ({**GOOD, "extra": 1}, "$: extra is served but not in TickPayload"),
    ({k: v for k, v in GOOD.items() if k != "bid"}, "$: TickPayload.bid is not served"),
    ({**GOOD, "symbol": None}, "$.symbol: null, the SDK does not allow null"),
    ({**GOOD, "bid": "1.1"}, "$.bid: string '1.1', the SDK says number"),
    ({**GOOD, "enabled": 1}, "$.enabled: number 1, the SDK says boolean"),
    ({**GOOD, "bid": True}, "$.bid: boolean True, the SDK says number"),
    ({**GOOD, "kind": "Removed"}, "$.kind: 'Removed' is not one of ['Added', 'Updated', 'Deleted']"),
    ({**GOOD, "sides": ["Buy", "Hold"]}, "$.sides[1]: 'Hold' is not one of ['Buy', 'Sell']"),
    ({**GOOD, "sides": "Buy"}, "$.sides: string, the SDK says array"),
    ({**GOOD, "lastTime": 0}, "$.lastTime: number 0, the SDK says string"),
    ({**GOOD, "note": None}, "$.note: null, the SDK does not allow null"),
    ([GOOD], "$: array, the SDK says TickPayload object"),
]


@pytest.fixture
def planted_package(tmp_path: Path) -> Path:
    for name, text in PLANTED_DTS.items():
        (tmp_path / "dist" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dist" / name).write_text(text)
    return tmp_path


def _plant_js(root: Path, stream_target: str) -> None:
    """The compiled JS of the planted client (hub path and wire targets), its stream named ``stream_target``."""
    (root / "dist/node").mkdir()
    (root / "dist/node/index.js").write_text(
        "class FakeSignalRClient {\n"
        "  constructor(opts) {\n    this.base = `${serviceBase}/hubs/mt4/v2`;\n  }\n"
        '  onTick(handler) {\n    this.register((c) => c.on("OnTick", handler));\n  }\n'
        '  async subscribeToTicks(symbol) {\n    await this.c.invoke("SubscribeToTicks", symbol);\n  }\n'
        f'  streamTicks(symbol) {{\n    return this.c.stream("{stream_target}", symbol);\n  }}\n'
        "}\n"
    )


@pytest.mark.parametrize(("value", "problem"), PLANTED, ids=[p for _, p in PLANTED])
def test_the_comparator_catches_a_planted_difference(planted_package: Path, value: Any, problem: str) -> None:
    package = Package(planted_package)
    mod = package.module(planted_package / "dist/signalr.d.ts")
    checker = Checker(package)
    assert checker.problems(GOOD, Ref("TickPayload"), mod, "$") == []
    assert checker.problems({**GOOD, "note": "x"}, Ref("TickPayload"), mod, "$") == []  # optional, given
    assert checker.problems(value, Ref("TickPayload"), mod, "$") == [problem]


def test_the_method_check_catches_planted_differences(planted_package: Path) -> None:
    """A planted SDK client against the real hub specs: wrong arity, a method not served, a hub not served."""
    _plant_js(planted_package, "StreamQuotes")
    (client,) = hub_clients(planted_package)
    assert [(c.kind, c.target, c.arity) for c in client.calls] == [
        ("on", "OnTick", (0, 0)),
        ("invoke", "SubscribeToTicks", (1, 1)),
        ("stream", "StreamQuotes", (0, 1)),
    ]
    used: set[tuple[str, str]] = set()
    problems = method_problems([client], HUBS, used)
    assert used == {("/hubs/mt4/v1", "*"), ("/hubs/test", "*")}
    stale: set[tuple[str, str]] = set()
    method_problems([client], (MT4_HUB,), stale)
    assert stale == set(), "the hub-level allowances are unused when those hubs are not served: the test flags them"
    assert "/hubs/mt4/v2: the SDK calls stream StreamQuotes, not served" in problems
    assert "/hubs/mt4/v2: serves stream StreamTicks, which the SDK does not declare" in problems
    assert "/hubs/mt5/v2: served, but no SDK client connects to it" in problems
    assert "/hubs/mt4/v2: serves invoke UnsubscribeFromTicks, which the SDK does not declare" in problems
    # The SDK sends SubscribeToTicks with one argument: the served arity agrees, no problem reported for it.
    assert not [p for p in problems if "SubscribeToTicks takes" in p]
    # An arity the emulator does not take is reported.
    subscribe = MT4_HUB.invocations["SubscribeToTicks"]
    narrowed = dataclasses.replace(
        MT4_HUB, invocations={**MT4_HUB.invocations, "SubscribeToTicks": Method(subscribe.handler, 2, 2)}
    )
    assert "/hubs/mt4/v2: SubscribeToTicks takes 2..2 arguments, the SDK's subscribeToTicks sends 1..1" in (
        method_problems([client], (narrowed,), set())
    )


def test_the_parser_refuses_what_it_does_not_understand(tmp_path: Path) -> None:
    (tmp_path / "x.d.ts").write_text("export interface Box<T> { value: T; }")
    with pytest.raises(DtsError, match="generic declaration Box"):
        parse_dts(tmp_path / "x.d.ts")


def test_the_payload_check_catches_planted_differences(planted_package: Path) -> None:
    """Served payloads against a planted SDK client: an undeclared event, a wrong argument count, a non-void
    result, a bad stream item; a good payload passes."""
    _plant_js(planted_package, "StreamTicks")
    clients = hub_clients(planted_package)
    checker = Checker(Package(planted_package))
    served = Served()
    served.payloads[("/hubs/mt4/v2", "on", "OnTick")] += [[GOOD], [GOOD, 1]]
    served.payloads[("/hubs/mt4/v2", "on", "OnFoo")] += [[GOOD]]
    served.payloads[("/hubs/mt4/v2", "result", "SubscribeToTicks")] += [None, True]
    served.payloads[("/hubs/mt4/v2", "stream", "StreamTicks")] += [GOOD, {**GOOD, "bid": None}, {**GOOD, "bid": None}]
    used: set[tuple[str, str]] = set()
    assert payload_problems(checker, clients, served, used) == [
        "/hubs/mt4/v2 on OnTick: 2 arguments, the SDK's handler takes 1",
        "/hubs/mt4/v2 on OnFoo: pushed, the SDK does not declare it",
        "/hubs/mt4/v2 result SubscribeToTicks: result True, the SDK's subscribeToTicks returns void",
        "/hubs/mt4/v2 stream StreamTicks[*].bid: null, the SDK does not allow null (2 payloads)",
    ]
    assert used == set()
