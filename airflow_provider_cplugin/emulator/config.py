"""Emulator configuration: one frozen dataclass shared by the app, the CLI and the data generators."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from airflow_provider_cplugin.emulator.quirks import LOCAL_SERVER_TIME, parse_quirks, quirks_from_env

DEFAULT_MT4_TRADE_PLATFORM = "3f6b2c1a-7d4e-4a5b-8c9d-0e1f2a3b4c5d"
DEFAULT_MT5_TRADE_PLATFORM = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
DEFAULT_CLIENT_ID = "cplugin-demo"
DEFAULT_CLIENT_SECRET = "cplugin-demo-secret"
DEFAULT_SCOPE = "webapi"


def default_anchor() -> int:
    """'Now' for the generated history, floored to the hour so two emulators started close together agree."""
    return int(time.time()) // 3600 * 3600


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulated service. Same config (incl. ``anchor``) => same data."""

    seed: int = 42
    mt4_users: int = 1000
    mt5_users: int = 1000
    # Closed MT4 trades = mt4_users * trades_per_user (MT5 deals likewise).
    trades_per_user: int = 5
    # Open MT4 trades / MT5 positions = users * open_trades_per_user (fractional: only some users trade).
    open_trades_per_user: float = 0.5
    # Percent of MT4 users that are online.
    online_percent: int = 5
    token_lifetime: int = 3600
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    # Server-local time zone of the trade servers (MT4Common.timeZone hours, MT5Time.timeZone minutes).
    server_tz_offset_hours: int = 2
    # Data quirks of the real service played by this emulator (emulator/quirks.py); default: $CPLUGIN_EMULATOR_QUIRKS.
    quirks: frozenset[str] = field(default_factory=quirks_from_env)
    # Closed-trade history spans [anchor - history_days, anchor); open trades were opened in the last open_days.
    history_days: float = 90.0
    open_days: float = 14.0
    # Unix seconds of "now" for the generated data (not for ServerTime, which is the wall clock).
    anchor: int = field(default_factory=default_anchor)
    # Seconds after start during which OnlineGet answers NoConnect (pump cache warming up). 0 = warm at once.
    online_warmup_s: float = 0.0
    mt4_trade_platform: str = DEFAULT_MT4_TRADE_PLATFORM
    mt5_trade_platform: str = DEFAULT_MT5_TRADE_PLATFORM
    # Largest page the paged endpoints accept (the real service: 5000).
    max_page_limit: int = 5000

    @property
    def server_time_local(self) -> bool:
        """ServerTime in server-local time without an offset (the reference leaves its format unverified)."""
        return LOCAL_SERVER_TIME in self.quirks

    def __post_init__(self) -> None:
        # Validates the names (a typo must not silently play nothing) and accepts any iterable of them.
        object.__setattr__(self, "quirks", parse_quirks(",".join(self.quirks)))
        if self.mt4_users < 0 or self.mt5_users < 0 or self.trades_per_user < 0:
            raise ValueError("user and trade counts must be >= 0")
        if self.open_trades_per_user < 0:
            raise ValueError("open_trades_per_user must be >= 0")
        if not 0 <= self.online_percent <= 100:
            raise ValueError("online_percent must be within 0..100")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0")
        if self.history_days <= 0 or self.open_days <= 0:
            raise ValueError("history_days and open_days must be > 0")
