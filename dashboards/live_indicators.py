"""A strategy instance's indicators on the live chart: lines over the candles, and a pane under them.

What an instance draws comes from the API (`GET /instances/{id}/indicators`, the strategy's own
`indicators()` on the runner's bars): indicators with `overlay` true are lines over the candles,
on the price's scale (moving averages, bands); the others go to a small pane of their own under
the chart (an RSI and its levels, a momentum). Each line has a legend entry with its name.

The lines are fixed slots (`SLOTS` per place), made once per session: switching to another
instance changes the data, the slots' visibility and the legend's labels, never the figures.
New rows are *streamed* into the sources as bars close, like the candles. The sources are named
for the browser tests (`Bokeh.documents[0].get_model_by_name`):

- `rata-live-overlays` (over the price) and `rata-live-oscillators` (the pane): columns `time`
  (the bar's mid-point in ms, as the candles'), `open_time` (ms) and `y0` ... `y5`, one per slot;
  their `tags` are the names of the indicators in the slots, in order (empty: nothing drawn), and
  their legends are `rata-live-overlays-legend` and `rata-live-oscillators-legend`.

A value the API gives as null (not warmed up yet) is NaN: the line starts where the indicator has
a value.

`IndicatorFeed` keeps them current: it loads the chosen instance's indicators for the charted
instrument, and after each new candle asks for the rows it lacks (the engine may decide that
close a little after the bar was published: it asks again, briefly, until the row is there).
`indicator_choices` lists the instances the user can pick from, and the default one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import panel as pn
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, DataRange1d
from bokeh.models.annotations import Legend, LegendItem
from bokeh.plotting import figure

from dashboards.live_chart import MIN_BORDER_LEFT, epoch_ms, time_axis
from dashboards.live_client import ApiClient, ApiRefusal
from framework.timeframes import TIMEFRAMES

__all__ = ["SLOTS", "IndicatorFeed", "IndicatorLayers", "IndicatorLines", "indicator_choices"]

log = logging.getLogger(__name__)

SLOTS = 6
"""Lines per place (over the price, in the pane); an instance's further indicators are not drawn."""
PALETTE = ("#8e24aa", "#f9a825", "#1e88e5", "#6d4c41", "#00897b", "#d81b60")
_COLUMNS = ("time", "open_time", *(f"y{i}" for i in range(SLOTS)))


def _empty() -> dict[str, Any]:
    return {name: [] for name in _COLUMNS}


def _label(name: str) -> str:
    return name.replace("_", " ")


def hidden_pane(chart: Any, css_class: str) -> pn.Column:
    """Return `chart` in a hidden layout of its own with `css_class` (shown when there is something to draw).

    A layout of its own: a Bokeh pane is its figure, which takes no Panel visibility or CSS class.
    """
    return pn.Column(
        pn.pane.Bokeh(chart, sizing_mode="stretch_width"),
        visible=False,
        css_classes=[css_class],
        sizing_mode="stretch_width",
        margin=0,
    )


class IndicatorLines:
    """One place indicators are drawn on `fig`: a source named `name`, `SLOTS` line renderers and their legend."""

    def __init__(self, fig: Any, name: str, *, location: Any = "top_left") -> None:
        self.source = ColumnDataSource(_empty(), name=name, tags=[])
        self.lines = [
            fig.line("time", f"y{i}", source=self.source, color=PALETTE[i], line_width=1.6, visible=False)
            for i in range(SLOTS)
        ]
        self.items = [LegendItem(label="", renderers=[line], visible=False) for line in self.lines]
        self.legend = Legend(
            items=self.items,
            name=f"{name}-legend",
            location=location,
            orientation="horizontal",
            click_policy="hide",
            background_fill_alpha=0.7,
            label_text_font_size="8pt",
            glyph_width=16,
            spacing=8,
            margin=4,
        )
        fig.add_layout(self.legend)
        self.names: list[str] = []

    def show(self, names: Sequence[str]) -> None:
        """Give the slots to `names` (the others are hidden)."""
        self.names = list(names[:SLOTS])
        for i, (line, item) in enumerate(zip(self.lines, self.items, strict=True)):
            used = i < len(self.names)
            line.visible = used
            item.visible = used
            item.label = value(_label(self.names[i]) if used else "")
        self.source.tags = list(self.names)


