"""``cplugin-emulator`` console script: serve the emulator until SIGTERM/SIGINT.

Prints ``cplugin-emulator listening on <url>`` and writes the ``--ready-file`` (JSON: url, port, pid,
mt4_trade_platform, mt5_trade_platform, client_id, anchor, quirks) once the socket accepts connections. The client
secret can come from ``CPLUGIN_EMULATOR_CLIENT_SECRET`` so it does not show up in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from airflow_provider_cplugin.emulator.app import create_app
from airflow_provider_cplugin.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_MT4_TRADE_PLATFORM,
    DEFAULT_MT5_TRADE_PLATFORM,
    EmulatorConfig,
    default_anchor,
)
from airflow_provider_cplugin.emulator.quirks import (
    ALL_QUIRKS,
    LOCAL_SERVER_TIME,
    QUIRKS_ENV,
    parse_quirks,
    quirks_from_env,
)

SECRET_ENV = "CPLUGIN_EMULATOR_CLIENT_SECRET"
log = logging.getLogger("cplugin_emulator")


def _anchor(value: str) -> int:
    """Unix seconds or an ISO datetime (naive = UTC)."""
    if value.lstrip("-").isdigit():
        return int(value)
    dt = datetime.fromisoformat(value)
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def _quirks_arg(value: str) -> frozenset[str]:
    try:
        return parse_quirks(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _quirks(args: argparse.Namespace) -> frozenset[str]:
    quirks: frozenset[str] = quirks_from_env() if args.quirks is None else args.quirks
    return quirks | {LOCAL_SERVER_TIME} if args.server_time_local else quirks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cplugin-emulator", description="Local emulator of the CPlugin Cloud WebAPI.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--users", type=int, default=1000, help="MT4 users")
    p.add_argument("--mt5-users", type=int, default=1000)
    p.add_argument("--trades-per-user", type=int, default=5, help="closed MT4 trades / MT5 deals per user")
    p.add_argument("--open-trades-per-user", type=float, default=0.5)
    p.add_argument("--online-percent", type=int, default=5)
    p.add_argument("--token-lifetime", type=int, default=3600, help="expires_in of issued tokens (s)")
    p.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    p.add_argument("--client-secret", default=None, help=f"default: ${SECRET_ENV} or the demo secret")
    p.add_argument("--tz-offset", type=int, default=2, help="server-local time zone, hours from UTC")
    p.add_argument(
        "--quirks",
        type=_quirks_arg,
        default=None,
        help=f"data quirks of the real service, comma-separated or 'all' ({', '.join(ALL_QUIRKS)}); "
        f"default: ${QUIRKS_ENV}",
    )
    p.add_argument("--server-time-local", action="store_true", help=f"same as adding {LOCAL_SERVER_TIME} to --quirks")
    p.add_argument("--history-days", type=float, default=90.0)
    p.add_argument("--open-days", type=float, default=14.0)
    p.add_argument("--anchor", type=_anchor, default=None, help="'now' of the data (unix s or ISO); default: hour")
    p.add_argument("--online-warmup", type=float, default=0.0, help="seconds OnlineGet answers NoConnect")
    p.add_argument("--mt4-trade-platform", default=DEFAULT_MT4_TRADE_PLATFORM)
    p.add_argument("--mt5-trade-platform", default=DEFAULT_MT5_TRADE_PLATFORM)
    p.add_argument("--ready-file", type=Path, default=None)
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    return p


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        seed=args.seed,
        mt4_users=args.users,
        mt5_users=args.mt5_users,
        trades_per_user=args.trades_per_user,
        open_trades_per_user=args.open_trades_per_user,
        online_percent=args.online_percent,
        token_lifetime=args.token_lifetime,
        client_id=args.client_id,
        client_secret=args.client_secret or os.environ.get(SECRET_ENV) or DEFAULT_CLIENT_SECRET,
        server_tz_offset_hours=args.tz_offset,
        quirks=_quirks(args),
        history_days=args.history_days,
        open_days=args.open_days,
        anchor=default_anchor() if args.anchor is None else args.anchor,
        online_warmup_s=args.online_warmup,
        mt4_trade_platform=args.mt4_trade_platform,
        mt5_trade_platform=args.mt5_trade_platform,
    )


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _write_ready(path: Path, info: dict[str, Any]) -> None:
    # Atomic: a poller never sees a half-written file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


async def serve(config: EmulatorConfig, host: str, port: int, ready_file: Path | None, access_log: bool) -> None:
    # Handlers first: whoever sees the ready file may signal us right away.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=log if access_log else None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    actual_port = int(runner.addresses[0][1])
    url = _url(host, actual_port)
    if ready_file is not None:
        _write_ready(
            ready_file,
            {
                "url": url,
                "port": actual_port,
                "pid": os.getpid(),
                "mt4_trade_platform": config.mt4_trade_platform,
                "mt5_trade_platform": config.mt5_trade_platform,
                "client_id": config.client_id,
                "anchor": config.anchor,
                "quirks": sorted(config.quirks),
            },
        )
    # After the ready file, so a reader of stdout can rely on it.
    print(f"cplugin-emulator listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"cplugin-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        # Plain asyncio: uvloop measured no gain here (row generation, not I/O, is the cost).
        asyncio.run(serve(config, args.host, args.port, args.ready_file, args.access_log))
    finally:
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
