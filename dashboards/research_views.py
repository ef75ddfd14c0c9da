"""What the research explorer draws from framework results: the stats table, tables and sweep plots.

Pure functions of results: they return HTML, DataFrames ready for a table widget, or HoloViews
objects, and never touch a widget. Every displayed statistic carries its exact value in a
`data-value` attribute (`repr` of the float), so tests compare the page with `framework.backtest`
without parsing rounded text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # the Bokeh backend: plot options need a loaded backend
import numpy as np
import pandas as pd

from framework import SweepResult

__all__ = ["STAT_LABELS", "format_stat", "stats_html", "sweep_plot", "top_frame", "trades_frame"]

STAT_LABELS: dict[str, str] = {
    "start": "start",
    "end": "end",
    "initial_equity": "initial equity",
    "final_equity": "final equity",
    "total_return": "total return",
    "cagr": "CAGR",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "max drawdown",
    "win_rate": "win rate",
    "profit_factor": "profit factor",
    "exposure": "exposure",
    "trades": "closed trades",
    "open_trades": "open trades",
    "fees_paid": "fees paid",
}
_PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure"}
_MONEY = {"initial_equity", "final_equity", "fees_paid"}
_RATIO = {"sharpe", "sortino", "profit_factor"}
_TABLE_CSS = (
    "<style>"
    "table.rata-stats{border-collapse:collapse;font-size:14px;width:100%}"
    "table.rata-stats th{text-align:left;font-weight:normal;color:#555;padding:3px 12px 3px 0}"
    "table.rata-stats td{text-align:right;font-variant-numeric:tabular-nums;padding:3px 0}"
    "table.rata-stats tr{border-bottom:1px solid #eee}"
    "</style>"
)


def format_stat(name: str, value: Any) -> str:
    """Return `value` of statistic `name` as shown on the page ("n/a" when undefined)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if name in ("start", "end"):
        return str(pd.Timestamp(value).strftime("%Y-%m-%d %H:%M"))
    if name in _PERCENT:
        return f"{value:.2%}"
    if name in _MONEY:
        return f"{value:,.2f}"
    if name in _RATIO:
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _exact(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def stats_html(stats: Mapping[str, Any], run: int, title: str = "") -> str:
    """Return the statistics as an HTML table tagged with the run number (`data-run`)."""
    rows = "".join(
        f'<tr data-stat="{html.escape(name)}"><th>{html.escape(STAT_LABELS.get(name, name))}</th>'
        f'<td data-value="{html.escape(_exact(value))}">{html.escape(format_stat(name, value))}</td></tr>'
        for name, value in stats.items()
    )
    caption = f"<caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>" if title else ""
    return f'{_TABLE_CSS}<table class="rata-stats" data-run="{run}">{caption}{rows}</table>'


def _plain_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with timezone-aware columns as naive UTC (table widgets show them as they are)."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def trades_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """Return the trades for the table widget: newest first, times in UTC, returns in percent."""
    table = _plain_times(trades).iloc[::-1].reset_index(drop=True)
    table["return %"] = 100 * table.pop("return")
    return table


def top_frame(result: SweepResult, metric: str, n: int = 10) -> pd.DataFrame:
    """Return the `n` best combinations by `metric`: rank, swept parameters and key statistics.

    Ranked like `SweepResult.best`: an undefined metric (NaN, or infinite, such as the Sharpe
    ratio of a combination that never traded) ranks last and shows empty.
    """
    shown = [metric, *(m for m in ("sharpe", "total_return", "max_drawdown", "trades") if m != metric)]
    table = result.table[[*result.params, *shown]].replace([np.inf, -np.inf], np.nan)
    table = table.sort_values(metric, ascending=False, na_position="last", kind="stable").head(n)
    table = table.reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table


def swept_params(result: SweepResult) -> list[str]:
    """Return the parameters that took more than one value in the sweep."""
    return [p for p in result.params if result.table[p].nunique() > 1]


def sweep_plot(result: SweepResult, metric: str) -> Any:
    """Return the heatmap of `metric` over the first two swept parameters, or a curve over one."""
    swept = swept_params(result)
    if len(swept) >= 2:
        return result.heatmap(swept[0], swept[1], metric)
    name = swept[0] if swept else result.params[0]
    best = result.table.groupby(name, as_index=False)[[metric]].max().sort_values(name)
    return hv.Curve(best, name, metric).opts(
        title=f"{result.strategy.name}: {metric} by {name}", responsive=True, height=450, tools=["hover"]
    ) * hv.Scatter(best, name, metric).opts(size=6)
