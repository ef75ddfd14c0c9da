"""The live candlestick chart: candles and volume of one instrument, with the strategies' fills on them.

Bokeh figures built once per session; new bars are *streamed* into their data source
(`ColumnDataSource.stream`, which sends only the new rows to the browser), so a bar is on screen a
frame after it reaches the dashboard and the page never reloads. The sources are named so that
tests read what the browser holds (`Bokeh.documents[0].get_model_by_name`):

- `rata-live-candles`: `time` (the bar's mid-point, ms since the epoch, which centres the candle on
  its period), `open`, `high`, `low`, `close`, `volume`, `color`, and `open_time` (ms);
- `rata-live-fills`: `time` (ms), `price`, `quantity`, `side`, `strategy`, `color`, `marker`;
- `rata-live-forming`: the candles still forming, built from the trades streamed since their period
  began (the `ticks` channel): the candle columns plus `trades` (how many trades it folds) and
  `trade_id` (the newest one's); drawn lighter, and the `rata-live-last-price` line (a `Span`)
  follows the newest trade. A closed bar replaces its forming candle. The first forming candle
  after subscribing starts at the first trade seen, not at its period's true open;
- `rata-live-equity` (see `EquityChart`): `time` (ms), `equity`.

Times are UTC; the axes show them as such.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, DataRange1d, DatetimeTickFormatter, HoverTool, NumeralTickFormatter
from bokeh.models.annotations import Span, Title
from bokeh.plotting import figure

__all__ = ["CandleChart", "EquityChart", "epoch_ms", "time_axis"]

UP, DOWN = "#26a69a", "#ef5350"
BUY, SELL = "#1565c0", "#ff6f00"
_TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
_CANDLE_COLUMNS = ("time", "open_time", "open", "high", "low", "close", "volume", "color")
_FILL_COLUMNS = ("time", "price", "quantity", "side", "strategy", "color", "marker")
_FORMING_COLUMNS = (*_CANDLE_COLUMNS, "trades", "trade_id")
FORMING_ALPHA = 0.45
MIN_BORDER_LEFT = 80
"""Room left of every figure of the chart (axis and its label), so that their time axes line up."""


def time_axis() -> DatetimeTickFormatter:
    """Return a tick formatter showing wall-clock times (one per figure: a model belongs to one document)."""
    return DatetimeTickFormatter(
        seconds="%H:%M:%S",
        minsec="%H:%M:%S",
        minutes="%H:%M",
        hourmin="%H:%M",
        hours="%H:%M",
        days="%b %d",
        context=None,
    )


def epoch_ms(value: str | datetime) -> float:
    """Return an ISO 8601 time (the API's) or an aware datetime as milliseconds since the epoch."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.timestamp() * 1000.0


def _empty(columns: Iterable[str]) -> dict[str, Any]:
    return {name: [] for name in columns}


class CandleChart:
    """Candles above volume for one instrument and timeframe, and fill markers; see the module docstring.

    `keep` is how many candles stay on the chart (older ones roll off). The axes fit what the chart
    holds until the user pans or zooms (the reset tool gives the fit back).
    """

    def __init__(self, *, keep: int = 300) -> None:
        self.keep = keep
        self.step_ms = 1000.0
        self.symbol = ""
        self.timeframe = "1s"
        self.candles = ColumnDataSource(_empty(_CANDLE_COLUMNS), name="rata-live-candles")
        self.fills = ColumnDataSource(_empty(_FILL_COLUMNS), name="rata-live-fills")
        self.forming = ColumnDataSource(_empty(_FORMING_COLUMNS), name="rata-live-forming")
        self._forming: dict[float, dict[str, Any]] = {}
        self.last_price = Span(
            location=None,
            dimension="width",
            line_color="#455a64",
            line_dash="dashed",
            line_width=1,
            visible=False,
            name="rata-live-last-price",
        )
        self.last_open_ms = -1.0
        self.title = Title(text="")
        self.x_range = DataRange1d(range_padding=0.01)
        self.price = self._price_figure()
        self.volume = self._volume_figure()
        self.pane = pn.Column(
            pn.pane.Bokeh(self.price, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.volume, sizing_mode="stretch_width"),
            css_classes=["rata-chart"],
            sizing_mode="stretch_width",
            margin=0,
        )

    def _price_figure(self) -> Any:
        fig = figure(
            x_axis_type="datetime",
            x_range=self.x_range,
            height=380,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            active_scroll="xwheel_zoom",
            title=self.title,
            toolbar_location="right",
            min_border_left=MIN_BORDER_LEFT,
        )
        fig.segment("time", "high", "time", "low", source=self.candles, color="color", line_width=1)
        self._bodies = fig.vbar(
            "time", self.step_ms * 0.7, "open", "close", source=self.candles, fill_color="color", line_color="color"
        )
        fig.segment(
            "time", "high", "time", "low", source=self.forming, color="color", line_width=1, alpha=FORMING_ALPHA
        )
        self._forming_bodies = fig.vbar(
            "time",
            self.step_ms * 0.7,
            "open",
            "close",
            source=self.forming,
            fill_color="color",
            line_color="color",
            alpha=FORMING_ALPHA,
        )
        fig.add_layout(self.last_price)
        self.x_range.renderers = [self._bodies, self._forming_bodies]  # the view follows the candles only
        buys = fig.scatter(
            "time", "price", source=self.fills, marker="marker", size=11, color="color", line_color="#222222"
        )
        fig.add_tools(
            HoverTool(
                renderers=[self._bodies],
                tooltips=[
                    ("open time", "@open_time{%F %T}"),
                    ("o / h / l / c", "@open{0,0.[0000]} / @high{0,0.[0000]} / @low{0,0.[0000]} / @close{0,0.[0000]}"),
                    ("volume", "@volume{0,0.[00]}"),
                ],
                formatters={"@open_time": "datetime"},
            ),
            HoverTool(
                renderers=[buys],
                tooltips=[("fill", "@strategy @side @quantity @ @price{0,0.[0000]}"), ("time", "@time{%F %T}")],
                formatters={"@time": "datetime"},
            ),
        )
        fig.xaxis.formatter = time_axis()
        fig.yaxis.axis_label = "price"
        return fig

    def _volume_figure(self) -> Any:
        fig = figure(
            x_axis_type="datetime",
            x_range=self.x_range,
            height=130,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            toolbar_location=None,
            min_border_left=MIN_BORDER_LEFT,
        )
        self._volume_bars = fig.vbar(
            "time",
            self.step_ms * 0.7,
            0,
            "volume",
            source=self.candles,
            fill_color="color",
            line_color="color",
            alpha=0.6,
        )
        self._forming_volume = fig.vbar(
            "time",
            self.step_ms * 0.7,
            0,
            "volume",
            source=self.forming,
            fill_color="color",
            line_color="color",
            alpha=FORMING_ALPHA * 0.6,
        )
        fig.xaxis.formatter = time_axis()
        fig.yaxis.axis_label = "volume"
        fig.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")
        return fig

    # ---- data -------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Return how many candles the chart holds."""
        return len(self.candles.data["time"])

    def reset(self, symbol: str, timeframe: str, step_ms: float, bars: Iterable[Mapping[str, Any]]) -> None:
        """Show `symbol`'s `timeframe` candles from `bars` (API `BarOut` dicts, oldest first); no fills yet."""
        self.symbol, self.timeframe, self.step_ms = symbol, timeframe, step_ms
        for renderer in (self._bodies, self._volume_bars, self._forming_bodies, self._forming_volume):
            renderer.glyph.width = step_ms * 0.7
        rows = self._rows(bars, after=-1.0)
        self.last_open_ms = rows["open_time"][-1] if rows["open_time"] else -1.0
        self.candles.data = rows
        self.fills.data = _empty(_FILL_COLUMNS)
        self._forming = {}
        self.forming.data = _empty(_FORMING_COLUMNS)
        self.last_price.visible = False
        self.title.text = f"{symbol} {timeframe}"

    def refill(self, bars: Iterable[Mapping[str, Any]]) -> None:
        """Merge stored `bars` with the candles shown (streamed ones win), by open time; keep the newest.

        For the history loaded after subscribing, and for the bars a reconnecting stream missed:
        the page gets the union in one update, never an empty chart in between.
        """
        shown = self.candles.data
        by_time: dict[float, tuple[Any, ...]] = {}
        fresh = self._rows(bars, after=-1.0)
        for columns in (fresh, shown):
            for row in zip(*(columns[k] for k in _CANDLE_COLUMNS), strict=True):
                by_time[row[1]] = row
        rows = [by_time[t] for t in sorted(by_time)][-self.keep :]
        merged: dict[str, Any] = {k: [row[i] for row in rows] for i, k in enumerate(_CANDLE_COLUMNS)}
        self.last_open_ms = merged["open_time"][-1] if rows else -1.0
        self.candles.data = merged
        self._drop_formed()

    def add_bars(self, bars: Iterable[Mapping[str, Any]]) -> int:
        """Stream closed bars newer than the last candle; return how many were added."""
        rows = self._rows(bars, after=self.last_open_ms)
        added = len(rows["time"])
        if added:
            self.last_open_ms = rows["open_time"][-1]
            self.candles.stream(rows, rollover=self.keep)
            self._drop_formed()
        return added

    def add_ticks(self, ticks: Iterable[Mapping[str, Any]]) -> int:
        """Fold trades of the charted instrument (API `TickOut` dicts) into the forming candles; return how many.

        A trade whose period has its closed candle on the chart already is left out (the bar has it).
        """
        taken = 0
        step = self.step_ms
        newest: dict[str, Any] | None = None
        for tick in ticks:
            if tick.get("symbol") != self.symbol:
                continue
            opened = math.floor(epoch_ms(tick["time"]) / step) * step
            if opened <= self.last_open_ms:
                continue
            price, size = float(tick["price"]), float(tick["size"])
            row = self._forming.get(opened)
            if row is None:
                row = self._forming[opened] = {"open": price, "high": price, "low": price, "volume": 0.0, "trades": 0}
                row["open_time"] = opened
            row["high"], row["low"] = max(row["high"], price), min(row["low"], price)
            row["close"] = price
            row["volume"] += size
            row["trades"] += 1
            row["trade_id"] = str(tick.get("trade_id", ""))
            taken += 1
            if newest is None or opened >= newest["open_time"]:
                newest = row
        if taken:
            self._draw_forming()
            if newest is not None:
                self.last_price.location = newest["close"]
                self.last_price.visible = True
        return taken

    def _drop_formed(self) -> None:
        """Forget the forming candles whose closed bar is on the chart."""
        formed = [t for t in self._forming if t <= self.last_open_ms]
        for opened in formed:
            del self._forming[opened]
        if formed:
            self._draw_forming()

    def _draw_forming(self) -> None:
        rows = [self._forming[t] for t in sorted(self._forming)][-3:]
        self._forming = {row["open_time"]: row for row in rows}
        data: dict[str, Any] = _empty(_FORMING_COLUMNS)
        for row in rows:
            for name in _FORMING_COLUMNS:
                if name == "time":
                    data["time"].append(row["open_time"] + self.step_ms / 2)
                elif name == "color":
                    data["color"].append(UP if row["close"] >= row["open"] else DOWN)
                else:
                    data[name].append(row[name])
        self.forming.data = data

    def add_fills(self, fills: Iterable[Mapping[str, Any]]) -> int:
        """Mark fills of the charted symbol (API `FillOut` dicts) on the chart; return how many."""
        rows = _empty(_FILL_COLUMNS)
        opened = self.candles.data["open_time"]
        first = opened[0] if len(opened) else float("-inf")
        for fill in fills:
            when = epoch_ms(fill["time"])
            if fill.get("symbol") != self.symbol or when < first:
                continue
            buy = fill["side"] == "buy"
            rows["time"].append(when)
            rows["price"].append(float(fill["price"]))
            rows["quantity"].append(float(fill["quantity"]))
            rows["side"].append(fill["side"])
            rows["strategy"].append(fill["strategy"])
            rows["color"].append(BUY if buy else SELL)
            rows["marker"].append("triangle" if buy else "inverted_triangle")
        if rows["time"]:
            self.fills.stream(rows, rollover=self.keep)
        return len(rows["time"])

    def _rows(self, bars: Iterable[Mapping[str, Any]], *, after: float) -> dict[str, Any]:
        rows = _empty(_CANDLE_COLUMNS)
        last = after
        for bar in bars:
            if bar.get("symbol", self.symbol) != self.symbol or bar.get("timeframe", self.timeframe) != self.timeframe:
                continue
            opened = epoch_ms(bar["time"])
            if opened <= last:
                continue
            last = opened
            o, c = float(bar["open"]), float(bar["close"])
            rows["time"].append(opened + self.step_ms / 2)
            rows["open_time"].append(opened)
            rows["open"].append(o)
            rows["high"].append(float(bar["high"]))
            rows["low"].append(float(bar["low"]))
            rows["close"].append(c)
            rows["volume"].append(float(bar["volume"]))
            rows["color"].append(UP if c >= o else DOWN)
        return rows


class EquityChart:
    """The account's equity over time: snapshots from REST, then a point a second from the stream."""

    def __init__(self, *, keep: int = 5000) -> None:
        self.keep = keep
        self.source = ColumnDataSource({"time": [], "equity": []}, name="rata-live-equity")
        self.last_ms = -1.0
        fig = figure(
            x_axis_type="datetime", height=260, sizing_mode="stretch_width", tools=_TOOLS, title="account equity"
        )
        fig.line("time", "equity", source=self.source, color="#1f77b4", line_width=1.5)
        fig.add_tools(
            HoverTool(
                tooltips=[("time", "@time{%F %T}"), ("equity", "@equity{0,0.00}")],
                formatters={"@time": "datetime"},
                mode="vline",
            )
        )
        fig.xaxis.formatter = time_axis()
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig, sizing_mode="stretch_width", css_classes=["rata-equity-chart"])

    def reset(self, points: Iterable[Mapping[str, Any]]) -> None:
        """Show equity `points` (API `EquityPoint` dicts, oldest first)."""
        rows: dict[str, Any] = {"time": [], "equity": []}
        self.last_ms = -1.0
        self._append(rows, points)
        self.source.data = rows

    def add(self, points: Iterable[Mapping[str, Any]]) -> None:
        """Stream newer equity points."""
        rows: dict[str, Any] = {"time": [], "equity": []}
        self._append(rows, points)
        if rows["time"]:
            self.source.stream(rows, rollover=self.keep)

    def _append(self, rows: dict[str, Any], points: Iterable[Mapping[str, Any]]) -> None:
        for point in points:
            when = epoch_ms(point["time"])
            if when <= self.last_ms:
                continue
            self.last_ms = when
            rows["time"].append(when)
            rows["equity"].append(float(point["equity"]))