class IndicatorLayers:
    """The indicators of one strategy instance over `price` and in a pane sharing `x_range`."""

    def __init__(self, price: Any, x_range: DataRange1d, *, keep: int = 300) -> None:
        self.keep = keep
        self.instance = ""
        self.timeframe = ""
        self.step_ms = 1000.0
        self.last_open_ms = -1.0
        self.overlays = IndicatorLines(price, "rata-live-overlays")
        self.figure = figure(
            x_axis_type="datetime",
            x_range=x_range,
            height=150,
            sizing_mode="stretch_width",
            tools="xpan,xwheel_zoom,reset",
            toolbar_location=None,
            min_border_left=MIN_BORDER_LEFT,
        )
        self.figure.xaxis.formatter = time_axis()
        self.figure.yaxis.axis_label = "indicators"
        self.oscillators = IndicatorLines(self.figure, "rata-live-oscillators")
        self.pane = hidden_pane(self.figure, "rata-pane")

    @property
    def count(self) -> int:
        """Return how many bars of indicator values are drawn."""
        return len(self.overlays.source.data["time"])

    def clear(self) -> None:
        """Draw nothing."""
        self.instance, self.timeframe, self.last_open_ms = "", "", -1.0
        for place in (self.overlays, self.oscillators):
            place.show([])
            place.source.data = _empty()
        self.pane.visible = False

    def show(self, body: Mapping[str, Any], *, after_ms: float = -math.inf) -> None:
        """Draw an `IndicatorsOut` answer from scratch (rows opening at or before `after_ms` left out)."""
        self.instance, self.timeframe = str(body["instance"]), str(body["timeframe"])
        self.step_ms = TIMEFRAMES.get(self.timeframe, 1_000_000_000) / 1e6
        series = list(body["indicators"])
        over = [s for s in series if s["overlay"]][:SLOTS]
        under = [s for s in series if not s["overlay"]][:SLOTS]
        self.last_open_ms = -1.0
        newest = -1.0
        for place, chosen in ((self.overlays, over), (self.oscillators, under)):
            place.show([s["name"] for s in chosen])
            rows = self._rows(body["times"], chosen, after_ms)
            place.source.data = rows
            newest = max([newest, *rows["open_time"][-1:]])
        self.last_open_ms = newest
        self.pane.visible = bool(under)

    def add(self, body: Mapping[str, Any]) -> int:
        """Stream the rows of an `IndicatorsOut` answer newer than those drawn; return how many.

        An answer for another instance or timeframe than the one drawn is ignored.
        """
        if (body.get("instance"), body.get("timeframe")) != (self.instance, self.timeframe):
            return 0
        by_name = {s["name"]: s for s in body["indicators"]}
        added = 0
        for place in (self.overlays, self.oscillators):
            chosen = [by_name.get(name, {"name": name, "values": []}) for name in place.names]
            rows = self._rows(body["times"], chosen, self.last_open_ms)
            added = len(rows["time"])
            if added:
                place.source.stream(rows, rollover=self.keep)
        if added:
            self.last_open_ms = max(epoch_ms(t) for t in body["times"])
        return added

    def _rows(self, times: Sequence[str], chosen: Sequence[Mapping[str, Any]], after_ms: float) -> dict[str, Any]:
        """Return the source rows of the bars opening after `after_ms` (a slot without a series: NaN)."""
        opened = [epoch_ms(t) for t in times]
        first = next((k for k, when in enumerate(opened) if when > after_ms), len(opened))
        rows: dict[str, Any] = {"open_time": opened[first:], "time": [t + self.step_ms / 2 for t in opened[first:]]}
        for i in range(SLOTS):
            values = list(chosen[i]["values"]) if i < len(chosen) else []
            values += [None] * (len(opened) - len(values))
            rows[f"y{i}"] = [math.nan if v is None else float(v) for v in values[first:]]
        return rows


