"""HoloViews plots of backtest results (Bokeh backend; they render in JupyterLab, Panel and HTML)."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd

__all__ = ["equity_plot", "heatmap_plot", "price_plot"]


def _backend() -> None:
    """Load HoloViews' Bokeh backend (options need a loaded backend; notebooks may also call hv.extension)."""
    if "bokeh" not in hv.Store.renderers:
        import holoviews.plotting.bokeh  # noqa: F401


def equity_plot(
    equity: pd.Series, drawdown: pd.Series, title: str = "Equity", spans: list[tuple[Any, Any]] | None = None
) -> hv.Layout:
    """Return the equity curve above its drawdown (as a negative percentage), sharing the time axis.

    `spans` shades (start, end) time ranges on the equity chart, e.g. walk-forward test windows.
    """
    _backend()
    eq = hv.Curve((equity.index, equity.to_numpy()), "time", "equity", label="equity").opts(
        title=title, responsive=True, height=300, color="#1f77b4", tools=["hover"], show_grid=True
    )
    dd = hv.Area((drawdown.index, 100 * drawdown.to_numpy()), "time", "drawdown %", label="drawdown").opts(
        responsive=True, height=150, color="#d62728", alpha=0.5, tools=["hover"], show_grid=True
    )
    top: Any = eq
    for i, (start, end) in enumerate(spans or []):
        top = top * hv.VSpan(start, end).opts(color="#ff7f0e" if i % 2 else "#1f77b4", alpha=0.08)
    return (top + dd).cols(1)


def price_plot(close: pd.Series, trades: pd.DataFrame, title: str | None = None) -> hv.Overlay:
    """Return the close price with entry (triangles) and exit (crosses) markers of `trades`."""
    _backend()
    symbol = str(close.name)
    price = hv.Curve((close.index, close.to_numpy()), "time", "price", label=symbol).opts(
        responsive=True, height=350, color="#444444", tools=["hover"], show_grid=True
    )
    mine = trades[trades["symbol"] == symbol] if len(trades) else trades
    layers: list[Any] = [price]
    for direction, marker, color in (("long", "triangle", "#2ca02c"), ("short", "inverted_triangle", "#d62728")):
        side = mine[mine["direction"] == direction] if len(mine) else mine
        layers.append(
            hv.Scatter(
                (side["entry_time"] if len(side) else [], side["entry_price"] if len(side) else []),
                "time",
                "price",
                label=f"{direction} entry",
            ).opts(marker=marker, size=10, color=color, tools=["hover"])
        )
    closed = mine[mine["status"] == "closed"] if len(mine) else mine
    layers.append(
        hv.Scatter(
            (closed["exit_time"] if len(closed) else [], closed["exit_price"] if len(closed) else []),
            "time",
            "price",
            label="exit",
        ).opts(marker="x", size=10, color="#000000", tools=["hover"])
    )
    return hv.Overlay(layers).opts(title=title or f"{symbol} with trades", legend_position="top_left")


def heatmap_plot(table: pd.DataFrame, x: str, y: str, metric: str, title: str | None = None) -> hv.HeatMap:
    """Return a heatmap of `metric` over two swept parameters (other parameters: best value kept)."""
    _backend()
    best = table.groupby([x, y], as_index=False)[metric].max()
    best[metric] = best[metric].replace([np.inf, -np.inf], np.nan)
    # Categorical axes in numeric order: uneven grids get evenly sized cells without gaps.
    dims = []
    for name in (x, y):
        ordered = sorted(best[name].unique())
        best[name] = best[name].astype(str)
        dims.append(hv.Dimension(name, values=[str(v) for v in ordered]))
    return hv.HeatMap(best, kdims=dims, vdims=[metric]).opts(
        title=title or f"{metric} by {x} and {y}",
        cmap="RdYlGn",
        colorbar=True,
        tools=["hover"],
        responsive=True,
        height=450,
    )
