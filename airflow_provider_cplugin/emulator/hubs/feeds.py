"""Synthetic realtime feeds of the emulated hubs: every event is a pure function of ``(seed, feed, index)``.

A feed is an endless sequence of events ``e_0, e_1, ...`` scheduled by a :class:`FeedClock` at ``rate`` events
per second. A stream invocation is a live subscription: it starts with the first event scheduled after the
invocation and then follows the clock, so a client that reconnects after a pause really misses the events in
between, and every client of the same feed sees the same events at the same index.

**Gap / duplicate detection.** The real hub payloads carry no sequence number, so none is invented here. Instead
the emulator makes the index recoverable from fields the payloads already have (``sequence_of`` inverts it):

* ticks: ``lastTime`` is the scheduled time of the event with 100 ns precision (.NET round-trip format, trailing
  zeros trimmed like System.Text.Json), ticks go round-robin over the symbols, so ``(symbol, lastTime)`` gives
  ``(symbol, per-symbol index)``;
* trades: each new ticket is ``Added``, ``Updated``, ``Deleted`` in turn, tickets increase by one, so
  ``(order, kind)`` gives the index;
* user updates: ``lastDate`` is the scheduled time (100 ns precision) -> index;
* margin-call updates: the account rotation plus ``updated`` (unix seconds, as the real int field) -> index,
  exact while each account appears at most once per second (rate <= number of accounts with open trades);
* symbol updates and MT5 margin calls carry neither a time nor a counter: no sequence (``None``).

Prices move as a bounded random walk per symbol: the level at tick ``k`` is the sum of the last ``WINDOW``
integer steps, each a hash of ``(seed, symbol, step index)``. A literal cumulative walk would need O(k) replay to
serve a stream starting at ``k``; the windowed sum is a random walk at every lag below ``WINDOW`` and is computed
incrementally while streaming (two hashes per tick).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import (
    MT4_LOGIN_BASE,
    MT4_TICKET_BASE,
    MT5_LOGIN_BASE,
    SYMBOLS,
    Dataset,
    rand64,
    stream_key,
)

TICKS_PER_S = 10_000_000  # .NET ticks (100 ns), the resolution of the emitted timestamps
WINDOW = 256
ZERO_TIME = "1970-01-01T00:00:00Z"
N_SYMBOLS = len(SYMBOLS)
SYMBOL_INDEX = {s.name: n for n, s in enumerate(SYMBOLS)}

# Feed names (control API keys) and their default rates in events per second.
TICKS = "ticks"
MARGIN_CALLS = "margin_calls"
TRADES = "trades"
USERS = "users"
SYMBOL_UPDATES = "symbols"
MT5_MARGIN_CALLS = "mt5_margin_calls"
SERVER_TIME = "server_time"
DEFAULT_RATES: dict[str, float] = {
    TICKS: 20.0,
    MARGIN_CALLS: 2.0,
    TRADES: 3.0,
    USERS: 1.0,
    SYMBOL_UPDATES: 0.2,
    MT5_MARGIN_CALLS: 1.0,
    SERVER_TIME: 1.0,
}
MAX_RATE = 1_000_000.0  # keeps 1/rate well above the 100 ns timestamp resolution

Sequence = tuple[Hashable, int]
Row = dict[str, Any]


def now_ticks() -> int:
    return time.time_ns() // 100


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class IsoFormatter:
    """100 ns ticks -> ``2026-01-01T12:00:00.1234567Z``; caches the date part of the current second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ticks: int) -> str:
        second, frac = divmod(ticks, TICKS_PER_S)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if frac:
            return f"{self._prefix}.{frac:07d}".rstrip("0") + "Z"
        return self._prefix + "Z"

    def seconds(self, second: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


_date_cache: dict[str, int] = {}


def parse_iso_ticks(value: str) -> int:
    """Inverse of :class:`IsoFormatter` (UTC ``Z`` only; any number of fractional digits, truncated to 7)."""
    if not value.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {value!r}")
    head, _, frac = value[:-1].partition(".")
    second = _date_cache.get(head)
    if second is None:
        import calendar

        second = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        if len(_date_cache) > 4096:
            _date_cache.clear()
        _date_cache[head] = second
    return second * TICKS_PER_S + (int(frac[:7].ljust(7, "0")) if frac else 0)


@dataclass(frozen=True)
class FeedClock:
    """Schedule of one feed: event ``i >= base_index`` is due at ``base_ticks + (i - base_index) / rate``."""

    rate: float
    base_ticks: int
    base_index: int = 0

    def index_at(self, ticks: int) -> int:
        """Highest index due at or before ``ticks`` (``base_index - 1`` when none is, or when paused)."""
        if self.rate <= 0 or ticks < self.base_ticks:
            return self.base_index - 1
        j = self.base_index + math.floor((ticks - self.base_ticks) * self.rate / TICKS_PER_S)
        # Float rounding can land one off; settle it against ticks_of so the two always agree.
        while self.ticks_of(j + 1) <= ticks:
            j += 1
        while j >= self.base_index and self.ticks_of(j) > ticks:
            j -= 1
        return j

    def ticks_of(self, index: int) -> int:
        if self.rate <= 0:
            raise ValueError("feed is paused")
        return self.base_ticks + int((index - self.base_index) * TICKS_PER_S / self.rate)

    def index_of(self, ticks: int) -> int:
        """Inverse of ``ticks_of`` (exact while 1/rate is well above 100 ns)."""
        return self.base_index + round((ticks - self.base_ticks) * self.rate / TICKS_PER_S)

    def retimed(self, rate: float, now: int) -> FeedClock:
        """Same feed at a new rate: indexes continue, the next one is due right after ``now``."""
        return FeedClock(rate=rate, base_ticks=now + 1, base_index=self.index_at(now) + 1)

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "base_ticks": self.base_ticks, "base_index": self.base_index}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeedClock:
        return cls(rate=float(raw["rate"]), base_ticks=int(raw["base_ticks"]), base_index=int(raw["base_index"]))