def indicator_choices(
    instances: Iterable[Mapping[str, Any]], symbol: str, timeframe: str
) -> tuple[dict[str, str], str]:
    """Return the choices of instances to draw (label -> id, with "none" -> "") and the default one.

    The choices are the instances trading `symbol`; the default is the first running one on the
    chart's `timeframe`, else the first running one, else none.
    """
    trading = sorted((i for i in instances if symbol in i["symbols"]), key=lambda i: str(i["id"]))
    options = {"none": ""} | {f"{i['id']} ({i['strategy']}, {i['timeframe']})": str(i["id"]) for i in trading}
    running = [i for i in trading if i["state"] == "running"]
    best = [i for i in running if i["timeframe"] == timeframe] or running
    return options, str(best[0]["id"]) if best else ""


class IndicatorFeed:
    """Keep one instance's indicators on `layers` current; see the module docstring.

    `changing()` is the session's context for changing Bokeh models from a coroutine.
    """

    RETRIES = 8
    """How many times a missing row is asked for again after a candle (waits growing by 50 ms)."""

    def __init__(
        self, client: ApiClient, layers: IndicatorLayers, changing: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self.client = client
        self.layers = layers
        self.changing = changing
        self.instance = ""
        self.symbol = ""
        self.step_ms = 1000.0
        self.keep = layers.keep
        self.after_ms = -math.inf
        self.refusal = ""
        self._generation = 0
        self._wanted_ms = -math.inf
        self._task: asyncio.Task[None] | None = None

    async def load(
        self, instance_id: str, symbol: str, timeframe: str, *, chart_step_ms: float, first_open_ms: float
    ) -> None:
        """Draw `instance_id`'s indicators on `symbol` over the candles from `first_open_ms` on ("" clears)."""
        self.stop()
        generation = self._generation
        self.instance, self.symbol, self.refusal = instance_id, symbol, ""
        self.step_ms = TIMEFRAMES.get(timeframe, 1_000_000_000) / 1e6
        self.after_ms = first_open_ms - self.step_ms
        self._wanted_ms = -math.inf
        with self.changing():
            self.layers.clear()
        if not instance_id:
            return
        self.keep = max(1, min(5000, math.ceil(self.layers.keep * chart_step_ms / self.step_ms) + 2))
        body = await self._fetch(self.keep)
        if body is not None and generation == self._generation:
            with self.changing():
                self.layers.show(body, after_ms=self.after_ms)

    def follow(self, candle_open_ms: float, chart_step_ms: float) -> None:
        """Fetch the rows up to the instance's bar that closed with the candle opening at `candle_open_ms`."""
        if not self.instance:
            return
        closed = math.floor((candle_open_ms + chart_step_ms) / self.step_ms) * self.step_ms
        self._wanted_ms = max(self._wanted_ms, closed - self.step_ms)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._catch_up(self._generation))

    def stop(self) -> None:
        """Forget pending fetches (a new instance, symbol or session)."""
        self._generation += 1
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def _catch_up(self, generation: int) -> None:
        layers, attempt = self.layers, 0
        while generation == self._generation and layers.last_open_ms < self._wanted_ms and attempt <= self.RETRIES:
            drawn = layers.instance == self.instance and layers.last_open_ms >= 0
            missing = math.ceil((self._wanted_ms - layers.last_open_ms) / self.step_ms) + 1 if drawn else self.keep
            body = await self._fetch(min(max(missing, 2), self.keep))
            if generation != self._generation:
                return
            if body is not None:
                with self.changing():
                    if drawn:
                        layers.add(body)
                    else:
                        layers.show(body, after_ms=self.after_ms)
            if layers.last_open_ms < self._wanted_ms:
                attempt += 1
                await asyncio.sleep(0.05 * attempt)

    async def _fetch(self, limit: int) -> dict[str, Any] | None:
        path = f"/instances/{self.instance}/indicators"
        try:
            body = await self.client.get(path, symbol=self.symbol, limit=limit)
        except ApiRefusal as exc:  # no bars yet, an instance gone: the chart just shows no indicator
            self.refusal = str(exc)
            log.info("indicators of %s on %s: %s", self.instance, self.symbol, exc)
            return None
        return body if isinstance(body, dict) else None
