"""Reporting for analysts, built from the DuckDB warehouse and scheduled on its Asset (refreshes after every load).

* Trading summary: ``reports/trading_summary.csv`` (table ``report_trading_summary``) and ``.png``.
* Daily equity per group (from ``mt4_daily_reports``, ``mt4_groups``, ``mt4_open_trades``, ``mt4_symbols`` and
  ``mt4_chart_bars``): balance, equity, floating P/L per group for the latest trading day, and the net exposure
  per symbol revalued at the latest bar close: ``reports/daily_equity_by_group.csv`` / ``.png`` (tables
  ``report_equity_by_group``, ``report_exposure_by_group``). Skipped until those datasets have landed.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task
from cplugin_example_warehouse import WAREHOUSE, connect_warehouse, warehouse_path

SUMMARY_SQL = """
create or replace table report_trading_summary as
select cast(close_time as date) as day, symbol,
       count(*) as trades, round(sum(volume_lots), 2) as lots,
       round(sum(profit), 2) as profit, round(sum(commission), 2) as commission,
       count(distinct login) as traders
from mt4_trade_history
where trade_command in ('Buy', 'Sell')  -- balance/credit operations are money movements, not trades
group by all
order by day, symbol
"""


EQUITY_SQL = """
create or replace table report_equity_by_group as
with day as (select max(trading_day) as d from mt4_daily_reports)
select r.trading_day, r."group", g.currency, g.default_leverage, g.margin_call, g.margin_stopout,
       count(*) as accounts, round(sum(r.balance), 2) as balance, round(sum(r.credit), 2) as credit,
       round(sum(r.equity), 2) as equity, round(sum(r.profit), 2) as floating_pl,
       round(sum(r.profit_closed), 2) as closed_pl, round(sum(r.deposit), 2) as deposits,
       round(sum(r.margin), 2) as margin
from mt4_daily_reports r join day on r.trading_day = day.d
left join mt4_groups g on g."group" = r."group" and g.trade_platform = r.trade_platform
group by all order by r."group"
"""

# Net client position per group and symbol, in USD notional at the latest H1 close. Every emulator symbol has USD
# on one side: XXXUSD is worth lots * contract size * price, USDXXX lots * contract size.
EXPOSURE_SQL = """
create or replace table report_exposure_by_group as
with px as (
  select symbol, arg_max(close, time) as close from mt4_chart_bars where period = 'H1' group by symbol
), grp as (
  select login, arg_max("group", trading_day) as "group" from mt4_daily_reports group by login
)
select grp."group", t.symbol,
       round(sum(case when t.trade_command = 'Buy' then t.volume_lots else -t.volume_lots end), 2) as net_lots,
       round(sum(case when t.trade_command = 'Buy' then 1 else -1 end * t.volume_lots * s.contract_size
                 * case when s.currency = 'USD' then 1 else px.close end), 0) as net_usd