@dataclass(frozen=True)
class Rendered:
    """Items (payload JSON texts) rendered for a range of feed indexes, and the indexes of the first and last."""

    first: int
    last: int
    items: list[str]


NOTHING = Rendered(-1, -1, [])


class Cursor(Protocol):
    """Incremental renderer of one stream's items for a range of feed indexes."""

    def render(self, start: int, stop: int, clock: FeedClock) -> Rendered:
        """Items for feed indexes ``start <= i < stop`` that pass the stream's filter, in index order."""
        ...


# --------------------------------------------------------------------------- ticks


class TickFeed:
    """``{symbol, bid, ask, lastTime}`` round-robin over the symbols: feed index ``i = k * N_SYMBOLS + s``."""

    name = TICKS

    def __init__(self, seed: int) -> None:
        self._keys = [stream_key(seed, f"rt.tick.{s.name}") for s in SYMBOLS]
        self._point = [s.point for s in SYMBOLS]
        self._templates = ['{"symbol":' + dumps(s.name) + ',"bid":%r,"ask":%r,"lastTime":"%s"}' for s in SYMBOLS]
        # Legacy v1 hub tick (docs' ``class Tick {Symbol, Bid, Ask}``): no time field.
        self._legacy_templates = ['{"Symbol":' + dumps(s.name) + ',"Bid":%r,"Ask":%r}' for s in SYMBOLS]

    def step(self, s: int, k: int) -> int:
        return rand64(self._keys[s], k) % 7 - 3

    def level(self, s: int, k: int) -> int:
        return sum(self.step(s, m) for m in range(k - WINDOW + 1, k + 1))

    @staticmethod
    def quote(s: int, level: int) -> tuple[float, float]:
        sym = SYMBOLS[s]
        bid = round(sym.base_price * (1 + level * 2.5e-5), sym.digits)
        return bid, round(bid + sym.spread * sym.point, sym.digits)

    def item(self, clock: FeedClock, i: int) -> Row:
        """Random access (O(WINDOW)); the streaming cursor produces the same JSON incrementally."""
        s, k = i % N_SYMBOLS, i // N_SYMBOLS
        bid, ask = self.quote(s, self.level(s, k))
        return {"symbol": SYMBOLS[s].name, "bid": bid, "ask": ask, "lastTime": IsoFormatter()(clock.ticks_of(i))}

    def cursor(self, only: set[int] | frozenset[int] | None = None, legacy: bool = False) -> TickCursor:
        """``only``: symbol indexes to emit (None = all). A live ``set`` may change while streaming (OnTick).

        ``legacy``: render the v1 hub's ``{Symbol, Bid, Ask}`` instead of the v2 item."""
        return TickCursor(self, only, legacy)

    @staticmethod
    def sequence_of(clock: FeedClock, payload: Row) -> Sequence:
        """``(symbol, per-symbol index)``: the symbol is the partition, so filtered streams count gaps right."""
        i = clock.index_of(parse_iso_ticks(payload["lastTime"]))
        return payload["symbol"], i // N_SYMBOLS


