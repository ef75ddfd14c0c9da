"""The research explorer's backtest charts: Bokeh figures built once, their data replaced per run.

Why not `framework.plots` here: giving a Panel pane a new HoloViews object rebuilds every Bokeh
model of the figure in the server and the browser, and even a HoloViews `DynamicMap` update costs
hundreds of milliseconds per run on a small machine. These figures draw the same things
(`framework.plots` stays the look of notebooks and reports): the close with long-entry, short-entry
and exit markers, the strategy's indicators (`Strategy.indicators`: over the price, or in a pane
under it), and the equity curve above its drawdown, all on one linked time axis. A new run only
replaces the columns of a few data sources, which the browser redraws in a frame or two. The
indicator sources are `rata-indicators` and `rata-oscillators` (columns `time`, `y0`... and the
names in their `tags`, as `dashboards.live_indicators` draws them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, NumeralTickFormatter
from bokeh.models.annotations import Title
from bokeh.plotting import figure

from dashboards.live_indicators import SLOTS, IndicatorLines, hidden_pane
from framework import BacktestResult, StrategyError

__all__ = ["BacktestCharts"]

_TOOLS = "pan,xwheel_zoom,box_zoom,reset,save"


def _times(values: Any) -> np.ndarray:
    """Return UTC times as naive datetime64 (what Bokeh's datetime axes take)."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy()


def _points(trades: pd.DataFrame, time: str, price: str) -> dict[str, Any]:
    return {"time": _times(trades[time]), "price": trades[price].to_numpy(dtype=float)}


class BacktestCharts:
    """Trades on the price chart and equity above drawdown, for one browser session.

    `price` and `equity` are the Panel panes to lay out; `show` puts a result on them.
    """

    def __init__(self) -> None:
        empty = {"time": np.array([], dtype="datetime64[ns]"), "price": np.array([], dtype=float)}
        # Named, so that tests can read what the browser draws (Bokeh's `get_model_by_name`).
        self.close = ColumnDataSource(dict(empty), name="rata-close")
        self.long_entries = ColumnDataSource(dict(empty), name="rata-long-entries")
        self.short_entries = ColumnDataSource(dict(empty), name="rata-short-entries")
        self.exits = ColumnDataSource(dict(empty), name="rata-exits")
        self.curve = ColumnDataSource(
            {"time": empty["time"], "equity": empty["price"], "drawdown": empty["price"]}, name="rata-equity"
        )
        x_range = DataRange1d()
        self.price_title, self.equity_title = Title(text=""), Title(text="")
        self.price_figure = self._price_figure(x_range)
        self.overlays = IndicatorLines(self.price_figure, "rata-indicators", location="bottom_left")
        self.oscillator_figure = figure(
            x_axis_type="datetime", x_range=x_range, height=150, sizing_mode="stretch_width", tools=_TOOLS
        )
        self.oscillators = IndicatorLines(self.oscillator_figure, "rata-oscillators")
        self.oscillator_pane = hidden_pane(self.oscillator_figure, "rata-oscillators-pane")
        self.equity_figure = figure(
            x_axis_type="datetime",
            x_range=x_range,
            height=280,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            title=self.equity_title,
        )
        self.equity_figure.line("time", "equity", source=self.curve, color="#1f77b4", line_width=1.5)
        self.equity_figure.yaxis.axis_label = "equity"
        self.equity_figure.yaxis.formatter = NumeralTickFormatter(format="0,0")
        self.equity_figure.add_tools(
            HoverTool(
                tooltips=[("time", "@time{%F %H:%M}"), ("equity", "@equity{0,0.00}")],
                formatters={"@time": "datetime"},
                mode="vline",
            )
        )
        self.drawdown_figure = figure(
            x_axis_type="datetime", x_range=x_range, height=150, sizing_mode="stretch_width", tools=_TOOLS
        )
        self.drawdown_figure.varea("time", y1=0, y2="drawdown", source=self.curve, color="#d62728", alpha=0.5)
        self.drawdown_figure.yaxis.axis_label = "drawdown"
        self.drawdown_figure.yaxis.formatter = NumeralTickFormatter(format="0%")
        self.price = pn.Column(
            pn.pane.Bokeh(self.price_figure, sizing_mode="stretch_width"),
            self.oscillator_pane,
            css_classes=["rata-price"],
            sizing_mode="stretch_width",
        )
        self.equity = pn.Column(
            pn.pane.Bokeh(self.equity_figure, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.drawdown_figure, sizing_mode="stretch_width"),
            css_classes=["rata-equity"],
            sizing_mode="stretch_width",
        )

    def _price_figure(self, x_range: DataRange1d) -> Any:
        fig = figure(
            x_axis_type="datetime",
            x_range=x_range,
            height=360,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            title=self.price_title,
        )
        line = fig.line("time", "price", source=self.close, color="#444444", legend_label="close")
        for source, marker, color, label in (
            (self.long_entries, "triangle", "#2ca02c", "long entry"),
            (self.short_entries, "inverted_triangle", "#d62728", "short entry"),
            (self.exits, "x", "#000000", "exit"),
        ):
            fig.scatter("time", "price", source=source, marker=marker, size=10, color=color, legend_label=label)
        fig.add_tools(
            HoverTool(
                renderers=[line],
                tooltips=[("time", "@time{%F %H:%M}"), ("close", "@price{0,0.00[000]}")],
                formatters={"@time": "datetime"},
                mode="vline",
            )
        )
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"
        fig.yaxis.axis_label = "price"
        return fig

    def show(self, result: BacktestResult, symbol: str) -> None:
        """Draw `result`: the close and trades of `symbol`, and the strategy's equity and drawdown."""
        close = result.data.close[symbol]
        trades = result.trades
        mine = trades[trades["symbol"] == symbol]
        closed = mine[mine["status"] == "closed"]
        self.close.data = {"time": _times(close.index), "price": close.to_numpy(dtype=float)}
        self.long_entries.data = _points(mine[mine["direction"] == "long"], "entry_time", "entry_price")
        self.short_entries.data = _points(mine[mine["direction"] == "short"], "entry_time", "entry_price")
        self.exits.data = _points(closed, "exit_time", "exit_price")
        self.curve.data = {
            "time": _times(result.equity.index),
            "equity": result.equity.to_numpy(dtype=float),
            "drawdown": result.drawdown.to_numpy(dtype=float),
        }
        self._show_indicators(result, symbol)
        self.price_title.text = f"{symbol}: {result.strategy!r} trades"
        self.equity_title.text = f"{result.strategy!r} equity"

    def _show_indicators(self, result: BacktestResult, symbol: str) -> None:
        """Draw the strategy's indicators of `symbol` (nothing when it draws none or fails to)."""
        try:
            drawn = result.strategy.checked_indicators(result.data)
        except StrategyError:
            drawn = {}
        times = _times(result.data.index)
        over = [(n, i.frame[symbol]) for n, i in drawn.items() if i.overlay][:SLOTS]
        under = [(n, i.frame[symbol]) for n, i in drawn.items() if not i.overlay][:SLOTS]
        for lines, chosen in ((self.overlays, over), (self.oscillators, under)):
            lines.show([name for name, _ in chosen])
            data: dict[str, Any] = {"time": times, "open_time": times}
            for k in range(SLOTS):
                column = chosen[k][1].to_numpy(dtype=float) if k < len(chosen) else np.full(len(times), np.nan)
                data[f"y{k}"] = column
            lines.source.data = data
        self.oscillator_pane.visible = bool(under)
