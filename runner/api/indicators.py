"""What a strategy instance draws: its indicators on one instrument over the newest bars, for charts.

The bars come from the engine's own rolling panel (the very window the live `signals()` call
sees) when it holds the bars asked for; otherwise the stored bars before the panel's first row
are put in front of it, with a full warm-up before the first bar returned (a symbol without a
bar in a period carries its close forward, as in the engine's panel); with no panel yet, from
stored bars alone. The indicators are computed by the instance's strategy object, with its
current parameters, through `Strategy.checked_indicators`.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Literal

import numpy as np

from framework.bars import Bars
from framework.data.store import read_bars
from framework.engine.instances import InstanceSpec
from framework.engine.panel import RollingPanel
from framework.errors import RejectedError, StrategyError
from framework.events import datetime_to_ns, ns_to_datetime
from framework.timeframes import timeframe_ns
from runner.api.errors import ApiError
from runner.api.schemas.strategies import IndicatorSeries, IndicatorsOut
from runner.service import Runner

__all__ = ["instance_indicators", "stored_window"]

log = logging.getLogger(__name__)

SPAN = 3
"""Stored bars are looked for within `SPAN` times the wanted bar count's duration (gaps allowed)."""

Source = Literal["engine", "stored", "stored+engine"]


async def instance_indicators(runner: Runner, instance_id: str, symbol: str, limit: int) -> IndicatorsOut:
    """Return instance `instance_id`'s indicators on `symbol` over its newest `limit` bars.

    404 `unknown_strategy_instance` for an unknown instance, 422 `symbol_not_in_universe` for a
    symbol it does not trade, 404 `no_data` when there are no bars yet, 409 `strategy_error` when
    the strategy's `indicators()` fails.
    """
    engine = runner.engine
    assert engine is not None
    spec = engine.get(instance_id)
    if symbol not in spec.symbols:
        shown = ", ".join(spec.symbols[:10]) + (" ..." if len(spec.symbols) > 10 else "")
        raise ApiError(422, "symbol_not_in_universe", f"{symbol!r} is not traded by {instance_id} ({shown})")
    running = engine.instances[instance_id]
    panel = engine.panels.get((spec.timeframe, spec.symbols))
    window = panel.window() if panel is not None and len(panel) else None  # a copy: the engine goes on
    source: Source = "engine"
    if window is None or len(window) < limit:
        before = None if window is None else ns_to_datetime(int(window.index.as_unit("ns").asi8[0]))
        older = await stored_window(runner, spec, limit + running.warmup, closed_before=before)
        if older is not None:
            window, source = (older, "stored") if window is None else (_joined(spec, older, window), "stored+engine")
    if window is None:
        raise ApiError(404, "no_data", f"no {spec.timeframe} bars of {instance_id}'s universe yet")
    try:
        drawn = running.strategy.checked_indicators(window)
    except StrategyError as exc:
        raise ApiError(409, "strategy_error", str(exc)) from None
    rows = slice(max(len(window) - limit, 0), len(window))
    opened = window.index.as_unit("ns").asi8[rows] - timeframe_ns(spec.timeframe)
    series = [
        IndicatorSeries(name=name, overlay=indicator.overlay, values=_values(indicator.frame[symbol].to_numpy()[rows]))
        for name, indicator in drawn.items()
    ]
    return IndicatorsOut(
        instance=spec.id,
        strategy=spec.strategy,
        symbol=symbol,
        timeframe=spec.timeframe,
        source=source,
        times=[ns_to_datetime(int(t)) for t in opened],
        indicators=series,
    )


def _values(values: np.ndarray) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.astype("float64").tolist()]


def _joined(spec: InstanceSpec, *parts: Bars) -> Bars:
    """Return consecutive panels as one panel of `spec`'s universe (a symbol without a bar carries its close)."""
    instruments = {s: i for part in parts for s, i in part.instruments.items()}
    panel = RollingPanel(spec.symbols, sum(len(p) for p in parts), instruments=instruments, timeframe=spec.timeframe)
    for part in parts:
        panel.append_frame(part)
    return panel.window()


async def stored_window(
    runner: Runner, spec: InstanceSpec, count: int, *, closed_before: datetime | None = None
) -> Bars | None:
    """Return the newest `count` stored bars of `spec`'s universe closing before `closed_before`, or None.

    As in the engine's panel, a symbol without a bar in a period carries its close forward. Bars
    are looked for within `SPAN` times `count` bar lengths before the newest one stored (an index
    range of the bars' primary key, however long the runner has been recording).
    """
    step = timeframe_ns(spec.timeframe)
    symbols = list(spec.symbols)
    end = None if closed_before is None else ns_to_datetime(datetime_to_ns(closed_before) - step)
    try:
        newest = await runner.pool.fetchval(
            """
            SELECT max(last.open_time) FROM instruments i CROSS JOIN LATERAL (
                SELECT b.open_time FROM bars b
                WHERE b.instrument_id = i.id AND b.timeframe = $2 AND ($3::timestamptz IS NULL OR b.open_time < $3)
                ORDER BY b.open_time DESC LIMIT 1
            ) AS last
            WHERE i.symbol = ANY($1::text[])
            """,
            symbols,
            spec.timeframe,
            end,
        )
        if newest is None:
            return None
        since = ns_to_datetime(max(datetime_to_ns(newest) - SPAN * count * step, 0))
        start = await runner.pool.fetchval(
            """
            SELECT b.open_time FROM bars b JOIN instruments i ON i.id = b.instrument_id
            WHERE i.symbol = ANY($1::text[]) AND b.timeframe = $2 AND b.open_time >= $3
              AND ($4::timestamptz IS NULL OR b.open_time < $4)
            GROUP BY b.open_time ORDER BY b.open_time DESC LIMIT 1 OFFSET $5
            """,
            symbols,
            spec.timeframe,
            since,
            end,
            max(count - 1, 0),
        )
        bars = await read_bars(runner.pool, symbols, spec.timeframe, start or since, end)
    except RejectedError as exc:  # not every instrument of the universe is stored, or none in the range
        log.debug("no stored bars for %s: %s", spec.id, exc)
        return None
    return _joined(spec, bars.iloc[-count:] if len(bars) > count else bars)
