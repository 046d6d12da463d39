"""Deterministic, lazily generated data set of the emulated MT4 and MT5 servers.

Every record is a pure function of ``(config, entity, index)``: a hash-based PRNG (splitmix64) gives the random
bits, so nothing is materialised up front and 1M users / 5M trades cost no memory until a page is read. Tests build
the same :class:`Dataset` from the same :class:`EmulatorConfig` to compute exactly what the emulator served.

Layout (``U`` = users, everything sorted by its key):

* MT4 user ``i`` has login ``MT4_LOGIN_BASE + i``.
* Closed MT4 trade ``i`` (``0 <= i < U * trades_per_user``) has ticket ``TICKET_BASE + i`` and closes at
  ``history_start + i * history_span // n_closed`` - close times are monotonic in ``i``, so ``[from, to)`` maps to an
  index range found by bisection. Its owner is ``owner(i % U)`` (an affine permutation), so the trades of one login
  are ``i = x, x + U, x + 2U, ...`` with ``x = owner⁻¹(user)`` and can be listed without a scan.
* Open MT4 trade ``j`` has ticket ``TICKET_BASE + n_closed + j`` (newer than all closed ones), opens at
  ``open_start + j * open_span // n_open`` (so ``timeStamp`` is monotonic too) and is owned by ``owner(j % U)``.
* MT5 works the same way with positions, orders and deals.
"""

from __future__ import annotations

import calendar
import math
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.quirks import DOTNET_MIN_DATE, NAIVE_DATETIMES

Row = dict[str, Any]

MT4_LOGIN_BASE = 10_000
MT5_LOGIN_BASE = 500_000
MT4_TICKET_BASE = 1_000_000
MT5_POSITION_BASE = 2_000_000
MT5_ORDER_BASE = 30_000_000
MT5_DEAL_BASE = 50_000_000
MANAGER_LOGIN = 1

# Value MT4 reports for an unset time (e.g. closeTime of an open trade, expiration of a market order).
ZERO_TIME = "1970-01-01T00:00:00Z"
# .NET's DateTime.MinValue as a .NET service writes an unset time (the ``dotnet_min_date`` quirk).
DOTNET_MIN_TIME = "0001-01-01T00:00:00"

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-distributed 64-bit hash."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stream_key(seed: int, entity: str) -> int:
    """Per-(seed, entity) key; ``mix64(key + index * GOLDEN)`` is then the random word of one record."""
    h = seed & _M64
    for ch in entity.encode():
        h = mix64(h ^ ch)
    return h


def rand64(key: int, index: int) -> int:
    return mix64((key + index * _GOLDEN) & _M64)


def iso(ts: int) -> str:
    """Unix seconds -> ISO-8601 UTC with ``Z`` (second precision, like MT4/MT5 times)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def wire_instant(text: str) -> datetime | None:
    """What a served REST datetime means, whatever quirk spelt it: the UTC instant (no offset = UTC, as the reference
    says), ``None`` for .NET's ``DateTime.MinValue`` (an unset time). Tests compare landed values with this."""
    if text == DOTNET_MIN_TIME:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def msc(ts: int, ms: int) -> str:
    """MT5 ``*Msc`` fields: milliseconds since epoch, typed as a string on the wire."""
    return str(ts * 1000 + ms)


# --------------------------------------------------------------------------- reference tables


@dataclass(frozen=True)
class Symbol:
    name: str
    description: str
    sec_group: str
    digits: int
    base_price: float
    contract_size: int
    base_ccy: str
    quote_ccy: str
    spread: int  # points

    @property
    def point(self) -> float:
        return 10.0**-self.digits

    def price_near(self, h: int, steps: int) -> float:
        """A price within ``±steps * 0.005 %`` of the base price, picked by bits 16.. of ``h``."""
        return round(self.base_price * (1 + (((h >> 16) % (2 * steps + 1)) - steps) * 5e-5), self.digits)

    def usd_per_unit(self, price: float) -> float:
        """USD value of a one-unit price move per unit of base, so profit = diff * size * this."""
        return 1.0 if self.quote_ccy == "USD" else 1.0 / price

    def profit_usd(self, diff: float, lots: float, price: float) -> float:
        """P&L in USD (all groups are USD) of a ``diff`` price move on ``lots`` at ``price``."""
        return round(diff * self.contract_size * lots * self.usd_per_unit(price), 2)

    def margin_rate(self, price: float) -> float:
        return 1.0 if self.quote_ccy == "USD" else round(1 / price, 5)


SYMBOLS: tuple[Symbol, ...] = (
    Symbol("EURUSD", "Euro vs US Dollar", "Forex", 5, 1.08500, 100_000, "EUR", "USD", 12),
    Symbol("GBPUSD", "Great Britain Pound vs US Dollar", "Forex", 5, 1.27000, 100_000, "GBP", "USD", 15),
    Symbol("USDJPY", "US Dollar vs Japanese Yen", "Forex", 3, 151.200, 100_000, "USD", "JPY", 14),
    Symbol("USDCHF", "US Dollar vs Swiss Franc", "Forex", 5, 0.90500, 100_000, "USD", "CHF", 16),
    Symbol("AUDUSD", "Australian Dollar vs US Dollar", "Forex", 5, 0.66000, 100_000, "AUD", "USD", 13),
    Symbol("USDCAD", "US Dollar vs Canadian Dollar", "Forex", 5, 1.36000, 100_000, "USD", "CAD", 17),
    Symbol("XAUUSD", "Gold vs US Dollar", "Metals", 2, 2350.00, 100, "XAU", "USD", 35),
    Symbol("XAGUSD", "Silver vs US Dollar", "Metals", 3, 28.500, 5_000, "XAG", "USD", 30),
)
SYMBOL_BY_NAME: dict[str, Symbol] = {s.name: s for s in SYMBOLS}
SYMBOL_GROUPS: tuple[tuple[str, str], ...] = (("Forex", "Major currency pairs"), ("Metals", "Spot metals"))


@dataclass(frozen=True)
class Group:
    name: str
    currency: str
    default_leverage: int
    margin_call: int
    margin_stopout: int
    company: str


MT4_GROUPS: tuple[Group, ...] = (
    Group("real-std", "USD", 100, 100, 50, "CPlugin Emulator Ltd"),
    Group("real-pro", "USD", 200, 100, 50, "CPlugin Emulator Ltd"),
    Group("real-ecn", "USD", 100, 80, 30, "CPlugin Emulator Ltd"),
    Group("demo-std", "USD", 500, 100, 50, "CPlugin Emulator Demo"),
)
MT4_GROUP_BY_NAME: dict[str, Group] = {g.name: g for g in MT4_GROUPS}
MT5_GROUPS: tuple[Group, ...] = (
    Group("real\\standard", "USD", 100, 100, 50, "CPlugin Emulator Ltd"),
    Group("real\\pro", "USD", 200, 100, 50, "CPlugin Emulator Ltd"),
    Group("demo\\standard", "USD", 500, 100, 50, "CPlugin Emulator Demo"),
    Group("demo\\pro", "USD", 100, 80, 30, "CPlugin Emulator Demo"),
)
MT5_GROUP_BY_NAME: dict[str, Group] = {g.name: g for g in MT5_GROUPS}

