"""Reporting for analysts: a daily trading summary table and a chart (PNG), built from the DuckDB warehouse.

Scheduled on the warehouse Asset, so it refreshes after every load. Outputs land next to the warehouse:
``reports/trading_summary.csv`` (also the ``report_trading_summary`` table) and ``reports/trading_summary.png``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task
from cplugin_example_warehouse import WAREHOUSE, warehouse_path

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
        import duckdb
        import matplotlib

        matplotlib.use("Agg")  # no display on workers
        import matplotlib.pyplot as plt

        out_dir = os.path.join(os.path.dirname(warehouse_path()), "reports")
        os.makedirs(out_dir, exist_ok=True)
        con = duckdb.connect(warehouse_path())
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

    trading_summary()


cplugin_reporting()