from mt4_open_trades t join grp using (login) join mt4_symbols s using (symbol) join px using (symbol)
where t.trade_command in ('Buy', 'Sell')  -- pending orders are no exposure yet
group by all order by grp."group", t.symbol
"""
EQUITY_TABLES = ("mt4_daily_reports", "mt4_groups", "mt4_open_trades", "mt4_symbols", "mt4_chart_bars")


@dag(
    dag_id="cplugin_reporting",
    schedule=[WAREHOUSE],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cplugin", "example"],
)
def cplugin_reporting() -> None:
    @task
    def trading_summary() -> dict[str, Any]:
        import matplotlib

        matplotlib.use("Agg")  # no display on workers
        import matplotlib.pyplot as plt

        out_dir = os.path.join(os.path.dirname(warehouse_path()), "reports")
        os.makedirs(out_dir, exist_ok=True)
        con = connect_warehouse()
        present = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        if "mt4_trade_history" not in present:
            # The warehouse loads on any landing: the first load may come before the first history hour landed.
            con.close()
            print("Trading summary skipped: mt4_trade_history is not in the warehouse yet")
            return {"skipped": ["mt4_trade_history"]}
        con.execute(SUMMARY_SQL)
        csv_path = os.path.join(out_dir, "trading_summary.csv")
        con.execute(f"copy report_trading_summary to '{csv_path}' (header, delimiter ',')")
        by_symbol = con.execute(
            "select symbol, sum(lots) as lots, sum(profit) as profit from report_trading_summary "
            "group by symbol order by lots desc"
        ).fetchall()
        rows = con.execute("select count(*) from report_trading_summary").fetchone()
        con.close()

        fig, (ax_lots, ax_profit) = plt.subplots(1, 2, figsize=(11, 4.5))
        symbols = [r[0] for r in by_symbol]
        ax_lots.bar(symbols, [r[1] for r in by_symbol], color="#3b7dd8")
        ax_lots.set_title("Closed volume (lots) by symbol")
        ax_profit.bar(
            symbols, [r[2] for r in by_symbol], color=["#2e9e5b" if r[2] >= 0 else "#d64545" for r in by_symbol]
        )
        ax_profit.set_title("Client profit by symbol")
        for ax in (ax_lots, ax_profit):
            ax.tick_params(axis="x", rotation=45)
        fig.suptitle("MT4 closed trades: warehouse summary")
        fig.tight_layout()
        png_path = os.path.join(out_dir, "trading_summary.png")
        fig.savefig(png_path, dpi=110)
        plt.close(fig)
        print(f"Report: {rows[0] if rows else 0} summary rows → {csv_path}; chart → {png_path}")
        return {"csv": csv_path, "png": png_path, "rows": rows[0] if rows else 0}

    @task
    def daily_equity_by_group() -> dict[str, Any]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        con = connect_warehouse()
        present = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        missing = [t for t in EQUITY_TABLES if t not in present]
        if missing:
            con.close()
            print(f"Daily equity report skipped: {missing} not in the warehouse yet (run cplugin_daily_datasets)")
            return {"skipped": missing}
        con.execute(EQUITY_SQL)
        con.execute(EXPOSURE_SQL)
        out_dir = os.path.join(os.path.dirname(warehouse_path()), "reports")
        os.makedirs(out_dir, exist_ok=True)
        csv_path = os.path.join(out_dir, "daily_equity_by_group.csv")
        con.execute(f"copy report_equity_by_group to '{csv_path}' (header, delimiter ',')")
        groups = con.execute(
            'select trading_day, "group", accounts, balance, equity, floating_pl, margin_call, margin_stopout, '
            "default_leverage, credit from report_equity_by_group"
        ).fetchall()
        exposure = con.execute('select "group", symbol, net_usd from report_exposure_by_group').fetchall()
        con.close()
        png_path = os.path.join(out_dir, "daily_equity_by_group.png")
        _equity_chart(plt, groups, exposure, png_path)
        day = groups[0][0] if groups else None
        print(f"Daily equity report for trading day {day}: {len(groups)} groups → {csv_path}; chart → {png_path}")
        return {"csv": csv_path, "png": png_path, "groups": len(groups), "trading_day": str(day)}

    trading_summary()
    daily_equity_by_group()


def _equity_chart(plt: Any, groups: list[tuple[Any, ...]], exposure: list[tuple[Any, ...]], path: str) -> None:
    """Left: balance / equity / floating P/L per group (USD m); right: net exposure per symbol per group."""
    names = [g[1] for g in groups]
    fig, (ax_eq, ax_exp) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [1.25, 1.25]})
    x = range(len(names))
    width = 0.38
    ax_eq.bar([i - width / 2 for i in x], [g[3] / 1e6 for g in groups], width, label="Balance", color="#9db7d9")
    ax_eq.bar([i + width / 2 for i in x], [g[4] / 1e6 for g in groups], width, label="Equity", color="#2f6db5")
    for i, g in enumerate(groups):
        colour = "#2e9e5b" if g[5] >= 0 else "#d64545"
        ax_eq.annotate(
            f"floating P/L {g[5] / 1e3:+,.1f}k\ncredit {g[9] / 1e3:,.1f}k\n{g[2]} accts, 1:{g[8]}\n"
            f"MC {g[6]}% / SO {g[7]}%",
            (i, max(g[3], g[4]) / 1e6), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8,
            color=colour,
        )  # fmt: skip
    ax_eq.set_xticks(list(x), names)
    ax_eq.set_ylabel("USD millions (1:N = default leverage)")
    ax_eq.set_title("Balance and equity (= balance + credit + floating P/L) by group")
    ax_eq.legend(loc="lower right")
    ax_eq.margins(y=0.25)
    symbols = sorted({e[1] for e in exposure})
    step = 0.8 / max(len(names), 1)
    palette = ["#2f6db5", "#e07b39", "#2e9e5b", "#8e5bb5", "#c4a000", "#d64545"]
    for n, name in enumerate(names):
        net = {e[1]: e[2] for e in exposure if e[0] == name}
        ax_exp.barh(
            [i - 0.4 + step * (n + 0.5) for i in range(len(symbols))], [net.get(s, 0) / 1e6 for s in symbols],
            step, label=name, color=palette[n % len(palette)],
        )  # fmt: skip
    ax_exp.axvline(0, color="#444", linewidth=0.8)
    ax_exp.set_yticks(list(range(len(symbols))), symbols)
    ax_exp.invert_yaxis()
    ax_exp.set_xlabel("Net client exposure, USD millions (+ long / - short)")
    ax_exp.set_title("Open exposure per symbol (at the latest H1 close)")
    ax_exp.legend(title="Group", fontsize=8)
    day = groups[0][0] if groups else "n/a"
    fig.suptitle(f"MT4 daily equity report, trading day {day} (server time)", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


cplugin_reporting()