class TickCursor:
    def __init__(self, feed: TickFeed, only: set[int] | frozenset[int] | None, legacy: bool = False) -> None:
        self._feed = feed
        self._only = only
        self._legacy = legacy
        self._state: dict[int, tuple[int, int]] = {}  # symbol -> (k, level at k)
        self._iso = IsoFormatter()

    def _level(self, s: int, k: int) -> int:
        state = self._state.get(s)
        if state is not None and state[0] == k - 1:
            step = self._feed.step
            level = state[1] + step(s, k) - step(s, k - WINDOW)
        elif state is not None and state[0] == k:
            level = state[1]
        else:
            level = self._feed.level(s, k)
        self._state[s] = (k, level)
        return level

    def render(self, start: int, stop: int, clock: FeedClock) -> Rendered:
        out: list[str] = []
        first = last = -1
        only = self._only
        templates = self._feed._templates
        legacy = self._feed._legacy_templates if self._legacy else None
        quote = self._feed.quote
        ticks_of = clock.ticks_of
        iso = self._iso
        for i in range(start, stop):
            s = i % N_SYMBOLS
            if only is not None and s not in only:
                continue
            bid, ask = quote(s, self._level(s, i // N_SYMBOLS))
            if legacy is None:
                out.append(templates[s] % (bid, ask, iso(ticks_of(i))))
            else:
                out.append(legacy[s] % (bid, ask))
            if first < 0:
                first = i
            last = i
        return Rendered(first, last, out) if out else NOTHING


# --------------------------------------------------------------------------- row feeds


class _RowCursor:
    def __init__(self, build: Callable[[FeedClock, int], Row]) -> None:
        self._build = build

    def render(self, start: int, stop: int, clock: FeedClock) -> Rendered:
        if stop <= start:
            return NOTHING
        return Rendered(start, stop - 1, [dumps(self._build(clock, i)) for i in range(start, stop)])


class MarginCallFeed:
    """``StreamMarginCallUpdates`` items derived from the MT4 accounts that hold open trades.

    Index ``i`` re-evaluates account ``owner(i % n)`` (``n`` accounts with open trades, each once per round)
    with a hashed equity swing, so level types go through Ok / MarginCall / StopOut. Enums are ints, as on the hub.
    """

    name = MARGIN_CALLS
    _LEVEL_TYPES = {"Ok": 0, "MarginCall": 1, "StopOut": 2}

    def __init__(self, dataset: Dataset) -> None:
        self.ds = dataset
        self._key = stream_key(dataset.config.seed, "rt.margin")
        self.accounts = min(dataset.mt4_open_count, dataset.mt4_user_count)
        self._iso = IsoFormatter()

    def item(self, clock: FeedClock, i: int) -> Row:
        ds = self.ds
        x = i % self.accounts
        u = ds.mt4_trade_owner(x)
        base = ds.mt4_margin_level(u)
        group = ds.mt4_user_group(u)
        h = rand64(self._key, i)
        balance = base["balance"] if base else ds.mt4_user_balance_cents(u) / 100
        margin = base["margin"] if base else 0.0
        volume = base["volume"] if base else 0
        # Equity swings between 5% and 205% of the used margin above/below balance.
        equity = round(balance + margin * (((h % 4001) - 2000) / 1000) - margin * 0.05, 2) if margin else balance
        level = round(equity / margin * 100, 2) if margin else 0.0
        if margin and level <= group.margin_stopout:
            level_type = 2
        elif margin and level <= group.margin_call:
            level_type = 1
        else:
            level_type = 0
        return {
            "login": MT4_LOGIN_BASE + u,
            "group": group.name,
            "leverage": ds.mt4_user_leverage(u),
            "updated": clock.ticks_of(i) // TICKS_PER_S,
            "balance": balance,
            "equity": equity,
            "volumeLots": volume / 100,
            "margin": margin,
            "free": round(equity - margin, 2),
            "level": level,
            "controllingType": 0,
            "levelType": level_type,
        }

    def cursor(self) -> _RowCursor | None:
        return _RowCursor(self.item) if self.accounts else None

    def sequence_of(self, clock: FeedClock, payload: Row) -> Sequence | None:
        """Index from the account's rotation slot and ``updated``; None when that second is ambiguous."""
        n = self.accounts
        u = self.ds.mt4_user_index(int(payload["login"]))
        if not n or u is None:
            return None
        x = self.ds.mt4_user_trade_slot(u)
        if x >= n:
            return None
        second = int(payload["updated"])
        first = clock.index_at(second * TICKS_PER_S - 1) + 1
        last = clock.index_at((second + 1) * TICKS_PER_S - 1)
        r0 = max((first - x + n - 1) // n, 0)
        matches = [r * n + x for r in range(r0, r0 + 2) if first <= r * n + x <= last]
        return ("", matches[0]) if len(matches) == 1 else None


class TradeFeed:
    """``StreamTrades`` items: ticket ``m`` is Added, Updated (SL/TP set), then Deleted (closed) at ``3m, 3m+1, 3m+2``.

    Tickets continue after the REST history (``MT4_TICKET_BASE + closed + open``) so they never clash with it.
    """

    name = TRADES
    KINDS = ("Added", "Updated", "Deleted")

    def __init__(self, dataset: Dataset) -> None:
        self.ds = dataset
        self._key = stream_key(dataset.config.seed, "rt.trade")
        self.ticket_base = MT4_TICKET_BASE + dataset.mt4_closed_count + dataset.mt4_open_count
        self._iso = IsoFormatter()

    def item(self, clock: FeedClock, i: int) -> Row:
        ds = self.ds
        m, phase = divmod(i, 3)
        h = rand64(self._key, m)
        s = SYMBOLS[h % N_SYMBOLS]
        cmd = (h >> 8) & 1  # 0 Buy, 1 Sell (TradeCommand order)
        volume = 1 + (h >> 16) % 500
        open_price = round(s.base_price * (1 + (((h >> 28) % 2001) - 1000) * 5e-5), s.digits)
        move = (((h >> 40) % 401) - 200) * 1e-4
        current = round(open_price * (1 + move * (phase + 1) / 3), s.digits)
        lots = volume / 100
        diff = (current - open_price) if cmd == 0 else (open_price - current)
        profit = round(diff * s.contract_size * lots * s.usd_per_unit(current), 2)
        sl = tp = 0.0
        if phase >= 1:
            sl = round(open_price * (0.99 if cmd == 0 else 1.01), s.digits)
            tp = round(open_price * (1.02 if cmd == 0 else 0.98), s.digits)
        second = clock.ticks_of(3 * m) // TICKS_PER_S
        close_time = ZERO_TIME
        if phase == 2:
            close_time = self._iso.seconds(clock.ticks_of(i) // TICKS_PER_S)
        return {
            "kind": self.KINDS[phase],
            "order": self.ticket_base + m,
            "login": MT4_LOGIN_BASE + (ds.mt4_trade_owner(m) if ds.mt4_user_count else 0),
            "symbol": s.name,
            "cmd": cmd,
            "volumeLots": lots,
            "openPrice": open_price,
            "openTime": self._iso.seconds(second),
            "sl": sl,
            "tp": tp,
            "closePrice": current,
            "closeTime": close_time,
            "commission": -volume * 7 / 100,
            "storage": 0.0,
            "profit": profit,
            "taxes": 0.0,
            "comment": "",
        }

    def cursor(self) -> _RowCursor:
        return _RowCursor(self.item)

    def sequence_of(self, clock: FeedClock, payload: Row) -> Sequence:
        return "", 3 * (int(payload["order"]) - self.ticket_base) + self.KINDS.index(payload["kind"])


class UserUpdateFeed:
    """``StreamUserUpdates`` items: account ``i % users`` comes online (``lastDate`` = event time); slim payload."""

    name = USERS

    def __init__(self, dataset: Dataset) -> None:
        self.ds = dataset
        self._iso = IsoFormatter()

    def item(self, clock: FeedClock, i: int) -> Row:
        user = self.ds.mt4_user(i % self.ds.mt4_user_count)
        return {
            "kind": "Updated",
            "login": user["login"],
            "group": user["group"],
            "name": user["name"],
            "country": user["country"],
            "leverage": user["leverage"],
            "balance": user["balance"],
            "credit": user["credit"],
            "enabled": bool(user["enableFlags"] & 1),
            "readOnly": False,
            "regDate": user["registrationDate"],
            "lastDate": self._iso(clock.ticks_of(i)),
            "email": user["email"],
            "phone": user["phone"],
            "comment": user["comment"],
        }

    def cursor(self) -> _RowCursor | None:
        return _RowCursor(self.item) if self.ds.mt4_user_count else None

    @staticmethod
    def sequence_of(clock: FeedClock, payload: Row) -> Sequence:
        return "", clock.index_of(parse_iso_ticks(payload["lastDate"]))


class SymbolUpdateFeed:
    """``StreamSymbolUpdates`` items: symbol ``i % N`` gets a new spread. No time field, hence no sequence."""

    name = SYMBOL_UPDATES

    def __init__(self, seed: int) -> None:
        self._key = stream_key(seed, "rt.symbol")

    def item(self, clock: FeedClock, i: int) -> Row:
        s = SYMBOLS[i % N_SYMBOLS]
        h = rand64(self._key, i)
        return {
            "kind": "Updated",
            "symbol": s.name,
            "description": s.description,
            "currency": s.base_ccy,
            "digits": s.digits,
            "tradeMode": 2,  # TradeMode.Full
            "spread": s.spread + h % 5,
            "stopsLevel": 10,
            "freezeLevel": 0,
            "contractSize": float(s.contract_size),
            "tickValue": 0.0,
            "tickSize": s.point,
            "marginInitial": 0.0,
            "marginMaintenance": 0.0,
        }

    def cursor(self) -> _RowCursor:
        return _RowCursor(self.item)


class Mt5MarginCallFeed:
    """MT5 ``StreamMarginCallUpdates`` items ``{login, type, direction}`` (no time or counter: no sequence)."""

    name = MT5_MARGIN_CALLS
    # Names are unverified (the SDK types them as plain strings).
    TYPES = ("MarginCall", "StopOut")
    DIRECTIONS = ("Enter", "Leave")

    def __init__(self, dataset: Dataset) -> None:
        self.ds = dataset
        self._key = stream_key(dataset.config.seed, "rt.mt5.margin")

    def item(self, clock: FeedClock, i: int) -> Row:
        h = rand64(self._key, i)
        return {
            "login": MT5_LOGIN_BASE + h % self.ds.mt5_user_count,
            "type": self.TYPES[(h >> 20) & 1],
            "direction": self.DIRECTIONS[(h >> 21) & 1],
        }

    def cursor(self) -> _RowCursor | None:
        return _RowCursor(self.item) if self.ds.mt5_user_count else None


class ServerTimeFeed:
    """Test hub: the scheduled server time as an ISO string, once per event (default 1/s)."""

    name = SERVER_TIME

    def __init__(self) -> None:
        self._iso = IsoFormatter()

    def item(self, clock: FeedClock, i: int) -> str:
        return self._iso(clock.ticks_of(i))

    def cursor(self) -> _RowCursor:
        return _RowCursor(self.item)  # type: ignore[arg-type]


@dataclass
class Feeds:
    """All feeds of one emulator app plus their clocks (mutable: the control API changes rates)."""

    ticks: TickFeed
    margin_calls: MarginCallFeed
    trades: TradeFeed
    users: UserUpdateFeed
    symbols: SymbolUpdateFeed
    mt5_margin_calls: Mt5MarginCallFeed
    server_time: ServerTimeFeed
    clocks: dict[str, FeedClock]

    @classmethod
    def create(cls, dataset: Dataset, rates: dict[str, float] | None = None, start: int | None = None) -> Feeds:
        seed = dataset.config.seed
        start = now_ticks() if start is None else start
        merged = {**DEFAULT_RATES, **(rates or {})}
        return cls(
            ticks=TickFeed(seed),
            margin_calls=MarginCallFeed(dataset),
            trades=TradeFeed(dataset),
            users=UserUpdateFeed(dataset),
            symbols=SymbolUpdateFeed(seed),
            mt5_margin_calls=Mt5MarginCallFeed(dataset),
            server_time=ServerTimeFeed(),
            clocks={name: FeedClock(rate=rate, base_ticks=start) for name, rate in merged.items()},
        )

    def set_rate(self, name: str, rate: float, now: int | None = None) -> FeedClock:
        if name not in self.clocks:
            raise ValueError(f"unknown feed {name!r}; known: {sorted(self.clocks)}")
        if not 0 <= rate <= MAX_RATE or math.isnan(rate):
            raise ValueError(f"rate of {name!r} must be within 0..{MAX_RATE:g} events/s")
        clock = self.clocks[name].retimed(rate, now_ticks() if now is None else now)
        self.clocks[name] = clock
        return clock

    def sequence_of(self, name: str, payload: Row, clock: FeedClock | None = None) -> Sequence | None:
        """The ``(partition, index)`` the emulator encoded in ``payload`` of feed ``name`` (None if it has none)."""
        clock = clock or self.clocks[name]
        if name == TICKS:
            return self.ticks.sequence_of(clock, payload)
        if name == MARGIN_CALLS:
            return self.margin_calls.sequence_of(clock, payload)
        if name == TRADES:
            return self.trades.sequence_of(clock, payload)
        if name == USERS:
            return self.users.sequence_of(clock, payload)
        return None


def sequencer(name: str, clock: FeedClock, dataset: Dataset) -> Callable[[Any], Sequence | None] | None:
    """Client-side ``sequence`` function for feed ``name``; ``clock`` from ``GET /_emulator/hub-config``."""
    if name == TICKS:
        return lambda p: TickFeed.sequence_of(clock, p)
    if name == TRADES:
        trades = TradeFeed(dataset)
        return lambda p: trades.sequence_of(clock, p)
    if name == USERS:
        return lambda p: UserUpdateFeed.sequence_of(clock, p)
    if name == MARGIN_CALLS:
        margins = MarginCallFeed(dataset)
        return lambda p: margins.sequence_of(clock, p)
    return None


# Hub streams of the sampler (platform type, method) -> the feed they follow.
_SAMPLED_FEEDS = {
    ("MT4", "StreamTicks"): TICKS,
    ("MT4", "StreamTrades"): TRADES,
    ("MT4", "StreamUserUpdates"): USERS,
    ("MT4", "StreamMarginCallUpdates"): MARGIN_CALLS,
}


def sample_sequences(
    api_base_url: str, platform_type: str, method: str, args: list[Any]
) -> Callable[[Any], Sequence | None] | None:
    """Sequence function of one sampled stream against the emulator (``HubSampleOperator(sequences=
    "airflow_provider_cplugin.emulator.hubs.feeds:sample_sequences")``): reads the feed clocks and the data set
    from ``GET /_emulator/hub-config`` (blocking: the sampler calls it in a thread). Valid while the feed's rate
    is not changed afterwards (a new rate re-bases its clock)."""
    import urllib.request

    feed = _SAMPLED_FEEDS.get((platform_type.upper(), method))
    if feed is None:
        return None
    with urllib.request.urlopen(api_base_url.rstrip("/") + "/_emulator/hub-config", timeout=30) as resp:
        config = json.loads(resp.read())
    clock = FeedClock.from_dict(config["feeds"][feed])
    return sequencer(feed, clock, Dataset(EmulatorConfig(**config["dataset"])))
