"""What the live chart shows and streams: one instrument and timeframe, its trades and a strategy's indicators.

`ChartFeed` belongs to one browser session (`dashboards.live.LiveApp`). When the instrument or
the timeframe changes it subscribes the stream to their `bars` and the instrument's `ticks`,
puts the stored bars and fills before the streamed ones, and offers the strategy instances
trading the instrument for the indicators (`dashboards.live_indicators`). The session hands it
each batch of stream events; it streams the new candles, the trades (the forming candle) and the
fills into the chart and has the indicators follow the new candles. After a reconnect it fetches
the bars the stream missed.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Coroutine
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from dashboards.live_client import ApiClient
from dashboards.live_events import EventBatch
from dashboards.live_indicators import IndicatorFeed, indicator_choices
from dashboards.live_layout import LiveLayout, LiveState
from dashboards.live_stream import LiveStream, Subscription
from framework.timeframes import TIMEFRAMES

__all__ = ["FILLS_KEPT", "ChartFeed", "Session"]

T = TypeVar("T")

FILLS_KEPT = 200


class Session(Protocol):
    """What the feed needs of its session: the API, the stream, the state and page, and three helpers."""

    client: ApiClient
    stream: LiveStream
    state: LiveState
    ui: LiveLayout

    async def call(self, what: str, call: Awaitable[T]) -> T | None:
        """Await an API call; on refusal show `what: reason` and return None."""
        ...

    def changing(self) -> AbstractContextManager[None]:
        """Return the context in which Bokeh models may change from a coroutine."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` as a task of the session."""
        ...


class ChartFeed:
    """The chart's subscriptions, history, trades and indicators for one session; see the module docstring."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.bars: Subscription | None = None
        self.ticks: Subscription | None = None
        self.indicators = IndicatorFeed(session.client, session.ui.indicators, session.changing)
        session.state.param.watch(self._chart_changed, ["symbol", "timeframe"])
        session.ui.indicator_select.param.watch(self._indicators_chosen, "value")

    def restart(self) -> None:
        """Forget the subscriptions (a new stream): the next `switch` makes them again."""
        self.bars = self.ticks = None

    def stop(self) -> None:
        """Stop following the indicators."""
        self.indicators.stop()

    # ---- instrument and timeframe -------------------------------------------------------------

    def _chart_changed(self, *_: Any) -> None:
        if self.bars is not None:  # streaming already (the first chart starts with the session)
            self.session.spawn(self.switch())

    async def switch(self) -> None:
        """Stream the chosen instrument and timeframe: subscribe, then put the stored bars before the live ones."""
        s = self.session
        symbol, timeframe = s.state.symbol, s.state.timeframe
        if not symbol:
            return
        chart = s.ui.chart
        step_ns = TIMEFRAMES[timeframe]
        bars, ticks = Subscription("bars", symbol, timeframe), Subscription("ticks", symbol)
        for old, new in ((self.bars, bars), (self.ticks, ticks)):
            if old is not None and old != new:
                await s.stream.unsubscribe(old)
        self.bars, self.ticks = bars, ticks
        self.indicators.stop()
        with s.changing():
            chart.reset(symbol, timeframe, step_ns / 1e6, [])
            s.ui.indicators.clear()
            s.ui.show_chart_info()
        await s.stream.subscribe(bars)
        await s.stream.subscribe(ticks)
        start = datetime.now(UTC) - timedelta(microseconds=step_ns / 1000 * (chart.keep + 2))
        history = s.client.get("/bars", symbol=symbol, timeframe=timeframe, start=start.isoformat(), limit=chart.keep)
        page = await s.call("chart history", history)
        fills = await s.call("fills", s.client.get("/fills", symbol=symbol, limit=FILLS_KEPT))
        if (symbol, timeframe) != (s.state.symbol, s.state.timeframe):
            return  # switched again meanwhile
        with s.changing():
            if page is not None:
                chart.refill(page["items"])
            if fills is not None:
                chart.add_fills(reversed(fills["items"]))
            s.ui.show_chart_info()
        self.choose_indicators()

    async def refill(self) -> None:
        """Add the stored bars of the last minute to the chart (those a reconnecting stream missed)."""
        s = self.session
        chart, wanted = s.ui.chart, self.bars
        if wanted is None:
            return
        start = datetime.now(UTC) - timedelta(microseconds=max(60e6, TIMEFRAMES[chart.timeframe] / 1000 * 3))
        history = s.client.get("/bars", symbol=chart.symbol, timeframe=chart.timeframe, start=start.isoformat())
        page = await s.call("chart history", history)
        if page is not None and self.bars == wanted:
            with s.changing():
                chart.refill(page["items"])

    def apply(self, batch: EventBatch) -> None:
        """Stream a batch's new bars, trades and fills into the chart (with the session's document held)."""
        chart = self.session.ui.chart
        if batch.bars and chart.add_bars(batch.bars):
            self.indicators.follow(chart.last_open_ms, chart.step_ms)
        if batch.ticks:
            chart.add_ticks(batch.ticks)
        if batch.fills:
            chart.add_fills(batch.fills)

    # ---- indicators ---------------------------------------------------------------------------

    def choose_indicators(self) -> None:
        """Offer the instances trading the charted instrument; keep the choice if it still fits, else the default."""
        s = self.session
        select, chart = s.ui.indicator_select, s.ui.chart
        options, default = indicator_choices(s.state.instances.values(), chart.symbol, chart.timeframe)
        chosen = select.value if select.value and select.value in options.values() else default
        select.options = options
        if select.value == chosen:
            s.spawn(self.load_indicators())
        else:
            select.value = chosen  # the watcher loads them

    def _indicators_chosen(self, *_: Any) -> None:
        if self.bars is not None:
            self.session.spawn(self.load_indicators())

    def instance_changed(self, instance_id: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Redraw the indicators when the instance drawn got new parameters (they move the lines)."""
        if instance_id == self.indicators.instance and before.get("params") != after.get("params"):
            self.session.spawn(self.load_indicators())

    async def load_indicators(self) -> None:
        """Draw the chosen instance's indicators over the candles shown (none when none is chosen)."""
        s = self.session
        chart = s.ui.chart
        instance_id = s.ui.indicator_select.value or ""
        instance = s.state.instances.get(instance_id)
        timeframe = str(instance["timeframe"]) if instance else chart.timeframe
        opened = chart.candles.data["open_time"]
        first = float(opened[0]) if len(opened) else -math.inf
        await self.indicators.load(
            instance_id if instance else "", chart.symbol, timeframe, chart_step_ms=chart.step_ms, first_open_ms=first
        )