_LEVERAGES = (50, 100, 200, 500)
_FIRST = (
    "James", "Mary", "John", "Linda", "Robert", "Anna", "Michael", "Elena", "David", "Sofia", "Peter", "Olga",
    "Thomas", "Marta", "Daniel", "Laura", "Paul", "Nina", "Mark", "Eva", "Lucas", "Irina", "Adam", "Julia",
    "Ivan", "Clara", "Hugo", "Alice", "Omar", "Sara", "Leo", "Mia",
)  # fmt: skip
_LAST = (
    "Smith", "Brown", "Novak", "Muller", "Rossi", "Garcia", "Petrov", "Kowalski", "Dubois", "Jensen", "Silva",
    "Tanaka", "Nguyen", "Kim", "Weber", "Fischer", "Lopez", "Ivanov", "Horvat", "Costa", "Meyer", "Wagner",
    "Moreau", "Ricci", "Santos", "Olsen", "Berg", "Klein", "Wolf", "Stone", "Hill", "Ward",
)  # fmt: skip
# (country, city, state, zip prefix, phone prefix)
_PLACES = (
    ("United Kingdom", "London", "", "EC1A", "+44"), ("Germany", "Berlin", "BE", "101", "+49"),
    ("Cyprus", "Limassol", "", "30", "+357"), ("France", "Paris", "IDF", "750", "+33"),
    ("Spain", "Madrid", "MD", "280", "+34"), ("Italy", "Milan", "MI", "201", "+39"),
    ("Poland", "Warsaw", "MZ", "00-", "+48"), ("Japan", "Tokyo", "13", "100-", "+81"),
    ("Australia", "Sydney", "NSW", "20", "+61"), ("Canada", "Toronto", "ON", "M5", "+1"),
    ("Brazil", "Sao Paulo", "SP", "010", "+55"), ("Thailand", "Bangkok", "", "10", "+66"),
    ("United Arab Emirates", "Dubai", "DU", "", "+971"), ("Czechia", "Prague", "", "110", "+420"),
    ("Sweden", "Stockholm", "AB", "111", "+46"), ("Mexico", "Mexico City", "CMX", "06", "+52"),
)  # fmt: skip
_STREETS = ("Main St", "High St", "Park Ave", "Market Sq", "River Rd", "Station Rd", "Church Ln", "Mill Rd")
_LEAD_SOURCES = ("", "website", "ib-partner", "seminar", "referral", "google-ads", "", "")
_STATUS = ("RE", "RE", "RE", "NR")  # MT4 client status codes: REgistered / Not Registered
_REASONS4 = ("Client", "Client", "Client", "Expert", "Mobile", "Web", "Dealer", "API")
_REASONS5_DEAL = ("Client", "Client", "Expert", "Mobile", "Web", "Dealer", "Sl", "Tp")
_REASONS5_POS = ("Client", "Client", "Expert", "Mobile", "Web", "Dealer", "Client", "Expert")
_PENDING_CMDS = ("BuyLimit", "SellLimit", "BuyStop", "SellStop")
_MT5_ORDER_TYPES = ("BuyLimit", "SellLimit", "BuyStop", "SellStop")
_COMMENTS = ("", "", "", "", "expert", "scalper v2", "hedge", "")

DAY = 86_400

# MT5 symbol sessions per weekday (Sunday first), (open, close) in minutes from midnight.
_WEEKDAYS_24H = ((0, 1440),)
_MT5_FOREX_WEEK: tuple[tuple[tuple[int, int], ...], ...] = ((), *[_WEEKDAYS_24H] * 4, ((0, 1435),), ())
_MT5_METALS_WEEK: tuple[tuple[tuple[int, int], ...], ...] = ((), *[((60, 1380),)] * 4, ((60, 1315),), ())
_MT5_MARGIN_RATE_KINDS = (
    "Buy", "Sell", "BuyLimit", "SellLimit", "BuyStop", "SellStop", "BuyStopLimit", "SellStopLimit",
)  # fmt: skip


def _mt5_session(open_: int, close: int) -> Row:
    """MT5SymbolSession: minutes from midnight and the same as hours + minutes."""
    return {
        "open": open_,
        "openHours": open_ // 60,
        "openMinutes": open_ % 60,
        "close": close,
        "closeHours": close // 60,
        "closeMinutes": close % 60,
    }


def _affine_permutation(n: int) -> tuple[int, int, int]:
    """(a, b, a⁻¹) of the bijection x -> (a*x + b) mod n on [0, n); spreads trade owners over all logins."""
    if n <= 1:
        return 1, 0, 1
    a = max(int(n * 0.6180339887) | 1, 1)
    while math.gcd(a, n) != 1:
        a += 1
    b = n // 3
    return a, b, pow(a, -1, n)


def _balance_cents(h: int) -> int:
    # Skewed towards small accounts: a few whales, many retail balances.
    return ((h >> 20) & 0xFFFFF) * (1 + ((h >> 40) & 7)) // 4


def _credit_cents(g: int) -> int:
    return ((g >> 8) & 0x3FF) * 100 if (g >> 50) & 7 == 0 else 0


def _person(h: int, g: int, login: int) -> tuple[str, str, str, str, str, str, str, str, str]:
    """Contact fields shared by MT4 and MT5 users: first, last, country, city, state, zip, address, phone, email."""
    first = _FIRST[(h >> 2) & 31]
    last = _LAST[(h >> 7) & 31]
    country, city, state, zip_prefix, phone_prefix = _PLACES[(h >> 12) & 15]
    return (
        first,
        last,
        country,
        city,
        state,
        f"{zip_prefix}{(h >> 48) % 1000:03d}",
        f"{(h >> 24) % 200 + 1} {_STREETS[(h >> 33) & 7]}",
        f"{phone_prefix}{g % 1_000_000_000:09d}",
        f"{first.lower()}.{last.lower()}.{login}@example.com",
    )


def _ipv4(h: int) -> int:
    return (h & 0x7FFFFFFF) | 0x01000000


class Dataset:
    """All generators of one emulated environment. Immutable and cheap to build; methods are pure."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        seed = config.seed
        self.anchor = config.anchor
        # ---- MT4
        self.mt4_user_count = config.mt4_users
        self.mt4_closed_count = config.mt4_users * config.trades_per_user if config.mt4_users else 0
        self.mt4_open_count = int(config.mt4_users * config.open_trades_per_user)
        self.history_span = int(config.history_days * DAY)
        self.history_start = self.anchor - self.history_span
        self.open_span = int(config.open_days * DAY)
        self.open_start = self.anchor - self.open_span
        self._k_user4 = stream_key(seed, "mt4.user")
        self._k_closed4 = stream_key(seed, "mt4.trade.closed")
        self._k_open4 = stream_key(seed, "mt4.trade.open")
        self._k_online4 = stream_key(seed, "mt4.online")
        self._k_tick = stream_key(seed, "tick")
        self._perm4 = _affine_permutation(max(config.mt4_users, 1))
        # ---- MT5
        self.mt5_user_count = config.mt5_users
        self.mt5_deal_count = config.mt5_users * config.trades_per_user if config.mt5_users else 0
        self.mt5_position_count = int(config.mt5_users * config.open_trades_per_user)
        self.mt5_order_count = self.mt5_position_count // 5
        self._k_user5 = stream_key(seed, "mt5.user")
        self._k_pos5 = stream_key(seed, "mt5.position")
        self._k_order5 = stream_key(seed, "mt5.order")
        self._k_deal5 = stream_key(seed, "mt5.deal")
        self._perm5 = _affine_permutation(max(config.mt5_users, 1))
        # Current quotes are fixed per seed; realtime hubs move them on their own.
        self._bid = {s.name: self._quote(s) for s in SYMBOLS}
        # How REST datetimes are written (emulator/quirks.py): UTC with Z, or without an offset; unset as 1970 or
        # as .NET's DateTime.MinValue.
        naive = NAIVE_DATETIMES in config.quirks
        self._iso_format = "%Y-%m-%dT%H:%M:%S" if naive else "%Y-%m-%dT%H:%M:%SZ"
        self.zero_time = DOTNET_MIN_TIME if DOTNET_MIN_DATE in config.quirks else self.iso(0)

    def iso(self, ts: int) -> str:
        """Unix seconds -> a REST datetime as this server writes it (:func:`iso` unless a quirk says otherwise)."""
        return time.strftime(self._iso_format, time.gmtime(ts))

    # ------------------------------------------------------------------ owners

    @staticmethod
    def _owner(perm: tuple[int, int, int], n: int, x: int) -> int:
        a, b, _ = perm
        return (a * x + b) % n if n > 1 else 0

    @staticmethod
    def _owner_inverse(perm: tuple[int, int, int], n: int, user_index: int) -> int:
        _, b, a_inv = perm
        return ((user_index - b) * a_inv) % n if n > 1 else 0

    # ------------------------------------------------------------------ quotes

    def _quote(self, s: Symbol) -> float:
        h = rand64(self._k_tick, SYMBOLS.index(s))
        return round(s.base_price * (1 + ((h % 201) - 100) * 1e-4), s.digits)

    def bid(self, symbol: str) -> float:
        return self._bid[symbol]

    def ask(self, symbol: str) -> float:
        s = SYMBOL_BY_NAME[symbol]
        return round(self._bid[symbol] + s.spread * s.point, s.digits)

    def tick_info(self, symbol: str) -> Row:
        """MT4TickInfo."""
        return {"symbol": symbol, "time": self.iso(self.anchor), "bid": self.bid(symbol), "ask": self.ask(symbol)}

    # ------------------------------------------------------------------ MT4 users

    def mt4_login(self, index: int) -> int:
        return MT4_LOGIN_BASE + index

    def mt4_user_index(self, login: int) -> int | None:
        """Index of a login, or None when the login does not exist."""
        i = login - MT4_LOGIN_BASE
        return i if 0 <= i < self.mt4_user_count else None

    def mt4_user_group(self, index: int) -> Group:
        return MT4_GROUPS[rand64(self._k_user4, index) & 3]

    def mt4_user_leverage(self, index: int) -> int:
        return _LEVERAGES[(rand64(self._k_user4, index) >> 18) & 3]

    def mt4_user_balance_cents(self, index: int) -> int:
        return _balance_cents(rand64(self._k_user4, index))

    def mt4_user_last_date(self, index: int) -> int:
        """Last activity time, also the 'modified' time used by UsersSyncStart."""
        return self._user_dates(mix64(rand64(self._k_user4, index) ^ _GOLDEN))[1]

    def _user_dates(self, g: int) -> tuple[int, int]:
        """(registration, last activity): registered in the 3 years before the history window, active since."""
        reg = self.history_start - 3 * 365 * DAY + (g % (3 * 365 * DAY))
        return reg, reg + ((g >> 32) % max(self.anchor - reg, 1))

    def mt4_user(self, index: int) -> Row:
        """MT4User of user ``index`` (login ``MT4_LOGIN_BASE + index``)."""
        h = rand64(self._k_user4, index)
        g = mix64(h ^ _GOLDEN)
        login = MT4_LOGIN_BASE + index
        first, last, country, city, state, zip_code, address, phone, email = _person(h, g, login)
        reg, last_date = self._user_dates(g)
        balance = _balance_cents(h)
        credit = _credit_cents(g)
        drift = ((g >> 18) & 0x3FFF) - 0x2000
        enabled = 0 if (h >> 44) & 63 == 0 else 1
        return {
            "login": login,
            "group": MT4_GROUPS[h & 3].name,
            "name": f"{first} {last}",
            "registrationDate": self.iso(reg),
            "lastDate": self.iso(last_date),
            "externalId": f"CRM-{login}" if h >> 63 else "",
            "status": _STATUS[(h >> 46) & 3],
            "country": country,
            "city": city,
            "state": state,
            "zipCode": zip_code,
            "address": address,
            "leadSource": _LEAD_SOURCES[(h >> 36) & 7],
            "phone": phone,
            "email": email,
            "comment": "",
            "leverage": _LEVERAGES[(h >> 18) & 3],
            "agentAccount": 0,
            "lastIP": _ipv4(g),
            "balance": balance / 100,
            "credit": credit / 100,
            "prevMonthBalance": max(balance - drift * 3, 0) / 100,
            "prevBalance": max(balance - drift, 0) / 100,
            "prevMonthEquity": max(balance + credit - drift * 2, 0) / 100,
            "prevEquity": max(balance + credit + drift // 2, 0) / 100,
            "interestRate": 0.0,
            "taxes": 0.0,
            # 0x01 enabled, 0x02 may change password; disabled accounts keep only the password bit.
            "enableFlags": (enabled | 2),
            "sendReports": 1,
            "mqid": 0,
            "userColor": 4278190080,
        }

    def mt4_users(self, start: int, stop: int) -> Iterator[Row]:
        build = self.mt4_user
        for i in range(max(start, 0), min(stop, self.mt4_user_count)):
            yield build(i)

    def mt4_online_logins(self, start: int = 0) -> Iterator[int]:
        """Logins of online users with index >= start, ascending."""
        key, pct = self._k_online4, self.config.online_percent
        for i in range(max(start, 0), self.mt4_user_count):
            if rand64(key, i) % 100 < pct:
                yield MT4_LOGIN_BASE + i

    def mt4_users_modified_since(self, since: int, start: int = 0) -> Iterator[int]:
        """Indexes (>= start) of users whose lastDate is at/after ``since``: the UsersSyncStart delta."""
        for i in range(max(start, 0), self.mt4_user_count):
            if self.mt4_user_last_date(i) >= since:
                yield i

    def mt4_is_online(self, index: int) -> bool:
        return rand64(self._k_online4, index) % 100 < self.config.online_percent

    def mt4_online(self, index: int) -> Row:
        """MT4Online."""
        return {"login": MT4_LOGIN_BASE + index, "group": self.mt4_user_group(index).name}

    # ------------------------------------------------------------------ MT4 trades

    def mt4_closed_time(self, i: int) -> int:
        """Close time of closed trade ``i``: monotonic in ``i`` so time ranges map to index ranges."""
        return self.history_start + i * self.history_span // self.mt4_closed_count

    def mt4_closed_index_at(self, ts: int) -> int:
        """First closed-trade index whose close time is ``>= ts`` (``mt4_closed_count`` if none)."""
        return bisect_left(range(self.mt4_closed_count), ts, key=self.mt4_closed_time)

    def mt4_open_time(self, j: int) -> int:
        return self.open_start + j * self.open_span // max(self.mt4_open_count, 1)

    def mt4_open_index_at(self, ts: int) -> int:
        """First open-trade index whose open time (= timeStamp) is ``>= ts``."""
        return bisect_left(range(self.mt4_open_count), ts, key=self.mt4_open_time)

    def mt4_trade_owner(self, i: int) -> int:
        """User index owning closed trade ``i`` or open trade ``i`` (same owner function for both)."""
        return self._owner(self._perm4, self.mt4_user_count, i % self.mt4_user_count)

    def mt4_user_trade_slot(self, user_index: int) -> int:
        """x such that user owns trades x, x+U, x+2U, ... (closed and open alike)."""
        return self._owner_inverse(self._perm4, self.mt4_user_count, user_index)

    @property
    def mt4_open_ticket_base(self) -> int:
        return MT4_TICKET_BASE + self.mt4_closed_count

    def mt4_open_tickets(self, start: int = 0, group: str | None = None) -> Iterator[int]:
        """Tickets of open trades with index >= start, ascending; only owners in ``group`` when given."""
        base = self.mt4_open_ticket_base
        if group is None:
            yield from range(base + max(start, 0), base + self.mt4_open_count)
            return
        for j in range(max(start, 0), self.mt4_open_count):
            if self.mt4_user_group(self.mt4_trade_owner(j)).name == group:
                yield base + j

    def mt4_open_trade_by_ticket(self, ticket: int) -> Row:
        return self.mt4_open_trade(ticket - self.mt4_open_ticket_base)

    def mt4_ticket_kind(self, ticket: int) -> tuple[str, int] | None:
        """('closed'|'open', index) of a ticket, None when it does not exist."""
        k = ticket - MT4_TICKET_BASE
        if 0 <= k < self.mt4_closed_count:
            return "closed", k
        k -= self.mt4_closed_count
        if 0 <= k < self.mt4_open_count:
            return "open", k
        return None

    def mt4_trade_by_ticket(self, ticket: int) -> Row | None:
        kind = self.mt4_ticket_kind(ticket)
        if kind is None:
            return None
        return self.mt4_closed_trade(kind[1]) if kind[0] == "closed" else self.mt4_open_trade(kind[1])

    def mt4_closed_trade(self, i: int) -> Row:
        """MT4Trade of closed trade ``i`` (ticket ``MT4_TICKET_BASE + i``)."""
        h = rand64(self._k_closed4, i)
        g = mix64(h ^ _GOLDEN)
        login = MT4_LOGIN_BASE + self.mt4_trade_owner(i)
        close_time = self.history_start + i * self.history_span // self.mt4_closed_count
        if h % 50 == 0:
            # Deposits / withdrawals are trades too in MT4 (cmd Balance, no symbol, amount in profit).
            amount = ((g & 0xFFFF) - 0x3000) * 10
            return self._mt4_balance_trade(i, login, close_time, amount)
        s = SYMBOLS[(h >> 8) % len(SYMBOLS)]
        buy = bool((h >> 12) & 1)
        volume = 1 + (g >> 40) % 500
        open_price = s.price_near(h, 1000)
        close_price = round(open_price * (1 + (((h >> 28) % 401) - 200) * 1e-4), s.digits)
        diff = (close_price - open_price) if buy else (open_price - close_price)
        lots = volume / 100
        profit = s.profit_usd(diff, lots, close_price)
        open_time = close_time - 60 - (g % (5 * DAY))
        return {
            "order": MT4_TICKET_BASE + i,
            "login": login,
            "symbol": s.name,
            "digits": s.digits,
            "tradeCommand": "Buy" if buy else "Sell",
            "volume": volume,
            "volumeLots": lots,
            "tradeRecordState": "ClosedNormal",
            "openPrice": open_price,
            "sl": 0.0,
            "tp": 0.0,
            "openTime": self.iso(open_time),
            "closeTime": self.iso(close_time),
            "closePrice": close_price,
            "commission": -volume * 7 / 100,
            "commissionAgent": 0.0,
            "storage": -((g >> 20) % 500) / 100 if close_time - open_time > DAY else 0.0,
            "profit": profit,
            "taxes": 0.0,
            "magic": (g >> 30) % 1000 if (h >> 40) & 3 == 0 else 0,
            "comment": _COMMENTS[(h >> 44) & 7],
            "expiration": self.zero_time,
            "tradeRecordReason": _REASONS4[(h >> 48) & 7],
            "activationType": "None",
            "timeStamp": self.iso(close_time),
            "marginRate": s.margin_rate(open_price),
        }

    def _mt4_balance_trade(self, i: int, login: int, close_time: int, amount_cents: int) -> Row:
        t = self.iso(close_time)
        return {
            "order": MT4_TICKET_BASE + i,
            "login": login,
            "symbol": "",
            "digits": 0,
            "tradeCommand": "Balance",
            "volume": 0,
            "volumeLots": 0.0,
            "tradeRecordState": "ClosedNormal",
            "openPrice": 0.0,
            "sl": 0.0,
            "tp": 0.0,
            "openTime": t,
            "closeTime": t,
            "closePrice": 0.0,
            "commission": 0.0,
            "commissionAgent": 0.0,
            "storage": 0.0,
            "profit": amount_cents / 100,
            "taxes": 0.0,
            "magic": 0,
            "comment": "Deposit" if amount_cents >= 0 else "Withdrawal",
            "expiration": self.zero_time,
            "tradeRecordReason": "Dealer",
            "activationType": "None",
            "timeStamp": t,
            "marginRate": 0.0,
        }

    def _mt4_open_parts(self, j: int) -> tuple[int, int, Symbol, str, int, float]:
        """(h, g, symbol, command, volume, open price) of open trade ``j`` - shared by trades and margins."""
        h = rand64(self._k_open4, j)
        g = mix64(h ^ _GOLDEN)
        s = SYMBOLS[(h >> 8) % len(SYMBOLS)]
        cmd = _PENDING_CMDS[(h >> 13) & 3] if h % 10 == 0 else ("Buy" if (h >> 12) & 1 else "Sell")
        # Open positions sit close to the current quote (±1%) and are smaller than history trades, so
        # floating P&L stays plausible against the generated balances.
        volume = 1 + (g >> 40) % 100
        open_price = s.price_near(h, 200)
        return h, g, s, cmd, volume, open_price

    def mt4_open_trade(self, j: int) -> Row:
        """MT4Trade of open trade ``j`` (ticket ``MT4_TICKET_BASE + n_closed + j``); profit is floating."""
        h, g, s, cmd, volume, open_price = self._mt4_open_parts(j)
        open_time = self.open_start + j * self.open_span // max(self.mt4_open_count, 1)
        pending = cmd not in ("Buy", "Sell")
        buy = cmd.startswith("Buy")
        current = self._bid[s.name] if buy else self.ask(s.name)
        lots = volume / 100
        profit = 0.0
        if not pending:
            diff = (current - open_price) if buy else (open_price - current)
            profit = s.profit_usd(diff, lots, current)
        sl = round(open_price * (0.99 if buy else 1.01), s.digits) if (h >> 40) & 1 else 0.0
        tp = round(open_price * (1.02 if buy else 0.98), s.digits) if (h >> 41) & 1 else 0.0
        return {
            "order": MT4_TICKET_BASE + self.mt4_closed_count + j,
            "login": MT4_LOGIN_BASE + self.mt4_trade_owner(j),
            "symbol": s.name,
            "digits": s.digits,
            "tradeCommand": cmd,
            "volume": volume,
            "volumeLots": lots,
            "tradeRecordState": "OpenNormal",
            "openPrice": open_price,
            "sl": sl,
            "tp": tp,
            "openTime": self.iso(open_time),
            "closeTime": self.zero_time,
            "closePrice": current,
            "commission": -volume * 7 / 100 if not pending else 0.0,
            "commissionAgent": 0.0,
            "storage": -((g >> 20) % 300) / 100 if self.anchor - open_time > DAY and not pending else 0.0,
            "profit": profit,
            "taxes": 0.0,
            "magic": (g >> 30) % 1000 if (h >> 42) & 3 == 0 else 0,
            "comment": _COMMENTS[(h >> 44) & 7],
            "expiration": self.iso(open_time + 7 * DAY) if pending else self.zero_time,
            "tradeRecordReason": _REASONS4[(h >> 48) & 7],
            "activationType": "Pending" if pending else "None",
            "timeStamp": self.iso(open_time),
            "marginRate": s.margin_rate(open_price),
        }

    def mt4_open_trade_indexes(self, user_index: int) -> range:
        """Indexes of the open trades of one user (ascending ticket)."""
        if self.mt4_user_count == 0:
            return range(0)
        return range(self.mt4_user_trade_slot(user_index), self.mt4_open_count, self.mt4_user_count)

    def mt4_closed_trade_indexes(self, user_index: int, start: int = 0, stop: int | None = None) -> range:
        """Indexes of the closed trades of one user within the closed-index window ``[start, stop)``."""
        n = self.mt4_user_count
        stop = self.mt4_closed_count if stop is None else min(stop, self.mt4_closed_count)
        if n == 0 or start >= stop:
            return range(0)
        x = self.mt4_user_trade_slot(user_index)
        first = x if start <= x else x + ((start - x + n - 1) // n) * n
        return range(first, stop, n)

    def mt4_margin_level(self, user_index: int) -> Row | None:
        """MT4MarginLevel of a user, None when the user has no open trades (as the pump cache does)."""
        trades = self.mt4_open_trade_indexes(user_index)
        if not trades:
            return None
        margin = 0.0
        floating = 0.0
        volume = 0
        leverage = self.mt4_user_leverage(user_index)
        for j in trades:
            _, _, s, cmd, vol, open_price = self._mt4_open_parts(j)
            if cmd not in ("Buy", "Sell"):
                continue
            buy = cmd == "Buy"
            current = self._bid[s.name] if buy else self.ask(s.name)
            notional_usd = vol / 100 * s.contract_size * (open_price if s.quote_ccy == "USD" else 1.0)
            margin += notional_usd / leverage
            diff = (current - open_price) if buy else (open_price - current)
            floating += s.profit_usd(diff, vol / 100, current)
            volume += vol
        group = self.mt4_user_group(user_index)
        h = rand64(self._k_user4, user_index)
        credit = _credit_cents(mix64(h ^ _GOLDEN))
        balance = _balance_cents(h) / 100
        equity = round(balance + credit / 100 + floating, 2)
        margin = round(margin, 2)
        level = round(equity / margin * 100, 2) if margin else 0.0
        if margin and level <= group.margin_stopout:
            level_type = "StopOut"
        elif margin and level <= group.margin_call:
            level_type = "MarginCall"
        else:
            level_type = "Ok"
        return {
            "login": MT4_LOGIN_BASE + user_index,
            "group": group.name,
            "leverage": leverage,
            "updated": self.anchor,
            "balance": balance,
            "equity": equity,
            "volume": volume,
            "margin": margin,
            "free": round(equity - margin, 2),
            "level": level,
            "controllingType": "Percent",
            "levelType": level_type,
        }

    # ------------------------------------------------------------------ MT4 configuration

    def server_time(self, now: int) -> str:
        """ServerTime at unix second ``now``: UTC with ``Z``, or server-local without offset when so configured."""
        if self.config.server_time_local:
            local = now + self.config.server_tz_offset_hours * 3600
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(local))
        return self.iso(now)

    def mt4_common(self) -> Row:
        """MT4Common."""
        return {
            "name": "CPlugin-Emulator-MT4",
            "owner": "CPlugin Emulator Ltd",
            "build": 1440,
            "version": 4,
            "timeZone": self.config.server_tz_offset_hours,
        }

    def mt4_symbol_config(self, s: Symbol) -> Row:
        """MT4SymbolConfig (the scalar part; no session arrays)."""
        return {
            "symbol": s.name,
            "description": s.description,
            "source": s.name,
            "currency": s.base_ccy,
            "type": 0 if s.sec_group == "Forex" else 1,
            "digits": s.digits,
            "tradeMode": "Full",
            "backgroundColor": 16777215,
            "count": 0,
            "countOriginal": 0,
            "realtime": 1,
            "starting": self.zero_time,
            "expiration": self.zero_time,
            "profitCalculationMode": "Forex" if s.sec_group == "Forex" else "CFD",
            "filter": 0,
            "filterCounter": 0,
            "filterLimit": 0.0,
            "filterSmoothing": 0,
            "logging": 0,
            "spread": s.spread,
            "spreadBalance": 0,
            "symbolExecMode": "Instant",
            "swapEnable": 1,
            "swapType": "Points",
            "swapLong": -5.2,
            "swapShort": 1.1,
            "swapRollover3Days": 3,
            "contractSize": float(s.contract_size),
            "tickValue": 0.0,
            "tickSize": 0.0,
            "stopsLevel": 10,
            "gtcMode": "GTC",
            "marginCalculationMode": "Forex" if s.sec_group == "Forex" else "CFD",
            "marginInitial": 0.0,
            "marginMaintenance": 0.0,
            "marginHedged": 50000.0,
            "marginDivider": 1.0,
            "percentage": 100.0,
            "point": s.point,
            "multiply": float(10**s.digits),
            "bidTickValue": 0.0,
            "askTickValue": 0.0,
            "longOnly": 0,
            "instantMaxVolume": 0,
            "marginCurrency": s.base_ccy,
            "freezeLevel": 0,
            "marginHedgedStrong": 0,
            "valueDate": self.zero_time,
            "quotesDelay": 0,
            "swapOpenPrice": 0,
            "swapVariationMargin": 0,
        }

    def mt4_group(self, g: Group) -> Row:
        """MT4Group (curated: no SMTP credentials, no nested sec arrays)."""
        return {
            "group": g.name,
            "enable": 1,
            "timeout": 0,
            "otpMode": "Disabled",
            "company": g.company,
            "signature": "",
            "supportPage": "https://example.com/support",
            "supportEmail": "support@example.com",
            "copies": 0,
            "reports": 1,
            "defaultLeverage": g.default_leverage,
            "defaultDeposit": 10000.0 if g.name.startswith("demo") else 0.0,
            "maxSecurities": 4096,
            "secMarginsTotal": 0,
            "currency": g.currency,
            "credit": 0.0,
            "marginCall": g.margin_call,
            "marginMode": "UseAll",
            "marginStopout": g.margin_stopout,
            "interestRate": 0.0,
            "useSwap": 1,
            "newsMode": "Full",
            "groupRights": "Expiration",
            "checkIEPrices": 0,
            "maxPositions": 0,
            "closeReopen": 0,
            "hedgeProhibited": 0,
            "closeFIFO": 0,
            "hedgeLargeLeg": 0,
            "marginControllingType": "Percent",
            "archivePeriod": 90,
            "archiveMaxBalance": 0,
            "stopoutSkipHedged": 0,
            "archivePendingPeriod": 0,
        }

    # ------------------------------------------------------------------ MT5 users

    def mt5_user_index(self, login: int) -> int | None:
        i = login - MT5_LOGIN_BASE
        return i if 0 <= i < self.mt5_user_count else None

    def mt5_user_group(self, index: int) -> Group:
        return MT5_GROUPS[rand64(self._k_user5, index) & 3]

    def mt5_user(self, index: int) -> Row:
        """MT5User of user ``index`` (login ``MT5_LOGIN_BASE + index``)."""
        h = rand64(self._k_user5, index)
        g = mix64(h ^ _GOLDEN)
        login = MT5_LOGIN_BASE + index
        first, last, country, city, state, zip_code, address, phone, email = _person(h, g, login)
        reg, last_access = self._user_dates(g)
        balance = _balance_cents(h)
        drift = ((g >> 18) & 0x3FFF) - 0x2000
        ip = _ipv4(g)
        return {
            "login": login,
            "group": MT5_GROUPS[h & 3].name,
            "name": f"{first} {last}",
            "company": "",
            "country": country,
            "city": city,
            "state": state,
            "zipCode": zip_code,
            "phone": phone,
            "eMail": email,
            "comment": "",
            "color": 4278190080,
            "leverage": _LEVERAGES[(h >> 18) & 3],
            "account": "",
            "language": 0,
            "address": address,
            "id": "",
            "status": "",
            "agent": 0,
            "leadCampaign": "",
            "leadSource": _LEAD_SOURCES[(h >> 36) & 7],
            "clientID": 0,
            "firstName": first,
            "lastName": last,
            "middleName": "",
            # Flag enums travel as comma-joined bit names (reference §7).
            "rights": "Enabled, Password" if (h >> 44) & 63 else "Password",
            "certSerialNumber": 0,
            "registration": self.iso(reg),
            "lastAccess": self.iso(last_access),
            "lastPassChange": self.iso(reg),
            "lastIP": f"{ip >> 24 & 255}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}",
            "balance": balance / 100,
            "credit": 0.0,
            "interestRate": 0.0,
            "commissionDaily": 0.0,
            "commissionMonthly": 0.0,
            "commissionAgentDaily": 0.0,
            "commissionAgentMonthly": 0.0,
            "balancePrevDay": max(balance - drift, 0) / 100,
            "balancePrevMonth": max(balance - drift * 3, 0) / 100,
            "equityPrevDay": max(balance + drift // 2, 0) / 100,
            "equityPrevMonth": max(balance - drift * 2, 0) / 100,
        }

    def mt5_keys(self, base: int, count: int, start: int, groups: frozenset[str] | None) -> Iterator[int]:
        """Ids ``base + k`` for k >= start whose owner is in ``groups`` (None = every group), ascending.

        Positions, orders and deals share the owner function, so one filter serves all three.
        """
        if groups is None:
            yield from range(base + max(start, 0), base + count)
            return
        if not groups:
            return
        for k in range(max(start, 0), count):
            if self.mt5_user_group(self.mt5_owner(k)).name in groups:
                yield base + k

    def mt5_owner(self, k: int) -> int:
        return self._owner(self._perm5, self.mt5_user_count, k % self.mt5_user_count)

    # ------------------------------------------------------------------ MT5 trading

    def mt5_position(self, k: int) -> Row:
        """MT5Position ``k`` (position id ``MT5_POSITION_BASE + k``)."""
        h = rand64(self._k_pos5, k)
        g = mix64(h ^ _GOLDEN)
        s = SYMBOLS[(h >> 8) % len(SYMBOLS)]
        buy = bool((h >> 12) & 1)
        created = self.open_start + k * self.open_span // max(self.mt5_position_count, 1)
        updated = created + (g % 3600)
        volume = 1 + (g >> 40) % 100  # lots * 100, as for MT4 open trades
        open_price = s.price_near(h, 200)
        current = self._bid[s.name] if buy else self.ask(s.name)
        diff = (current - open_price) if buy else (open_price - current)
        profit = s.profit_usd(diff, volume / 100, current)
        return {
            "login": MT5_LOGIN_BASE + self.mt5_owner(k),
            "symbol": s.name,
            "action": "Buy" if buy else "Sell",
            "digits": s.digits,
            "digitsCurrency": 2,
            "contractSize": float(s.contract_size),
            "position": MT5_POSITION_BASE + k,
            "externalId": "",
            "timeCreate": self.iso(created),
            "timeUpdate": self.iso(updated),
            "timeCreateMsc": msc(created, h % 1000),
            "timeUpdateMsc": msc(updated, g % 1000),
            "priceOpen": open_price,
            "priceCurrent": current,
            "priceSL": 0.0,
            "priceTP": 0.0,
            # MT5 volumes are in 1/10000 lot; volumeExt in 1/100000000 lot.
            "volume": volume * 100,
            "volumeExt": volume * 1_000_000,
            "profit": profit,
            "storage": 0.0,
            "rateProfit": 1.0,
            "rateMargin": s.margin_rate(open_price),
            "expertId": 0,
            "expertPositionId": 0,
            "comment": _COMMENTS[(h >> 44) & 7],
            "dealer": 0,
            "activationMode": "None",
            "activationTime": self.zero_time,
            "activationPrice": 0.0,
            "activationFlags": "None",
            "modificationFlags": "None",
            "reason": _REASONS5_POS[(h >> 48) & 7],
        }

    def mt5_order(self, k: int) -> Row:
        """MT5Order ``k``: an active pending order (order id ``MT5_ORDER_BASE + k``)."""
        h = rand64(self._k_order5, k)
        g = mix64(h ^ _GOLDEN)
        s = SYMBOLS[(h >> 8) % len(SYMBOLS)]
        otype = _MT5_ORDER_TYPES[(h >> 12) & 3]
        setup = self.open_start + k * self.open_span // max(self.mt5_order_count, 1)
        volume = (1 + (g >> 40) % 500) * 100
        price = s.price_near(h, 1000)
        return {
            "order": MT5_ORDER_BASE + k,
            "externalID": "",
            "login": MT5_LOGIN_BASE + self.mt5_owner(k),
            "dealer": 0,
            "partyID": 0,
            "symbol": s.name,
            "digits": s.digits,
            "digitsCurrency": 2,
            "contractSize": float(s.contract_size),
            "state": "Placed",
            "reason": _REASONS5_POS[(h >> 48) & 7],
            "timeSetup": self.iso(setup),
            "timeExpiration": self.zero_time,
            "timeDone": self.zero_time,
            "type": otype,
            "typeFill": "Return",
            "typeTime": "GtC",
            "priceOrder": price,
            "priceTrigger": 0.0,
            "priceCurrent": self._bid[s.name],
            "priceSL": 0.0,
            "priceTP": 0.0,
            "volumeInitial": volume,
            "volumeCurrent": volume,
            "expertID": 0,
            "positionID": 0,
            "comment": _COMMENTS[(h >> 44) & 7],
            "activationMode": 0,
            "activationTime": self.zero_time,
            "activationPrice": 0.0,
            "activationFlags": "None",
            "timeSetupMsc": msc(setup, h % 1000),
            "timeDoneMsc": "0",
            "rateMargin": 1.0,
            "positionByID": 0,
            "modificationFlags": 0,
            "volumeInitialExt": volume * 10_000,
            "volumeCurrentExt": volume * 10_000,
        }

    def mt5_deal_time(self, k: int) -> int:
        return self.history_start + k * self.history_span // max(self.mt5_deal_count, 1)

    def mt5_deal(self, k: int) -> Row:
        """MT5Deal ``k`` (deal id ``MT5_DEAL_BASE + k``); times monotonic in ``k``."""
        h = rand64(self._k_deal5, k)
        g = mix64(h ^ _GOLDEN)
        t = self.history_start + k * self.history_span // max(self.mt5_deal_count, 1)
        login = MT5_LOGIN_BASE + self.mt5_owner(k)
        if h % 50 == 0:
            amount = ((g & 0xFFFF) - 0x3000) / 10
            s_name, digits, contract, action, entry, price, volume, profit = "", 0, 0.0, "Balance", "In", 0.0, 0, amount
        else:
            s = SYMBOLS[(h >> 8) % len(SYMBOLS)]
            s_name, digits, contract = s.name, s.digits, float(s.contract_size)
            action = "Buy" if (h >> 12) & 1 else "Sell"
            entry = "In" if (h >> 13) & 1 else "Out"
            price = s.price_near(h, 1000)
            volume = (1 + (g >> 40) % 500) * 100
            profit = round((((h >> 28) % 4001) - 2000) / 10, 2) if entry == "Out" else 0.0
        return {
            "deal": MT5_DEAL_BASE + k,
            "externalID": "",
            "login": login,
            "dealer": 0,
            "partyID": 0,
            "order": MT5_ORDER_BASE + self.mt5_order_count + k,
            "action": action,
            "entry": entry,
            "digits": digits,
            "digitsCurrency": 2,
            "contractSize": contract,
            "time": self.iso(t),
            "symbol": s_name,
            "price": price,
            "priceSL": 0.0,
            "priceTP": 0.0,
            "volume": volume,
            "volumeExt": volume * 10_000,
            "volumeClosed": volume if entry == "Out" else 0,
            "volumeClosedExt": volume * 10_000 if entry == "Out" else 0,
            "profit": profit,
            "value": 0.0,
            "storage": 0.0,
            "commission": -volume * 7 / 10_000 if action in ("Buy", "Sell") else 0.0,
            "obsoleteValue": 0.0,
            "fee": 0.0,
            "rateProfit": 1.0,
            "rateMargin": 1.0,
            "expertID": 0,
            "positionID": MT5_POSITION_BASE + self.mt5_position_count + k // 2 if action in ("Buy", "Sell") else 0,
            "comment": "Deposit" if action == "Balance" and profit >= 0 else _COMMENTS[(h >> 44) & 7],
            "profitRaw": profit,
            "pricePosition": price,
            "tickValue": 1.0,
            "tickSize": 10.0**-digits if digits else 0.0,
            "flags": 0,
            "timeMsc": msc(t, h % 1000),
            "reason": _REASONS5_DEAL[(h >> 48) & 7] if action != "Balance" else "Dealer",
            "gateway": "",
            "priceGateway": 0.0,
            "marketBid": self._bid[s_name] if s_name else 0.0,
            "marketAsk": self.ask(s_name) if s_name else 0.0,
            "marketLast": 0.0,
            "modificationFlags": "None",
        }

    def mt5_time(self) -> Row:
        """MT5Time: time zone in minutes from GMT."""
        return {
            "timeZone": self.config.server_tz_offset_hours * 60,
            "timeServer": "pool.ntp.org",
            "daylight": False,
            "daylightState": 0,
        }

    def mt5_symbol(self, s: Symbol) -> Row:
        """MT5Symbol: every field of the SDK model (113), nested sessions and margin-rate maps included."""
        forex = s.sec_group == "Forex"
        contract = float(s.contract_size)
        # Weekly sessions, Sunday first, minutes from midnight (server time): forex trades round the clock on
        # weekdays; metals stop for an hour each day and close early on Friday.
        days = _MT5_FOREX_WEEK if forex else _MT5_METALS_WEEK
        sessions = [[_mt5_session(open_, close) for open_, close in day] for day in days]
        rates = {kind: 1.0 for kind in _MT5_MARGIN_RATE_KINDS}
        return {
            "symbol": s.name,
            "path": f"{s.sec_group}\\{s.name}",
            "isin": "",
            "description": s.description,
            "international": "",
            "basis": "",
            "source": "",
            "page": "",
            "currencyBase": s.base_ccy,
            "currencyBaseDigits": 2,
            "currencyProfit": s.quote_ccy,
            "currencyProfitDigits": 2,
            "currencyMargin": s.base_ccy,
            "currencyMarginDigits": 2,
            "color": 4278190080,
            "colorBackground": 4278190080,
            "digits": s.digits,
            "point": s.point,
            "multiply": float(10**s.digits),
            "tickFlags": "None",
            "tickBookDepth": 0,
            "filterSoft": 100,
            "filterSoftTicks": 10,
            "filterHard": 500,
            "filterHardTicks": 10,
            "filterDiscard": 500,
            "filterSpreadMax": 0,
            "filterSpreadMin": 0,
            "tradeMode": "Full",
            "calcMode": "Forex" if forex else "Cfd",
            "execMode": "Instant",
            "gtcMode": "GtC",
            "fillFlags": "FoK",
            "expirFlags": "All",
            "spread": s.spread,
            "spreadBalance": 0,
            "spreadDiff": 0,
            "spreadDiffBalance": 0,
            "tickValue": 1.0,
            "tickSize": s.point,
            "contractSize": contract,
            "stopsLevel": 10,
            "freezeLevel": 0,
            "quotesTimeout": 0,
            "volumeMin": 100,
            "volumeMax": 10_000_000,
            "volumeStep": 100,
            "volumeLimit": 0,
            "marginFlags": "None",
            "marginInitial": 0.0,
            "marginMaintenance": 0.0,
            "marginLong": 1.0,
            "marginShort": 1.0,
            "marginLimit": 0.0,
            "marginStop": 0.0,
            "marginStopLimit": 0.0,
            "swapMode": "ByPoints",
            "swapLong": -5.2,
            "swapShort": 1.1,
            "swap3Day": "Wednesday",
            "timeStart": self.zero_time,
            "timeExpiration": self.zero_time,
            "sessionQuote": sessions,
            "sessionTrade": sessions,
            "reFlags": "None",
            "reTimeout": 7,
            "ieCheckMode": "Normal",
            "ieTimeout": 7,
            "ieSlipProfit": 2,
            "ieSlipLosing": 2,
            "ieVolumeMax": 0,
            "priceSettle": 0.0,
            "priceLimitMax": 0.0,
            "priceLimitMin": 0.0,
            "tradeFlags": "Default",
            "orderFlags": "All",
            "marginRateInitial": rates,
            "marginRateMaintenance": dict(rates),
            "optionsMode": "EuropeanCall",
            "priceStrike": 0.0,
            "marginRateLiquidity": 0.0,
            "faceValue": 0.0,
            "accruedInterest": 0.0,
            "spliceType": "None",
            "spliceTimeType": "Expiration",
            "spliceTimeDays": 0,
            "marginHedged": contract / 2,
            "marginRateCurrency": 0.0,
            "filterGap": 0,
            "filterGapTicks": 0,
            "chartMode": "BidPrice",
            "ieFlags": "None",
            "volumeMinExt": 1_000_000,
            "volumeMaxExt": 100_000_000_000,
            "volumeStepExt": 1_000_000,
            "volumeLimitExt": 0,
            "ieVolumeMaxExt": 0,
            "category": "",
            "exchange": "",
            "cfi": "",
            "sector": "Currency" if forex else "Commodities",
            "industry": "Undefined" if forex else "PreciousMetals",
            "country": "",
            "subscriptionsDelay": 15,
            "swapYearDays": 360 if forex else 365,
            "swapFlags": "None",
            "swapRateSunday": 0.0,
            "swapRateMonday": 1.0,
            "swapRateTuesday": 1.0,
            "swapRateWednesday": 3.0,
            "swapRateThursday": 1.0,
            "swapRateFriday": 1.0,
            "swapRateSaturday": 0.0,
        }

    def mt5_group(self, g: Group) -> Row:
        """MT5ConGroup: every field of the SDK model (45), the commission map with its tiers included.

        SMTP credentials are blank, like the real curated DTOs (the provider never lands ``reportsSMTPPass``)."""
        demo = g.name.startswith("demo")
        return {
            "group": g.name,
            "server": 1,
            "permissionsFlags": "None",
            "authMode": "Standard",
            "authPasswordMin": 8,
            "company": g.company,
            "companyPage": "https://example.com",
            "companyEmail": "info@example.com",
            "companySupportPage": "https://example.com/support",
            "companySupportEmail": "support@example.com",
            "companyCatalog": "",
            "currency": g.currency,
            "currencyDigits": 2,
            "reportsMode": "Disabled",
            "reportsFlags": "None",
            "reportsSMTP": "",
            "reportsSMTPLogin": "",
            "reportsSMTPPass": "",
            "newsMode": "Full",
            "newsCategory": "",
            "newsLang": [1033, 1049],  # LANGIDs: en-US, ru-RU
            "mailMode": "Full",
            "tradeFlags": "Default",
            "tradeInterestRate": 0.0,
            "tradeVirtualCredit": 0.0,
            "marginFreeMode": "UsePL",
            "marginSOMode": "Percent",
            "marginCall": float(g.margin_call),
            "marginStopOut": float(g.margin_stopout),
            "demoLeverage": g.default_leverage,
            "demoDeposit": 10000.0 if demo else 0.0,
            "limitHistory": "All",
            "limitOrders": 0,
            "limitSymbols": 0,
            "commissions": {} if demo else self._mt5_commissions(g),
            "marginFreeProfitMode": 0,
            "marginMode": "RetailHedged",
            "authOTPMode": "Disabled",
            "tradeTransferMode": "TransferModeDisabled",
            "marginFlags": "None",
            "limitPositions": 0,
            "reportsEmail": "",
            "companyDepositPage": "https://example.com/deposit",
            "companyWithdrawalPage": "https://example.com/withdrawal",
            "demoInactivityPeriod": 30 if demo else 0,
        }

    @staticmethod
    def _mt5_commissions(g: Group) -> dict[str, Row]:
        """MT5ConGroup.commissions: name -> MT5ConCommission, volume tiers in USD per lot (pro pays less)."""
        per_lot = 3.5 if g.name.endswith("pro") else 7.0
        tiers = [
            {
                "mode": "MoneyDeposit",
                "type": "Volume",
                "value": value,
                "minimal": 0.0,
                "rangeFrom": low,
                "rangeTo": high,
                "currency": g.currency,
                "maximal": 0.0,
            }
            for value, low, high in ((per_lot, 0.0, 100.0), (per_lot / 2, 100.0, 1e9))
        ]
        standard = {
            "name": "standard",
            "description": "Per-lot commission on entry and exit",
            "path": "*",
            "mode": "Standard",
            "rangeMode": "Volume",
            "chargeMode": "Instant",
            "tiers": tiers,
            "turnoverCurrency": g.currency,
            "entryMode": "All",
            "actionMode": "All",
            "profitMode": "All",
            "reasonFlags": "All",
        }
        return {"standard": standard}

    # ------------------------------------------------------------------ datasets: prices, bars, daily reports
    #
    # Everything below is new API surface for the "datasets" work and is derived from the generators above, so a
    # daily report agrees with the trades, a tick with the last quote, a bar with the ticks' price path.

    @property
    def _k_path(self) -> int:
        return stream_key(self.config.seed, "price.path")

    def _wave(self, symbol_index: int, t: int) -> float:
        """Relative deviation of the price path at ``t``: weekly, daily and 3-hour swings with per-symbol phases."""
        key = self._k_path
        total = 0.0
        for n, (period, amplitude) in enumerate(_PATH_WAVES):
            phase = (rand64(key, symbol_index * 4 + n) % 10_000) / 10_000 * 2 * math.pi
            total += amplitude * math.sin(2 * math.pi * t / period + phase)
        return total

    def price_path(self, symbol: str, t: int) -> float:
        """Bid of ``symbol`` at unix second ``t`` (unrounded); equals :meth:`bid` (TickInfoLast) at the anchor."""
        index = SYMBOL_INDEX[symbol]
        return self._bid[symbol] * (1 + self._wave(index, t) - self._wave(index, self.anchor))

    def path_bid(self, symbol: str, t: int) -> float:
        return round(self.price_path(symbol, t), SYMBOL_BY_NAME[symbol].digits)

    def path_ask(self, symbol: str, t: int) -> float:
        s = SYMBOL_BY_NAME[symbol]
        return round(self.path_bid(symbol, t) + s.spread * s.point, s.digits)

    def _tick_bits(self, symbol: str, slot: int) -> int:
        return rand64(self._k_path, (slot << 4) + 8 + SYMBOL_INDEX[symbol])

    def mt4_tick_time(self, symbol: str, slot: int) -> int | None:
        """Time of the tick of ``symbol`` in the ``TICK_SLOT``-second slot ``slot`` (None: no tick there)."""
        r = self._tick_bits(symbol, slot)
        return None if r % 10 >= 7 else slot * TICK_SLOT + (r >> 4) % TICK_SLOT

    def mt4_tick(self, symbol: str, slot: int) -> Row | None:
        """MT4TickRecord of ``symbol`` in slot ``slot``: on the price path, a few points of noise.

        At most one tick per slot, so ``time`` is unique per symbol; ~10 % are ``Raw`` (unfiltered feed) ticks.
        """
        t = self.mt4_tick_time(symbol, slot)
        if t is None:
            return None
        s = SYMBOL_BY_NAME[symbol]
        r = self._tick_bits(symbol, slot)
        bid = round(self.price_path(symbol, t) + (((r >> 8) % 5) - 2) * s.point, s.digits)
        return {
            "time": self.iso(t),
            "bid": bid,
            "ask": round(bid + (s.spread + (r >> 12) % 3) * s.point, s.digits),
            "dataFeed": 1 + (r >> 20) % 2,
            "flags": "Raw" if (r >> 16) % 10 == 0 else "Normal",
        }

    def mt4_ticks(self, symbol: str, start: int, end: int) -> Iterator[Row]:
        """Ticks with ``start <= time <= end`` (both inclusive, like the Manager API), within the history window."""
        lo, hi = max(start, self.history_start), min(end, self.anchor - 1)
        for slot in range(lo // TICK_SLOT, hi // TICK_SLOT + 1):
            t = self.mt4_tick_time(symbol, slot)
            if t is not None and lo <= t <= hi:
                tick = self.mt4_tick(symbol, slot)
                assert tick is not None
                yield tick

    def chart_bar_times(self, period: str, start: int, end: int) -> Iterator[tuple[int, int]]:
        """``(open, next open)`` of the complete bars of ``period`` opening in ``[start, end]`` within the history
        window (a bar still forming at the anchor does not exist yet)."""
        lo, hi = max(start, self.history_start), min(end, self.anchor)
        t = _bar_floor(period, lo)
        while t <= hi:
            nxt = _bar_next(period, t)
            if t >= lo and nxt <= self.anchor:
                yield t, nxt
            t = nxt

    def mt4_chart_bar(self, symbol: str, period: str, t: int, nxt: int) -> Row:
        """MT4ChartBar: open = path at ``t``, close = path at the next bar's open, high/low around them."""
        s = SYMBOL_BY_NAME[symbol]
        r = rand64(self._k_path, (t << 8) + (CHART_PERIOD_INDEX[period] << 4) + SYMBOL_INDEX[symbol])
        o, c, mid = (self.path_bid(symbol, x) for x in (t, nxt, (t + nxt) // 2))
        return {
            "time": self.iso(t),
            "open": o,
            "high": round(max(o, c, mid) + (r & 15) * s.point, s.digits),
            "low": round(min(o, c, mid) - ((r >> 4) & 15) * s.point, s.digits),
            "close": c,
            # Tick volume: ~70 % of the tick slots carry a tick (see mt4_tick), give or take 10 %.
            "volume": (nxt - t) // TICK_SLOT * (60 + (r >> 8) % 21) // 100,
        }

    # Daily reports. Server-local trading day d (days since 1970-01-01 in the server's wall clock) spans the UTC
    # instants [d * DAY - tz, (d + 1) * DAY - tz), tz = MT4Common.timeZone hours * 3600.

    @property
    def server_tz_seconds(self) -> int:
        return self.config.server_tz_offset_hours * 3600

    def mt4_daily_days(self) -> range:
        """Server-local days with a daily report: those lying wholly in ``[history_start, anchor]``."""
        tz = self.server_tz_seconds
        first = -(-(self.history_start + tz) // DAY)
        last = (self.anchor + tz) // DAY - 1
        return range(first, max(last + 1, first))

    def _mt4_cash_flow(self, trade: Row) -> float:
        return float(trade["profit"] + trade["commission"] + trade["storage"] + trade["taxes"])

    def mt4_daily_reports(self, user_index: int, days: range | list[int]) -> Iterator[Row]:
        """MT4DailyReport of one user for each server-local day in ``days`` (only days of :meth:`mt4_daily_days`).

        Rules (the same trades the other endpoints serve, no state):

        * ``ctm``: the day's server-local midnight, wall clock without offset (MT4 sends local time).
        * ``deposit``: sum of ``Balance`` trades closed that day; ``profitClosed``: sum of ``profit`` of the
          Buy/Sell trades closed that day (commission, swaps and taxes are not in it, but move the balance).
        * ``balance``: the user's current balance minus every cash flow (profit + commission + storage + taxes)
          closed at or after the day's end, so the last day's balance is today's ``balance`` and
          ``balance - balancePrev = deposit + profitClosed + commission + storage + taxes`` of the day. It can be
          negative for small accounts: a replay, not a risk engine.
        * ``profit`` (floating), ``margin``: the Buy/Sell trades open at the day's end (opened before it, closed
          at or after it), revalued at the price path at the day's end (bid for buys, ask for sells), margin as in
          MarginsGet (notional / leverage); at the anchor this is exactly MarginsGet's floating P/L.
        * ``equity = balance + credit + profit``, ``marginFree = equity - margin``, ``credit`` constant.
        """
        available = self.mt4_daily_days()
        h = rand64(self._k_user4, user_index)
        credit = _credit_cents(mix64(h ^ _GOLDEN)) / 100
        balance_now = _balance_cents(h) / 100
        leverage = self.mt4_user_leverage(user_index)
        group = self.mt4_user_group(user_index).name
        closed = [self.mt4_closed_trade(i) for i in self.mt4_closed_trade_indexes(user_index)]
        opened = [self.mt4_open_trade(j) for j in self.mt4_open_trade_indexes(user_index)]
        closed_at = [(int(_parse_iso(t["closeTime"])), t) for t in closed]
        holding = [
            (int(_parse_iso(t["openTime"])), close, t) for close, t in closed_at if t["tradeCommand"] in ("Buy", "Sell")
        ] + [(int(_parse_iso(t["openTime"])), 2**62, t) for t in opened if t["tradeCommand"] in ("Buy", "Sell")]
        tz = self.server_tz_seconds

        def balance_at(ts: int) -> float:
            return balance_now - sum((self._mt4_cash_flow(t) for close, t in closed_at if close >= ts), 0.0)

        for d in days:
            if d not in available:
                continue
            start, end = d * DAY - tz, (d + 1) * DAY - tz
            today = [t for close, t in closed_at if start <= close < end]
            floating = margin = 0.0
            for opened_at, close, t in holding:
                if not opened_at < end <= close:
                    continue
                s = SYMBOL_BY_NAME[t["symbol"]]
                buy = t["tradeCommand"] == "Buy"
                current = self.path_bid(s.name, end) if buy else self.path_ask(s.name, end)
                diff = (current - t["openPrice"]) if buy else (t["openPrice"] - current)
                floating += s.profit_usd(diff, t["volume"] / 100, current)
                notional = t["volume"] / 100 * s.contract_size * (t["openPrice"] if s.quote_ccy == "USD" else 1.0)
                margin += notional / leverage
            balance = round(balance_at(end), 2)
            equity = round(balance + credit + floating, 2)
            yield {
                "login": MT4_LOGIN_BASE + user_index,
                "ctm": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(d * DAY)),
                "group": group,
                "bank": "",
                "balancePrev": round(balance_at(start), 2),
                "balance": balance,
                "deposit": round(sum((t["profit"] for t in today if t["tradeCommand"] == "Balance"), 0.0), 2),
                "credit": credit,
                "profitClosed": round(sum((t["profit"] for t in today if t["tradeCommand"] != "Balance"), 0.0), 2),
                "profit": round(floating, 2),
                "equity": equity,
                "margin": round(margin, 2),
                "marginFree": round(equity - margin, 2),
            }

    def mt4_groups_sorted(self) -> list[Group]:
        """MT4 groups by name (ordinal), the sort key of ``GroupsRequest``."""
        return sorted(MT4_GROUPS, key=lambda g: g.name)


# Price path of ticks, bars and daily revaluation: (period s, relative amplitude).
_PATH_WAVES = ((7 * DAY, 0.004), (DAY, 0.0015), (3 * 3600, 0.0004))
TICK_SLOT = 10
"""Seconds: each symbol has at most one tick per slot, ~70 % of the slots have one."""
SYMBOL_INDEX: dict[str, int] = {s.name: n for n, s in enumerate(SYMBOLS)}
CHART_PERIODS: dict[str, int] = {
    "M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 4 * 3600, "D1": DAY, "W1": 7 * DAY, "Mn1": 0,
}  # fmt: skip
"""MT4 ChartPeriod → seconds (Mn1: calendar months)."""
CHART_PERIOD_INDEX: dict[str, int] = {name: n for n, name in enumerate(CHART_PERIODS)}
_WEEK_ORIGIN = 3 * DAY  # 1970-01-04, a Sunday: MT4 weekly bars open on Sunday


def _parse_iso(text: str) -> int:
    """A datetime this module wrote (either quirk spelling: with ``Z`` or without an offset, both UTC)."""
    return calendar.timegm(time.strptime(text.removesuffix("Z"), "%Y-%m-%dT%H:%M:%S"))


def _bar_floor(period: str, t: int) -> int:
    """Open time of the bar of ``period`` containing ``t`` (UTC, like every REST time but ``ctm``)."""
    if period == "Mn1":
        tm = time.gmtime(t)
        return calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
    if period == "W1":
        return t - (t - _WEEK_ORIGIN) % (7 * DAY)
    return t - t % CHART_PERIODS[period]


def _bar_next(period: str, t: int) -> int:
    if period == "Mn1":
        tm = time.gmtime(t)
        year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0))
    return t + CHART_PERIODS[period]
